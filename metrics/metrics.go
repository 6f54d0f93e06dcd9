// Package metrics owns a node's Prometheus registry and the collectors in
// it: per-RPC metrics (go-grpc-middleware's Prometheus provider), the writes
// this node acknowledged, raft (its own go-metrics bridged through the
// go-metrics Prometheus sink, plus gauges read from the node), the SQLite
// projection, the fan-out hub, group commit, the data directory's free
// space, and the Go runtime and process collectors. docs/metrics.md lists
// every metric.
//
// Each node has its own registry (never prometheus.DefaultRegisterer), so
// several nodes in one process (the in-process tests) do not collide. The
// packages that are measured do not import Prometheus: they declare small
// observer interfaces and Stats methods, and this package implements and
// reads them.
package metrics

import (
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/raftogram/raftogram/cluster"
	"google.golang.org/grpc"
)

// Namespace prefixes every raftogram metric name.
const Namespace = "raftogram"

// Bucket layouts, in seconds or counts.
var (
	latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 15) // 0.5 ms .. 8.2 s
	fastBuckets    = prometheus.ExponentialBuckets(0.0001, 2, 16) // 0.1 ms .. 3.3 s
	countBuckets   = prometheus.ExponentialBuckets(1, 2, 12)      // 1 .. 2048
	// stageBuckets resolve the sub-millisecond stages of a lone write:
	// 10 µs .. 1.3 s in steps of √2.
	stageBuckets = prometheus.ExponentialBuckets(0.00001, 1.4142135623730951, 35)
)

// Metrics is one node's registry and the collectors it feeds. Create it
// with New; its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	grpc    *grpcprom.ServerMetrics
	streams *prometheus.GaugeVec

	writes        prometheus.Counter
	writeDuration prometheus.Histogram

	applyEntries  prometheus.Histogram
	applySeconds  prometheus.Histogram
	commitSeconds prometheus.Histogram
	snapshotSecs  prometheus.Histogram
	deliveryLag   prometheus.Histogram
	entryEvents   prometheus.Histogram
	writeStages   *prometheus.HistogramVec
	stageObs      map[string]prometheus.Observer // writeStages' series by stage, read-only after New
	snapshotGauge prometheus.Gauge

	node *nodeCollector // reads the parts Watch names
}

// New returns a node's metrics with their registry: the Go runtime and
// process collectors, raft's go-metrics (see raft.go) and every raftogram
// collector (those read from the node's parts report once Watch names
// them). It
// returns an error if a collector cannot be registered (a name clash, which
// would be a bug).
func New() (*Metrics, error) {
	m := &Metrics{reg: prometheus.NewRegistry(), node: &nodeCollector{}}
	m.grpc = grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(Namespace)),
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(Namespace), grpcprom.WithHistogramBuckets(latencyBuckets)),
	)
	m.streams = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "grpc_server", Name: "streams_in_flight",
		Help: "Streaming RPCs this node is serving now.",
	}, []string{"grpc_service", "grpc_method"})
	m.writes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "writes_total",
		Help: "Message writes (SendMessage) this node acknowledged to its caller (OK), forwarded ones counted only by the node that answered the client.",
	})
	m.writeDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "write_duration_seconds", Buckets: latencyBuckets,
		Help: "Time from a message write's arrival to its acknowledgement, for the writes counted by raftogram_writes_total.",
	})
	m.applyEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "projection", Name: "apply_batch_entries", Buckets: countBuckets,
		Help: "Raft log entries per batch applied to the projection.",
	})
	m.applySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "projection", Name: "apply_seconds", Buckets: fastBuckets,
		Help: "Time to apply one batch of entries to the projection's open transaction.",
	})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "projection", Name: "commit_seconds", Buckets: fastBuckets,
		Help: "Time to commit the projection's open transaction.",
	})
	m.snapshotSecs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "projection", Name: "snapshot_seconds", Buckets: latencyBuckets,
		Help: "Time to write a snapshot copy of the projection (VACUUM INTO and fsync).",
	})
	m.snapshotGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "projection", Name: "snapshot_bytes",
		Help: "Size of the latest snapshot copy of the projection; 0 until one is taken.",
	})
	m.deliveryLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "fanout", Name: "delivery_lag_seconds", Buckets: fastBuckets,
		Help: "Time from a message's apply on this node (publish to the fan-out hub) to a subscriber stream taking it from the window, per chunk (its oldest message).",
	})
	m.entryEvents = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "cluster", Name: "entry_events", Buckets: countBuckets,
		Help: "Events per raft log entry this node proposed (group commit).",
	})
	m.writeStages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "write_stage_seconds", Buckets: stageBuckets,
		Help: "Time a write spends in one stage of the write path on this node (stage: queue, raft, log_append, replicate, follower_append, commit, fsm_apply, cluster; see docs/metrics.md).",
	}, []string{"stage"})
	m.stageObs = make(map[string]prometheus.Observer, len(cluster.WriteStages))
	for _, st := range cluster.WriteStages {
		m.stageObs[st] = m.writeStages.WithLabelValues(st)
	}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, m.streams, m.writes, m.writeDuration,
		m.applyEntries, m.applySeconds, m.commitSeconds, m.snapshotSecs, m.snapshotGauge,
		m.deliveryLag, m.entryEvents, m.writeStages, m.node,
	}
	raft, err := raftSink()
	if err != nil {
		return nil, err
	}
	cs = append(cs, raft)
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Registry returns the node's registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the GET /metrics handler: the registry in Prometheus text
// (or OpenMetrics, when asked) format. A collector that fails is reported
// in the log and skipped; the rest are served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}

