package metrics

import (
	"fmt"
	"sync"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft reports its own timings and counters (commit and apply
// time, append and replication RPCs, fsync, elections, last contact, ...)
// through go-metrics' process-wide global: raft v1.7 calls the functions of
// github.com/hashicorp/go-metrics/compat, which (without the
// hashicorpmetrics build tag) forward to github.com/armon/go-metrics'
// global. That global is one per process, so its sink is too: the first
// New installs one go-metrics Prometheus sink (as Consul does) and every
// node's registry collects it. One node per process, the way raftogram
// runs, reports exactly its own raft; several nodes in one process (tests)
// each report the sum of all of them. Installing it once (sync.Once) means
// no node swaps the global under another, so concurrent nodes neither race
// nor lose each other's samples. Names are raftogram_ + the go-metrics key
// joined with "_" (raftogram_raft_commitTime); timings are summaries in
// milliseconds, as go-metrics reports them.

var raftMetrics struct {
	once sync.Once
	sink *gmprom.PrometheusSink
	err  error
}

// raftSink returns the process's go-metrics Prometheus sink, installing it
// as go-metrics' global on first use.
func raftSink() (prometheus.Collector, error) {
	raftMetrics.once.Do(func() {
		// The sink registers itself; give it a registry of its own so the
		// default one stays untouched. Every node registry adds it too.
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
			Registerer: prometheus.NewRegistry(),
			Name:       Namespace + "_go_metrics_sink",
		})
		if err != nil {
			raftMetrics.err = fmt.Errorf("metrics: go-metrics prometheus sink: %w", err)
			return
		}
		cfg := gometrics.DefaultConfig(Namespace)
		cfg.EnableHostname = false       // no host name in the metric names
		cfg.EnableRuntimeMetrics = false // the Go collector covers the runtime
		cfg.EnableServiceLabel = false   // the service name is the prefix
		if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
			raftMetrics.err = fmt.Errorf("metrics: install go-metrics global: %w", err)
			return
		}
		raftMetrics.sink = sink
	})
	return raftMetrics.sink, raftMetrics.err
}
