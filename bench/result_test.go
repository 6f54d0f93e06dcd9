package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// anchorRow mirrors the fields the shared harness's benchtable reads; a
// raftogram line must decode into it with the same meaning.
type anchorRow struct {
	Target    string  `json:"target"`
	Label     string  `json:"label"`
	Clients   int     `json:"clients"`
	Conns     int     `json:"conns"`
	Channels  int     `json:"channels"`
	Payload   int     `json:"payload"`
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	Dups      int64   `json:"dups"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Mode      string  `json:"mode"` // fsyncbench lines only; must stay empty
}

func sampleResult() *Result {
	return &Result{
		Target: "raftogram", Label: "raftogram dev", Workload: WorkloadSend,
		Clients: 64, Conns: 1, Channels: 64, Payload: 128,
		Ops: 51234, Errors: 2, Retries: 5, DurationS: 10.001, OpsPerSec: 5122.8,
		MeanMs: 12.1, P50Ms: 11.5, P90Ms: 15.25, P99Ms: 30.125, P999Ms: 45.5, MaxMs: 60.001,
		ErrorClasses: map[string]int64{ClassNotLeader: 3, ClassUnavailable: 2},
		Leader:       "127.0.0.1:9000", StartedAt: "2026-01-02T03:04:05Z",
	}
}

func TestWriteJSONIsOneLineWithTheHarnessFields(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResult()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") || !strings.HasPrefix(out, "{") {
		t.Fatalf("want exactly one JSON line, got %q", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"target", "label", "clients", "channels", "payload", "ops", "errors", "ops_per_sec",
		"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "duration_s", "conns", "dups", "warmup_ops",
		"workload", "rate", "retries", "error_classes", "leader", "leader_changes", "redirects", "client_cpu_pct", "started_at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, out)
		}
	}
	for _, k := range []string{"subscribers", "delivered", "delivery_p50_ms", "send_ops", "read_ops", "interrupted"} {
		if _, ok := m[k]; ok {
			t.Errorf("key %q present in a send-only result", k)
		}
	}
	var row anchorRow
	if err := json.Unmarshal([]byte(out), &row); err != nil {
		t.Fatal(err)
	}
	want := anchorRow{Target: "raftogram", Label: "raftogram dev", Clients: 64, Conns: 1, Channels: 64, Payload: 128,
		Ops: 51234, Errors: 2, OpsPerSec: 5122.8, P50Ms: 11.5, P90Ms: 15.25, P99Ms: 30.125, MaxMs: 60.001}
	if row != want {
		t.Errorf("as the harness reads it:\n got %+v\nwant %+v", row, want)
	}
	if cls := m["error_classes"].(map[string]any); cls[ClassNotLeader] != 3.0 || cls[ClassUnavailable] != 2.0 {
		t.Errorf("error_classes = %v", cls)
	}
}

func TestWriteJSONDeliveryAndMixedKeysAreFlat(t *testing.T) {
	r := sampleResult()
	r.Workload = WorkloadMixed
	r.MixedStats = &MixedStats{SendOps: 10, ReadOps: 20, SendP50Ms: 1, ReadP99Ms: 2}
	r.DeliveryStats = &DeliveryStats{Subscribers: 1000, SubscribersComplete: 1000, Delivered: 5000, Expected: 5000, DeliveryP99Ms: 12.5}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"subscribers": 1000, "subscribers_complete": 1000, "delivered": 5000, "expected": 5000,
		"gaps": 0, "out_of_order": 0, "delivery_p99_ms": 12.5, "delivery_p50_ms": 0, "delivery_p999_ms": 0,
		"send_ops": 10, "read_ops": 20, "send_p50_ms": 1, "read_p99_ms": 2,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	r := sampleResult()
	r.DeliveryStats = &DeliveryStats{Subscribers: 10, SubscribersReady: 10, SubscribersComplete: 9, Delivered: 99, Expected: 100, Gaps: 1, DeliveryP50Ms: 3.25}
	var buf bytes.Buffer
	if err := WriteSummary(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"send workload", "5122.8 ops/s", "p50 11.5", "p99.9 45.5", "max 60.0",
		"not_leader 3, unavailable 2", "5 retries", "delivered 99 of 100", "INCOMPLETE: 9 of 10", "1 gaps", "p50 3.25"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}
