package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testcluster"
	"github.com/raftogram/raftogram/metrics"
)

// scrape fetches addr's /metrics and returns the raw text and its parsed
// families; it fails the test on a non-200 answer or unparsable text.
func scrape(t *testing.T, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	hc := &http.Client{Timeout: 15 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus text", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return string(body), fams
}

// value returns the sum over the family's series whose labels include
// want (counter, gauge or untyped value; histogram sample count).
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Summary != nil:
			sum += float64(m.GetSummary().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, true
}

// busyCluster starts a 3-node cluster and has it do a little of
// everything: a channel, a live subscriber on the leader, sends.
func busyCluster(t *testing.T, sends int) (*testcluster.Cluster, int) {
	t.Helper()
	// Slow timings keep one leader through the test on a loaded machine.
	c := testcluster.Start(t, 3, func(cfg *config.Config) {
		cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, time.Second
	})
	leader := c.Leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cl, err := client.New(ctx, client.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if _, err := cl.CreateChannel(ctx, "metrics", "metrics"); err != nil {
		t.Fatal(err)
	}
	sub, err := cl.Subscribe(ctx, "metrics", client.SubscribeOptions{Consistency: client.LeaderOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	send := func(i int) {
		if _, err := cl.Send(ctx, client.SendRequest{ChannelID: "metrics", AuthorID: "a", Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(want int) {
		for got := 0; got < want; {
			b, err := sub.Recv()
			if err != nil {
				t.Fatalf("subscriber: %v", err)
			}
			got += len(b.Messages)
		}
	}
	// The stream opens at the first Recv and reads that message from the
	// projection; the rest reach it live, through the fan-out window.
	send(0)
	recv(1)
	for i := 1; i < sends; i++ {
		send(i)
	}
	recv(sends - 1)
	return c, leader
}

// The nodes' /metrics carry every family docs/metrics.md lists, with
// values that show the sends, the subscriber, and raft's own metrics.
// Values are summed over the nodes, so a leader change under load moves
// counts between nodes without failing the test.
//
// One cluster serves every check of a running node (this one, the Grafana
// dashboard's and the documentation's): the machine runs many tests at once.
func TestRunningNode(t *testing.T) {
	t.Parallel()
	const sends = 5
	c, _ := busyCluster(t, sends)
	t.Run("metrics", func(t *testing.T) { checkNodeMetrics(t, c, sends) })
	t.Run("grafana dashboard", func(t *testing.T) { checkGrafanaDashboard(t, c) })
	t.Run("documented", func(t *testing.T) { checkDocumented(t, c) })
}

func checkNodeMetrics(t *testing.T, c *testcluster.Cluster, sends int) {

	var problems []string
	check := func() error {
		problems = nil
		var all []map[string]*dto.MetricFamily
		for i := range c.Len() {
			_, fams := scrape(t, c.Config(i).HealthBindAddr)
			all = append(all, fams)
		}
		total := func(name string, labels map[string]string) (float64, bool) {
			sum, found := 0.0, false
			for _, fams := range all {
				v, ok := value(fams, name, labels)
				sum, found = sum+v, found || ok
			}
			return sum, found
		}
		atLeast := func(name string, labels map[string]string, min float64) {
			v, ok := total(name, labels)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s missing from /metrics", name))
			case v < min:
				problems = append(problems, fmt.Sprintf("%s%v = %v summed over the nodes, want >= %v", name, labels, v, min))
			}
		}
		atLeast("raftogram_writes_total", nil, float64(sends))
		atLeast("raftogram_write_duration_seconds", nil, float64(sends))
		atLeast("raftogram_grpc_server_handled_total", map[string]string{"grpc_method": "SendMessage", "grpc_code": "OK", "grpc_type": "unary", "grpc_service": "raftogram.v1.Messenger"}, float64(sends))
		atLeast("raftogram_grpc_server_started_total", map[string]string{"grpc_method": "Subscribe"}, 1)
		atLeast("raftogram_grpc_server_handling_seconds", map[string]string{"grpc_method": "SendMessage"}, float64(sends))
		atLeast("raftogram_grpc_server_streams_in_flight", map[string]string{"grpc_method": "Subscribe"}, 1)
		atLeast("raftogram_raft_term", nil, 3)
		atLeast("raftogram_raft_commit_index", nil, float64(3*(sends+1)))
		atLeast("raftogram_raft_applied_index", nil, float64(3*(sends+1)))
		atLeast("raftogram_raft_last_contact_seconds", nil, 0)
		atLeast("raftogram_raft_leader_changes_total", nil, 3)
		atLeast("raftogram_raft_commitTime", nil, 1) // raft's own, through go-metrics
		atLeast("raftogram_projection_apply_batch_entries", nil, 3)
		atLeast("raftogram_projection_apply_seconds", nil, 3)
		atLeast("raftogram_projection_commit_seconds", nil, 0)
		atLeast("raftogram_projection_open_transaction_age_seconds", nil, 0)
		atLeast("raftogram_projection_db_bytes", nil, 3*4096)
		atLeast("raftogram_projection_wal_bytes", nil, 0)
		atLeast("raftogram_projection_checkpoints_total", nil, 0)
		atLeast("raftogram_projection_snapshot_bytes", nil, 0)
		atLeast("raftogram_projection_snapshot_seconds", nil, 0)
		atLeast("raftogram_fanout_subscribers", nil, 1)
		atLeast("raftogram_fanout_window_bytes", nil, 2)
		atLeast("raftogram_fanout_projection_reads_total", nil, 1)
		atLeast("raftogram_fanout_delivery_lag_seconds", nil, 1)
		atLeast("raftogram_cluster_entry_events", nil, float64(sends))
		atLeast("raftogram_cluster_entries_in_flight", nil, 0)
		atLeast("raftogram_data_dir_free_bytes", nil, 1)
		atLeast("go_goroutines", nil, 1)
		atLeast("process_resident_memory_bytes", nil, 1)
		if v, _ := total("raftogram_raft_is_leader", nil); v != 1 {
			problems = append(problems, fmt.Sprintf("raftogram_raft_is_leader summed over the nodes = %v, want 1", v))
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "\n"))
		}
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for err := check(); err != nil; err = check() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s:\n%v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two nodes' registries are separate: New twice (as in-process clusters do)
// works, and one node's counters do not show on the other.
func TestRegistriesArePerNode(t *testing.T) {
	t.Parallel()
	a, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	b, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	a.WriteAcknowledged(time.Millisecond)
	count := func(m *metrics.Metrics) float64 {
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatalf("Gather: %v", err)
		}
		for _, f := range fams {
			if f.GetName() == "raftogram_writes_total" {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("raftogram_writes_total not gathered")
		return 0
	}
	if ga, gb := count(a), count(b); ga != 1 || gb != 0 {
		t.Errorf("writes_total: a=%v b=%v, want 1 and 0", ga, gb)
	}
}
