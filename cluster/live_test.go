package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// stuckFSM reports a batch that began long ago.
type stuckFSM struct {
	FSM
	since time.Time
}

func (f stuckFSM) ApplyingSince() time.Time { return f.since }

func TestLivenessOfARunningAndAStoppedNode(t *testing.T) {
	n, _ := openSingleNode(t)
	checks := n.Liveness(context.Background())
	if len(checks) != 3 {
		t.Fatalf("Liveness = %v, want loops, raft and apply", checks)
	}
	for i, want := range []string{"loops", "raft", "apply"} {
		if checks[i].Name != want || checks[i].Err != nil {
			t.Errorf("check %d = %s: %v, want %s passing", i, checks[i].Name, checks[i].Err, want)
		}
	}

	real := n.fsm
	n.fsm = stuckFSM{FSM: real, since: time.Now().Add(-LiveApplyMax - time.Second)}
	if c := n.Liveness(context.Background())[2]; c.Err == nil {
		t.Error("a batch applying for longer than LiveApplyMax passes the apply check")
	}
	n.fsm = stuckFSM{FSM: real, since: time.Now()}
	if c := n.Liveness(context.Background())[2]; c.Err != nil {
		t.Errorf("a batch that just began fails the apply check: %v", c.Err)
	}
	n.fsm = real

	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := n.Liveness(context.Background())[1]; !errors.Is(c.Err, raft.ErrRaftShutdown) {
		t.Errorf("raft check after Close = %v, want ErrRaftShutdown", c.Err)
	}
}
