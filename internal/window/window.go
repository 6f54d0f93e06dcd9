// Package window turns a node's Prometheus metrics into figures over the
// last minute for the status page and Admin.GetNodeStatus: writes per
// second and p99 write latency (from counters and histograms, which only
// grow), plus the current subscriber count and leader changes. A Sampler
// gathers the registry every few seconds into a ring covering the span and
// answers from the newest sample and the oldest one inside the span, as
// Prometheus's rate() and histogram_quantile() would over that range.
package window

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The metric names the figures come from (package metrics registers them).
const (
	WritesTotal       = "raftogram_writes_total"
	WriteDuration     = "raftogram_write_duration_seconds"
	FanoutSubscribers = "raftogram_fanout_subscribers"
	LeaderChanges     = "raftogram_raft_leader_changes_total"
)

// Gatherer is where samples come from (a *prometheus.Registry).
type Gatherer interface {
	Gather() ([]*dto.MetricFamily, error)
}

// Stats are a node's figures over the span (one minute on a node). Every
// field is 0 while its metric is not registered.
type Stats struct {
	// WritesPerSecond is the increase of raftogram_writes_total over the
	// span divided by the time between the two samples; 0 until there are two.
	WritesPerSecond float64
	// WriteP99 is the 99th percentile of raftogram_write_duration_seconds
	// over the span, interpolated within its bucket; 0 without writes in it.
	WriteP99 time.Duration
	// Subscribers is raftogram_fanout_subscribers at the newest sample.
	Subscribers uint64
	// LeaderChanges is raftogram_raft_leader_changes_total at the newest
	// sample.
	LeaderChanges uint64
}

// sample is one gathering: counter totals, cumulative histogram bucket
// counts by upper bound, and the gauge.
type sample struct {
	at            time.Time
	writes        float64
	buckets       map[float64]float64 // upper bound -> cumulative count, summed over series
	subscribers   float64
	leaderChanges float64
}

// Sampler keeps the samples of one span. It is safe for concurrent use.
type Sampler struct {
	g        Gatherer
	interval time.Duration
	span     time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	ring []sample // oldest first, at most cap entries
	cap  int
}

// New returns a Sampler of g that samples every interval and answers over
// span (span is rounded up to whole intervals). log gets one line per
// failed gathering; nil discards them.
func New(g Gatherer, interval, span time.Duration, log *slog.Logger) *Sampler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := int((span+interval-1)/interval) + 1 // samples spanning span, both ends
	return &Sampler{g: g, interval: interval, span: span, log: log, cap: n}
}

// Run samples at once, then every interval, until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if err := s.Sample(time.Now()); err != nil {
			s.log.Warn("gather metrics for the status window", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample gathers once and records the result as taken at now, dropping
// samples older than the span before it. It returns the gatherer's error
// (the metrics it did return are still recorded).
func (s *Sampler) Sample(now time.Time) error {
	mfs, err := s.g.Gather()
	sm := sample{at: now, buckets: map[float64]float64{}}
	for _, mf := range mfs {
		switch mf.GetName() {
		case WritesTotal:
			sm.writes = sum(mf, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
		case FanoutSubscribers:
			sm.subscribers = sum(mf, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
		case LeaderChanges:
			sm.leaderChanges = sum(mf, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
		case WriteDuration:
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					sm.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
				sm.buckets[math.Inf(1)] += float64(h.GetSampleCount())
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring = append(s.ring, sm)
	if len(s.ring) > s.cap {
		s.ring = slices.Delete(s.ring, 0, len(s.ring)-s.cap)
	}
	return err
}

// sum adds v over every series of mf.
func sum(mf *dto.MetricFamily, v func(*dto.Metric) float64) float64 {
	var t float64
	for _, m := range mf.GetMetric() {
		t += v(m)
	}
	return t
}

// Stats returns the figures from the newest sample and the oldest one no
// more than the span before it; zero Stats before the first sample.
func (s *Sampler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return Stats{}
	}
	newest := s.ring[len(s.ring)-1]
	oldest := newest
	for _, sm := range s.ring {
		if newest.at.Sub(sm.at) <= s.span {
			oldest = sm
			break
		}
	}
	st := Stats{Subscribers: uint64(max(newest.subscribers, 0)), LeaderChanges: uint64(max(newest.leaderChanges, 0))}
	if d := newest.at.Sub(oldest.at).Seconds(); d > 0 {
		st.WritesPerSecond = max(newest.writes-oldest.writes, 0) / d
	}
	st.WriteP99 = time.Duration(quantile(0.99, newest.buckets, oldest.buckets) * float64(time.Second))
	return st
}

// quantile returns the q-quantile of the observations between two
// cumulative bucket sets, interpolating linearly inside the bucket that
// holds it as histogram_quantile does: 0 without observations, the highest
// finite bound when it falls in the +Inf bucket.
func quantile(q float64, newer, older map[float64]float64) float64 {
	bounds := make([]float64, 0, len(newer))
	for b := range newer {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return 0
	}
	total := newer[bounds[len(bounds)-1]] - older[bounds[len(bounds)-1]]
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bounds {
		count := newer[b] - older[b]
		if count >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			inBucket := count - below
			if inBucket <= 0 {
				return b
			}
			return lower + (b-lower)*(rank-below)/inBucket
		}
		lower, below = b, count
	}
	return lower
}
