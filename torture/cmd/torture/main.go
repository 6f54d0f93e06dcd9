// Command torture runs raftogram's fault-injection harness: a real
// cluster, concurrent clients, a seeded nemesis, and the checkers.
//
//	go run ./torture/cmd/torture -duration 10m -seed 42
//	go run ./torture/cmd/torture -secure    # TLS (mutual on Raft) and token auth on
//
// It prints the seed first and the summary last, and exits 0 when every
// checker passed, 1 when one failed, 2 when the harness could not run. The
// working directory (configs, node logs, history.json, summary.json,
// porcupine visualizations) is kept when the run fails or with -keep.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/raftogram/raftogram/torture"
)

func main() {
	os.Exit(run())
}

func run() int {
	seed := flag.Uint64("seed", 0, "random seed for faults and traffic (0: pick one from the clock and print it)")
	duration := flag.Duration("duration", 2*time.Minute, "traffic duration, faults included")
	nodes := flag.Int("nodes", 3, "cluster size: 3 or 5")
	writers := flag.Int("writers", 16, "concurrent writer/reader clients")
	channels := flag.Int("channels", 4, "channels written")
	faults := flag.String("faults", "", "comma-separated faults to enable (default all): "+strings.Join(torture.AllFaults, ","))
	dir := flag.String("dir", "", "working directory (default: a new temporary directory)")
	bin := flag.String("bin", "", "prebuilt raftogram binary (default: go build ./cmd/raftogram)")
	minTP := flag.Float64("min-throughput", 20, "acked writes/s required in the fault-free tail")
	calm := flag.Duration("calm", 10*time.Second, "fault-free tail of the run")
	keep := flag.Bool("keep", false, "keep the working directory after a passing run")
	secure := flag.Bool("secure", false, "run every node with TLS (mutual on Raft) and token auth; clients use TLS and a token (material in <dir>/secure)")
	flag.Parse()
	if *secure && *profile != "" {
		fmt.Fprintln(os.Stderr, "torture: -secure applies to the default profile only")
		return 2
	}
	if *profile == "failover" {
		return runFailover(*nodes, *writers, *bin, *dir, *keep)
	} else if *profile != "" {
		fmt.Fprintf(os.Stderr, "torture: unknown -profile %q (known: failover)\n", *profile)
		return 2
	}

	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("torture: seed %d\n", *seed)
	if *nodes != 3 && *nodes != 5 {
		fmt.Fprintln(os.Stderr, "torture: -nodes must be 3 or 5")
		return 2
	}
	workdir := *dir
	if workdir == "" {
		var err error
		if workdir, err = os.MkdirTemp("", "raftogram-torture-"); err != nil {
			fmt.Fprintln(os.Stderr, "torture:", err)
			return 2
		}
	}
	var fl []string
	if *faults != "" {
		fl = strings.Split(*faults, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := torture.Run(ctx, torture.Options{
		Seed: *seed, Duration: *duration, Nodes: *nodes, Writers: *writers, Channels: *channels,
		Faults: fl, Bin: *bin, Dir: workdir, MinThroughput: *minTP, CalmWindow: *calm, Secure: *secure,
		Logf: func(format string, args ...any) {
			fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "torture: seed %d: harness error: %v\nworkdir kept: %s\n", *seed, err, workdir)
		return 2
	}
	fmt.Print(sum.Format())
	if !sum.OK {
		fmt.Printf("torture: FAILED with seed %d; workdir kept: %s\n", *seed, workdir)
		return 1
	}
	if *keep || *dir != "" {
		fmt.Printf("torture: passed; workdir: %s\n", workdir)
	} else {
		os.RemoveAll(workdir)
	}
	return 0
}
