package window

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// nodeMetrics is a registry holding the four metrics under the names
// package metrics gives them, with labels on two of them as a node's may
// carry.
type nodeMetrics struct {
	reg       *prometheus.Registry
	writes    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	subs      prometheus.Gauge
	elections prometheus.Counter
}

func newNodeMetrics(t *testing.T) *nodeMetrics {
	t.Helper()
	m := &nodeMetrics{
		reg:       prometheus.NewRegistry(),
		writes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: WritesTotal, Help: "writes"}, []string{"method"}),
		latency:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: WriteDuration, Help: "latency", Buckets: []float64{0.001, 0.01, 0.1, 1}}, []string{"method"}),
		subs:      prometheus.NewGauge(prometheus.GaugeOpts{Name: FanoutSubscribers, Help: "subscribers"}),
		elections: prometheus.NewCounter(prometheus.CounterOpts{Name: LeaderChanges, Help: "leader changes"}),
	}
	m.reg.MustRegister(m.writes, m.latency, m.subs, m.elections)
	return m
}

func TestStatsOverTheSpan(t *testing.T) {
	m := newNodeMetrics(t)
	s := New(m.reg, 5*time.Second, time.Minute, nil)
	if got := s.Stats(); got != (Stats{}) {
		t.Fatalf("before any sample: %+v", got)
	}
	t0 := time.Unix(1_000_000, 0)
	m.writes.WithLabelValues("SendMessage").Add(1000) // before the span: never counted
	for range 100 {
		m.latency.WithLabelValues("SendMessage").Observe(0.5) // likewise
	}
	mustSample(t, s, t0)
	if got := s.Stats(); got.WritesPerSecond != 0 || got.WriteP99 != 0 {
		t.Fatalf("one sample gives no rate: %+v", got)
	}

	// Over the next minute: 600 writes on two series, 990 fast, 10 slow.
	for i := 1; i <= 12; i++ {
		m.writes.WithLabelValues("SendMessage").Add(40)
		m.writes.WithLabelValues("CreateChannel").Add(10)
		if i < 12 {
			mustSample(t, s, t0.Add(time.Duration(i)*5*time.Second))
		}
	}
	for range 990 {
		m.latency.WithLabelValues("SendMessage").Observe(0.005) // (0.001, 0.01]
	}
	for range 10 {
		m.latency.WithLabelValues("CreateChannel").Observe(0.05) // (0.01, 0.1]
	}
	m.subs.Set(3)
	m.elections.Add(2)
	mustSample(t, s, t0.Add(time.Minute))
	got := s.Stats()
	if got.WritesPerSecond != 10 {
		t.Errorf("writes/s = %v, want 600 in 60 s = 10", got.WritesPerSecond)
	}
	// rank 990 of 1000 is the last of the 990 in (0.001, 0.01]: its upper end.
	if want := 10 * time.Millisecond; got.WriteP99 != want {
		t.Errorf("p99 = %v, want %v", got.WriteP99, want)
	}
	if got.Subscribers != 3 || got.LeaderChanges != 2 {
		t.Errorf("gauge and counter now: %+v", got)
	}

	// A minute later with nothing new: the old writes leave the window.
	mustSample(t, s, t0.Add(2*time.Minute+time.Second))
	if got := s.Stats(); got.WritesPerSecond != 0 || got.WriteP99 != 0 || got.Subscribers != 3 {
		t.Errorf("idle minute: %+v", got)
	}
}

func TestQuantileInterpolatesAndCapsAtTheHighestBound(t *testing.T) {
	older := map[float64]float64{0.1: 0, 1: 0, math.Inf(1): 0}
	for _, c := range []struct {
		name  string
		newer map[float64]float64
		want  float64
	}{
		{"no observations", map[float64]float64{0.1: 0, 1: 0, math.Inf(1): 0}, 0},
		{"halfway into the second bucket", map[float64]float64{0.1: 0, 1: 100, math.Inf(1): 100}, 0.1 + 0.9*0.99},
		{"in the +Inf bucket", map[float64]float64{0.1: 0, 1: 0, math.Inf(1): 10}, 1},
	} {
		if got := quantile(0.99, c.newer, older); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// failing gathers one family and an error, as a registry with a broken
// collector does.
type failing struct{ mfs []*dto.MetricFamily }

func (f failing) Gather() ([]*dto.MetricFamily, error) { return f.mfs, errors.New("collector failed") }

func TestMissingMetricsAndGatherErrors(t *testing.T) {
	// An empty registry (no metrics package): every figure stays 0.
	s := New(prometheus.NewRegistry(), time.Second, time.Minute, nil)
	mustSample(t, s, time.Unix(0, 0))
	mustSample(t, s, time.Unix(10, 0))
	if got := s.Stats(); got != (Stats{}) {
		t.Fatalf("empty registry: %+v", got)
	}
	// A partial gathering is recorded and its error returned.
	m := newNodeMetrics(t)
	m.subs.Set(7)
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s = New(failing{mfs}, time.Second, time.Minute, nil)
	if err := s.Sample(time.Unix(0, 0)); err == nil {
		t.Fatal("Sample hid the gatherer's error")
	}
	if got := s.Stats(); got.Subscribers != 7 {
		t.Fatalf("partial gathering not recorded: %+v", got)
	}
}

func mustSample(t *testing.T, s *Sampler, at time.Time) {
	t.Helper()
	if err := s.Sample(at); err != nil {
		t.Fatal(err)
	}
}
