package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/raftogram/raftogram/bench"
)

func init() {
	subcommands["bench"] = benchCommand
	summaries["bench"] = "load generator for a running cluster (docs/bench.md)"
}

// benchCommand is `raftogram bench [flags]`: a load generator for a running
// cluster (see docs/bench.md). Progress goes to stderr once a second; the
// summary, or with -json exactly one JSON line, goes to stdout. Exit status:
// 0 after a run, 1 when the run could not start, measured no successful op,
// or found a subscriber or a read missing committed messages, 2 on a usage
// error.
func benchCommand(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	cfg, asJSON, err := benchParse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg.Progress = stderr
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "raftogram bench:", err)
		return 1
	}
	if asJSON {
		err = bench.WriteJSON(stdout, res)
	} else {
		err = bench.WriteSummary(stdout, res)
	}
	if err != nil {
		fmt.Fprintln(stderr, "raftogram bench:", err)
		return 1
	}
	if problem := benchProblem(res); problem != "" {
		fmt.Fprintln(stderr, "raftogram bench:", problem)
		return 1
	}
	return 0
}

// benchProblem says what makes a finished run a failure, or "".
func benchProblem(res *bench.Result) string {
	switch d := res.DeliveryStats; {
	case res.Ops == 0:
		return "no op succeeded in the measured window"
	case res.ErrorClasses[bench.ClassBadRead] > 0:
		return fmt.Sprintf("%d reads missed committed messages", res.ErrorClasses[bench.ClassBadRead])
	case d != nil && (d.Gaps > 0 || d.OutOfOrder > 0 || d.SubscribersComplete < d.Subscribers):
		return fmt.Sprintf("%d of %d subscribers incomplete (%d gaps, %d out of order, delivered %d of %d)",
			d.Subscribers-d.SubscribersComplete, d.Subscribers, d.Gaps, d.OutOfOrder, d.Delivered, d.Expected)
	}
	return ""
}

// benchParse turns the command line into a checked bench.Config and whether
// to print JSON. Usage errors are reported on stderr; -h returns
// flag.ErrHelp.
func benchParse(args []string, stderr io.Writer) (bench.Config, bool, error) {
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("raftogram bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := fs.String("addrs", strings.Join(cfg.Addrs, ","), "comma-separated gRPC addresses of the nodes; the leader is found from any of them")
	fs.StringVar(&cfg.Workload, "workload", cfg.Workload, "send, read, subscribe, mixed or publish (pipelined: each client keeps -inflight messages in flight on one Publish stream)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients (goroutines) issuing ops")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "gRPC connections per node that the clients and subscribers share")
	fs.IntVar(&cfg.Channels, "channels", cfg.Channels, "channels; each op picks one uniformly at random")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "payload bytes per message (subscribe and mixed need >= 8: the send time travels in it)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured window (ignored when -n is set)")
	fs.Int64Var(&cfg.N, "n", 0, "measured ops in total; when set, overrides -duration")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured warm-up before the measured window")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total ops/s over all clients; 0 = closed loop, as fast as the clients go")
	asJSON := fs.Bool("json", false, "print exactly one JSON line (the shared anchor benchmark's fields) instead of the summary")
	fs.StringVar(&cfg.Label, "label", "", "free-form label copied to the result")
	fs.StringVar(&cfg.ChannelPrefix, "channel-prefix", "", "channel ids are PREFIX-0..PREFIX-(K-1) (default bench-<UTC time>-<random>, so reruns never collide)")
	fs.IntVar(&cfg.Subscribers, "subscribers", 0, "subscribe/mixed: Subscribe streams, subscriber j on channel j % channels (default one per channel)")
	fs.IntVar(&cfg.History, "history", cfg.History, "read/mixed: messages preloaded into each channel before the run")
	fs.IntVar(&cfg.ReadLimit, "read-limit", cfg.ReadLimit, "read/mixed: messages asked per ReadHistory")
	fs.Float64Var(&cfg.ReadFraction, "read-fraction", cfg.ReadFraction, "mixed: share of the clients' ops that are reads")
	fs.IntVar(&cfg.Inflight, "inflight", bench.DefaultInflight, "publish: messages each client keeps in flight (its Publisher's MaxPending)")
	fs.StringVar(&cfg.Consistency, "consistency", cfg.Consistency, "read and subscribe level: leader (the leader serves all), linearizable, at-least or local (spread round-robin over every node)")
	fs.DurationVar(&cfg.AttemptTimeout, "attempt-timeout", cfg.AttemptTimeout, "deadline of one RPC attempt")
	fs.DurationVar(&cfg.OpTimeout, "op-timeout", cfg.OpTimeout, "an op still failing after this long, retries included, counts as an error")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "subscribe/mixed: how long to wait for subscribers to catch up after the last send")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", cfg.SetupTimeout, "limit on creating channels (finding the leader), preloading and subscribing")
	metricsURLs := fs.String("metrics-urls", "", "comma-separated /metrics URLs of the nodes (http://HOST:PORT/metrics on health_bind_addr), scraped at the start and end of the measured window for the write-stage breakdown")
	pids := fs.String("server-pids", "", "comma-separated PIDs of the node processes, to report their CPU use over the measured window (Linux)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: raftogram bench [flags]\n\n"+
			"Drives a running cluster with a send, read, subscribe, mixed or publish workload and\n"+
			"reports throughput, latency percentiles, errors by class and, for subscribers,\n"+
			"delivery latency and completeness. Progress goes to stderr every second; the\n"+
			"summary (or with -json one JSON line) goes to stdout. See docs/bench.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	fail := func(err error) (bench.Config, bool, error) {
		fmt.Fprintln(stderr, "raftogram bench:", err)
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg.Addrs = benchSplit(*addrs)
	cfg.MetricsURLs = benchSplit(*metricsURLs)
	for _, p := range benchSplit(*pids) {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return fail(fmt.Errorf("-server-pids: %q is not a process id", p))
		}
		cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
	}
	if err := cfg.Normalize(); err != nil {
		return fail(err)
	}
	return cfg, *asJSON, nil
}

// benchSplit splits a comma-separated list, dropping empty entries.
func benchSplit(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