// InitializeRPCs creates the per-RPC series (at zero) of every method s
// serves, and the in-flight series of every streaming one, so they exist
// before the first call.
func (m *Metrics) InitializeRPCs(s *grpc.Server) {
	m.grpc.InitializeMetrics(s)
	for service, info := range s.GetServiceInfo() {
		for _, method := range info.Methods {
			if method.IsClientStream || method.IsServerStream {
				m.streams.WithLabelValues(service, method.Name)
			}
		}
	}
}

// UnaryInterceptor returns the per-RPC metrics interceptor for unary calls.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return m.grpc.UnaryServerInterceptor()
}

// StreamInterceptor returns the per-RPC metrics interceptor for streams.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return m.grpc.StreamServerInterceptor()
}

// StreamStarted counts a stream of service/method in flight; call
// StreamEnded when it ends.
func (m *Metrics) StreamStarted(service, method string) {
	m.streams.WithLabelValues(service, method).Inc()
}

// StreamEnded counts a stream StreamStarted counted as ended.
func (m *Metrics) StreamEnded(service, method string) {
	m.streams.WithLabelValues(service, method).Dec()
}

// WriteAcknowledged counts a message write acknowledged after d.
func (m *Metrics) WriteAcknowledged(d time.Duration) {
	m.writes.Inc()
	m.writeDuration.Observe(d.Seconds())
}

// ObserveApply records a batch of entries applied to the projection in d
// (projection.Observer).
func (m *Metrics) ObserveApply(entries int, d time.Duration) {
	m.applyEntries.Observe(float64(entries))
	m.applySeconds.Observe(d.Seconds())
}

// ObserveCommit records a projection commit that took d
// (projection.Observer).
func (m *Metrics) ObserveCommit(d time.Duration) { m.commitSeconds.Observe(d.Seconds()) }

// ObserveSnapshot records a projection snapshot copy of size bytes written
// in d (projection.Observer).
func (m *Metrics) ObserveSnapshot(size int64, d time.Duration) {
	m.snapshotGauge.Set(float64(size))
	m.snapshotSecs.Observe(d.Seconds())
}

// ObserveDeliveryLag records how long the oldest message of a chunk waited
// in the fan-out window before a stream took it (fanout.Observer).
func (m *Metrics) ObserveDeliveryLag(d time.Duration) { m.deliveryLag.Observe(d.Seconds()) }

// ObserveEntryEvents records a raft entry proposed with n events
// (cluster.Observer).
func (m *Metrics) ObserveEntryEvents(n int) { m.entryEvents.Observe(float64(n)) }

// ObserveWriteStage records that a write spent d in stage
// (cluster.Observer; stage is one of cluster.WriteStages).
func (m *Metrics) ObserveWriteStage(stage string, d time.Duration) {
	o, ok := m.stageObs[stage]
	if !ok {
		o = m.writeStages.WithLabelValues(stage)
	}
	o.Observe(d.Seconds())
}
