package torture

import (
	"context"
	"flag"
	"os"
	"strconv"
	"testing"
	"time"
)

var (
	flagSeed     = flag.Uint64("torture.seed", 0, "seed of TestTortureShort (0: $TORTURE_SEED, else from the clock)")
	flagDuration = flag.Duration("torture.duration", 0, "traffic duration of TestTortureShort (0: $TORTURE_DURATION, else 75s)")
	flagNodes    = flag.Int("torture.nodes", 3, "cluster size of TestTortureShort")
	flagKeep     = flag.Bool("torture.keep", false, "keep the working directory of a passing run")
)

// TestTortureShort is the short profile: a three-node cluster under 16
// clients for about 75 seconds with a fault every few seconds, then every
// checker. A failure prints the seed; replay it with
//
//	go test ./torture -run TestTortureShort -torture.seed=SEED
//
// or TORTURE_SEED=SEED go test ./torture -run TestTortureShort.
func TestTortureShort(t *testing.T) {
	if testing.Short() {
		t.Skip("torture runs a real cluster for over a minute; skipped with -short")
	}
	seed := *flagSeed
	if seed == 0 {
		if s, err := strconv.ParseUint(os.Getenv("TORTURE_SEED"), 10, 64); err == nil {
			seed = s
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	duration := *flagDuration
	if duration == 0 {
		if d, err := time.ParseDuration(os.Getenv("TORTURE_DURATION")); err == nil {
			duration = d
		}
	}
	if duration == 0 {
		duration = 75 * time.Second
	}
	t.Logf("torture seed %d (replay: go test ./torture -run TestTortureShort -torture.seed=%d)", seed, seed)
	dir, err := os.MkdirTemp("", "raftogram-torture-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration+4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Options{
		Seed: seed, Duration: duration, Nodes: *flagNodes, Dir: dir,
		// The race detector slows the harness's own clients; the nodes
		// run without it.
		MinThroughput: 10,
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatalf("seed %d: harness error: %v (workdir kept: %s)", seed, err, dir)
	}
	t.Log("\n" + sum.Format())
	if !sum.OK {
		t.Fatalf("torture failed with seed %d; workdir kept: %s", seed, dir)
	}
	if *flagKeep {
		t.Logf("workdir: %s", dir)
	} else {
		os.RemoveAll(dir)
	}
}
