package torture

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAckLogGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a := &ackLog{times: []time.Time{at(0), at(10), at(20), at(400), at(410), at(1000)}}
	if got, ok := a.firstAfter(at(20)); !ok || !got.Equal(at(400)) {
		t.Errorf("firstAfter(20ms) = %v, %v; want 400ms", got.Sub(t0), ok)
	}
	if _, ok := a.firstAfter(at(1000)); ok {
		t.Error("firstAfter(last) found an acknowledgement")
	}
	// From 15 ms (after the ack at 10) to the ack at 410: the gap 20→400.
	if got := a.longestGap(at(15), at(410)); got != 380*time.Millisecond {
		t.Errorf("longestGap(15ms, 410ms) = %v, want 380ms", got)
	}
	// Counting starts at the last ack before from: 410→1000.
	if got := a.longestGap(at(500), at(1000)); got != 590*time.Millisecond {
		t.Errorf("longestGap(500ms, 1000ms) = %v, want 590ms", got)
	}
}

func TestDistribution(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*100*time.Millisecond)
	}
	got := distribution(ds)
	for _, want := range []string{"median 1.1s", "p99 2s", "max 2s", "(ms: 2000 1900"} {
		if !strings.Contains(got, want) {
			t.Errorf("distribution = %q, missing %q", got, want)
		}
	}
}

// TestGracefulRestartHandsOff SIGTERMs the leader of a three-node cluster
// of real processes three times while 8 clients write, and checks that each
// time the node exited 0 after logging a completed hand-off (which it logs
// only once it has heard from the new leader). The longest gaps between
// acknowledged writes are logged, not asserted: they depend on the
// machine's load.
func TestGracefulRestartHandsOff(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of real processes; skipped with -short")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := MeasureFailover(ctx, FailoverOptions{Dir: dir, Clients: 8, Terms: 3, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Format())
	if len(rep.TermExits) > 0 {
		t.Errorf("unclean stops: %v", rep.TermExits)
	}
	if rep.HandOffs != len(rep.Terms) || len(rep.Terms) != 3 {
		t.Errorf("%d of %d graceful stops handed leadership off, want all 3", rep.HandOffs, len(rep.Terms))
	}
	if t.Failed() {
		for _, f := range []string{"node1.log", "node2.log", "node3.log"} {
			if b, err := os.ReadFile(dir + "/" + f); err == nil {
				t.Logf("--- %s ---\n%s", f, b)
			}
		}
	}
}
