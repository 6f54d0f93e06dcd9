package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Result is one run. Its JSON form is one line whose common keys (target,
// label, clients, conns, channels, payload, ops, errors, dups, duration_s,
// ops_per_sec, mean_ms, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, warmup_ops,
// client_cpu_pct, server_cpu_pct, server_cpu_us_per_op, started_at,
// first_error) mean what they mean in the shared anchor benchmark
// (anchorbench), so its benchtable tabulates raftogram beside etcd and
// JetStream:
//
//   - ops: ops started in the measured window that succeeded (in the end,
//     after any retries); errors: those that failed;
//   - latencies: from an op's start (its scheduled start under -rate) to its
//     final answer, retries included, over the successful measured ops;
//     nearest-rank percentiles;
//   - ops_per_sec: ops divided by the time from the start of the measured
//     window (with -n: the first measured op's start) to the end of the last
//     measured op.
type Result struct {
	Target   string  `json:"target"`
	Label    string  `json:"label,omitempty"`
	Workload string  `json:"workload"`
	Clients  int     `json:"clients"`
	Conns    int     `json:"conns"`
	Channels int     `json:"channels"`
	Payload  int     `json:"payload"`
	Rate     float64 `json:"rate"` // target ops/s; 0 = closed loop
	// Inflight is the publish workload's messages in flight per client.
	Inflight int `json:"inflight,omitempty"`
	// Consistency is the level of reads and subscriptions (leader,
	// linearizable, at-least, local).
	Consistency string  `json:"consistency"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	Retries     int64   `json:"retries"` // attempts retried by measured ops
	Dups        int64   `json:"dups"`    // sends answered deduplicated=true (a retry of a committed send)
	DurationS   float64 `json:"duration_s"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	MeanMs      float64 `json:"mean_ms"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	P999Ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
	WarmupOps   int64   `json:"warmup_ops"`
	// Under -rate: latency from each op's actual start (the server's
	// service time as the client sees it), beside the latency from the
	// scheduled start above.
	ServiceP50Ms float64 `json:"service_p50_ms,omitempty"`
	ServiceP99Ms float64 `json:"service_p99_ms,omitempty"`
	// ErrorClasses counts failed attempts (retried or not) by class from the
	// start of the measured window to the end of the run.
	ErrorClasses  map[string]int64 `json:"error_classes"`
	FirstError    string           `json:"first_error,omitempty"`
	Leader        string           `json:"leader"`         // address calls went to at the end
	LeaderChanges int64            `json:"leader_changes"` // changes of the node answering, after set-up
	Redirects     int64            `json:"redirects"`      // moves to another address (hints, unreachable nodes) after set-up

	*MixedStats
	*DeliveryStats

	// CPU over the measured window in % of one core; server figures are
	// summed over -server-pids.
	ClientCPUPct  float64 `json:"client_cpu_pct"`
	ServerCPUPct  float64 `json:"server_cpu_pct,omitempty"`
	ServerCPUUsOp float64 `json:"server_cpu_us_per_op,omitempty"`
	// ServerCPUPctPerPID splits ServerCPUPct by process, in -server-pids
	// order.
	ServerCPUPctPerPID []float64 `json:"server_cpu_pct_per_pid,omitempty"`
	// WriteStages is the server-side write path over the measured window
	// (with -metrics-urls), WriteStagesError why it is missing.
	WriteStages      []StageStat `json:"write_stages,omitempty"`
	WriteStagesError string      `json:"write_stages_error,omitempty"`
	StartedAt        string      `json:"started_at"`
	Interrupted      bool        `json:"interrupted,omitempty"`
}

// MixedStats splits a mixed run's ops by kind.
type MixedStats struct {
	SendOps   int64   `json:"send_ops"`
	SendP50Ms float64 `json:"send_p50_ms"`
	SendP99Ms float64 `json:"send_p99_ms"`
	ReadOps   int64   `json:"read_ops"`
	ReadP50Ms float64 `json:"read_p50_ms"`
	ReadP99Ms float64 `json:"read_p99_ms"`
}

// DeliveryStats describes the subscribers of a subscribe or mixed run.
type DeliveryStats struct {
	Subscribers         int   `json:"subscribers"`
	SubscribersReady    int   `json:"subscribers_ready"`    // streaming before the warm-up began
	SubscribersComplete int   `json:"subscribers_complete"` // got every message, in order, without a gap
	Delivered           int64 `json:"delivered"`            // messages received in order, summed over subscribers
	Expected            int64 `json:"expected"`             // messages committed to each subscriber's channel, summed
	Gaps                int64 `json:"gaps"`                 // messages skipped over (a later sequence came first)
	OutOfOrder          int64 `json:"out_of_order"`         // messages at or below the last sequence received
	Resubscribes        int64 `json:"resubscribes"`
	// SubscribersByNode counts the subscribers by the node that served
	// their first batch (when the nodes report it).
	SubscribersByNode map[string]int `json:"subscribers_by_node,omitempty"`
	// ByNode splits the delivery by that node.
	ByNode map[string]NodeDelivery `json:"delivery_by_node,omitempty"`
	// Missing counts messages acknowledged to a subscriber's channel that
	// it never received, summed (Expected minus Delivered).
	Missing int64 `json:"missing"`
	// Delivery latency: receive time minus the send time embedded in the
	// payload (when the sending op called SendMessage; under -rate that may
	// be after its scheduled start), over messages sent by measured ops,
	// once per subscriber that received them.
	DeliverySamples int64   `json:"delivery_samples"`
	DeliveryMeanMs  float64 `json:"delivery_mean_ms"`
	DeliveryP50Ms   float64 `json:"delivery_p50_ms"`
	DeliveryP90Ms   float64 `json:"delivery_p90_ms"`
	DeliveryP99Ms   float64 `json:"delivery_p99_ms"`
	DeliveryP999Ms  float64 `json:"delivery_p999_ms"`
	DeliveryMaxMs   float64 `json:"delivery_max_ms"`
	// Receive time minus the message's created_at (the leader's clock when
	// it accepted the message, just before its Raft commit): the commit and
	// fan-out part of delivery, an upper bound of commit-to-delivery.
	AcceptDeliveryP50Ms float64 `json:"accept_delivery_p50_ms"`
	AcceptDeliveryP99Ms float64 `json:"accept_delivery_p99_ms"`
	DrainS              float64 `json:"drain_s"` // wait after the last send until every subscriber was complete (or gave up)
}

// WriteJSON writes r as exactly one line of JSON.
func WriteJSON(w io.Writer, r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteSummary writes r for a human.
func WriteSummary(w io.Writer, r *Result) error {
	var b strings.Builder
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("target %.0f ops/s", r.Rate)
	}
	fmt.Fprintf(&b, "raftogram bench: %s workload, %d clients on %d conns, %d channels, %d-byte payloads, %s\n",
		r.Workload, r.Clients, r.Conns, r.Channels, r.Payload, mode)
	if r.Label != "" {
		fmt.Fprintf(&b, "  label        %s\n", r.Label)
	}
	fmt.Fprintf(&b, "  leader       %s (%d leader changes, %d redirects during the run); reads and subscriptions at %s\n",
		r.Leader, r.LeaderChanges, r.Redirects, r.Consistency)
	fmt.Fprintf(&b, "  measured     %.3fs, %d ops ok, %d failed, %d warm-up ops\n", r.DurationS, r.Ops, r.Errors, r.WarmupOps)
	fmt.Fprintf(&b, "  throughput   %.1f ops/s\n", r.OpsPerSec)
	if r.Rate > 0 && r.OpsPerSec < 0.95*r.Rate {
		fmt.Fprintf(&b, "               (below the target rate: the clients or the cluster could not keep up)\n")
	}
	fmt.Fprintf(&b, "  latency ms   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
		fms(r.P50Ms), fms(r.P90Ms), fms(r.P99Ms), fms(r.P999Ms), fms(r.MaxMs), fms(r.MeanMs))
	if r.Rate > 0 {
		fmt.Fprintf(&b, "  service ms   p50 %s  p99 %s  (from each op's actual start; the line above counts from its scheduled start)\n",
			fms(r.ServiceP50Ms), fms(r.ServiceP99Ms))
	}
	if m := r.MixedStats; m != nil {
		fmt.Fprintf(&b, "  sends        %d ops, p50 %s ms, p99 %s ms\n", m.SendOps, fms(m.SendP50Ms), fms(m.SendP99Ms))
		fmt.Fprintf(&b, "  reads        %d ops, p50 %s ms, p99 %s ms\n", m.ReadOps, fms(m.ReadP50Ms), fms(m.ReadP99Ms))
	}
	fmt.Fprintf(&b, "  errors       %s; %d retries, %d deduplicated sends\n", classesString(r.ErrorClasses), r.Retries, r.Dups)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error  %s\n", r.FirstError)
	}
	if d := r.DeliveryStats; d != nil {
		verdict := "every subscriber got every message in order"
		if d.SubscribersComplete < d.Subscribers || d.Gaps > 0 || d.OutOfOrder > 0 {
			verdict = fmt.Sprintf("INCOMPLETE: %d of %d subscribers complete", d.SubscribersComplete, d.Subscribers)
		}
		fmt.Fprintf(&b, "  subscribers  %d (%d ready before warm-up): delivered %d of %d expected; %s\n",
			d.Subscribers, d.SubscribersReady, d.Delivered, d.Expected, verdict)
		fmt.Fprintf(&b, "               %d missing, %d gaps, %d out of order (repeats), %d resubscribes, drained in %.3fs\n",
			d.Missing, d.Gaps, d.OutOfOrder, d.Resubscribes, d.DrainS)
		if len(d.SubscribersByNode) > 0 {
			var parts []string
			for _, n := range slices.Sorted(maps.Keys(d.SubscribersByNode)) {
				parts = append(parts, fmt.Sprintf("%s %d", n, d.SubscribersByNode[n]))
			}
			fmt.Fprintf(&b, "               served by %s\n", strings.Join(parts, ", "))
		}
		fmt.Fprintf(&b, "  delivery ms  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d samples; send -> receive)\n",
			fms(d.DeliveryP50Ms), fms(d.DeliveryP90Ms), fms(d.DeliveryP99Ms), fms(d.DeliveryP999Ms), fms(d.DeliveryMaxMs),
			fms(d.DeliveryMeanMs), d.DeliverySamples)
		fmt.Fprintf(&b, "  accept->recv p50 %s  p99 %s ms (leader's created_at -> receive: commit + fan-out)\n",
			fms(d.AcceptDeliveryP50Ms), fms(d.AcceptDeliveryP99Ms))
		writeByNode(&b, d.ByNode)
	}
	fmt.Fprintf(&b, "  cpu          client %.1f%% of one core", r.ClientCPUPct)
	if r.ServerCPUPct > 0 {
		fmt.Fprintf(&b, ", servers %.1f%% (%.1f µs per op)", r.ServerCPUPct, r.ServerCPUUsOp)
		if len(r.ServerCPUPctPerPID) > 1 {
			fmt.Fprintf(&b, " = %v by process", r.ServerCPUPctPerPID)
		}
	}
	b.WriteString("\n")
	writeStagesSummary(&b, r.WriteStages)
	if r.WriteStagesError != "" {
		fmt.Fprintf(&b, "  write stages unavailable: %s\n", r.WriteStagesError)
	}
	if r.Interrupted {
		b.WriteString("  (interrupted: the measured window was cut short)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func classesString(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// ms converts d to milliseconds rounded to the microsecond, as the shared
// harness reports.
func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
