package torture

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/raftogram/raftogram/config"
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

// TestTortureSecure is the secure profile: the short profile's checkers
// over a three-node cluster with mutual TLS on Raft (through the link
// proxies), TLS and token auth on gRPC, for 30 seconds of traffic with a
// fixed seed and the faults that reconnect Raft links (kills, a pause, a
// partition, a snapshot catch-up). Every message in the final log must
// carry the writer token's principal as author: the nodes authenticated
// every write and filled the author in.
func TestTortureSecure(t *testing.T) {
	if testing.Short() {
		t.Skip("torture runs a real cluster for about a minute; skipped with -short")
	}
	const seed = 20260
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Options{
		Seed: seed, Duration: 30 * time.Second, Nodes: 3, Writers: 8, Dir: dir, Secure: true,
		Faults:        []string{FaultKillLeader, FaultPauseLeader, FaultPartitionLeader, FaultSnapshotCatchup},
		CalmWindow:    5 * time.Second,
		MinThroughput: 10,
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatalf("seed %d: harness error: %v", seed, err)
	}
	t.Log("\n" + sum.Format())
	if !sum.OK || !sum.Secure {
		t.Fatalf("secure torture failed with seed %d (secure=%v)", seed, sum.Secure)
	}
	if len(sum.Faults) == 0 || sum.Acked == 0 {
		t.Fatalf("the run proved nothing: %d faults, %d acked writes", len(sum.Faults), sum.Acked)
	}
	for i := range 3 {
		id := nodeID(i)
		cfg, err := config.Load(filepath.Join(dir, "config."+id+".yaml"), true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.TLS.Enabled() || !cfg.Auth.Enabled() || cfg.TLS.Health {
			t.Fatalf("%s ran with tls=%v auth=%v tls.health=%v, want TLS and auth on, health plain", id, cfg.TLS.Enabled(), cfg.Auth.Enabled(), cfg.TLS.Health)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "final.json"))
	if err != nil {
		t.Fatal(err)
	}
	var final struct {
		Log map[string][]MsgRef `json:"log"`
	}
	if err := json.Unmarshal(b, &final); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ch, msgs := range final.Log {
		for _, m := range msgs {
			n++
			if m.Author != "writer" {
				t.Fatalf("%s#%d has author %q, want the writer token's principal", ch, m.Seq, m.Author)
			}
		}
	}
	if n != sum.FinalLog {
		t.Fatalf("final.json holds %d messages, the summary %d", n, sum.FinalLog)
	}
}
