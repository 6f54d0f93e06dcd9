package server

import (
	"strings"
	"testing"
)

// TestLeaderHandsOffBeforeStopping stops the leader gracefully after both
// followers restarted (so the leader's pooled Raft connections to them
// lead to processes that are gone, the way a rolling restart leaves them)
// and checks that the hand-off worked: the old leader logged the transfer
// naming the node that leads now, which it had therefore heard from before
// it stopped, and that node won the very next term (a TimeoutNow election,
// not one after a heartbeat timeout and failed pre-votes).
func TestLeaderHandsOffBeforeStopping(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.leader()
	mustCreate(t, c.client(old), "general")
	mustSend(t, c.client(old), "general", "msg-1")
	for i := range c.servers {
		if i == old {
			continue
		}
		c.stop(i)
		c.start(i)
		if l := c.leader(); l != old {
			t.Fatalf("leader moved from %s to %s while a follower restarted", c.cfgs[old].NodeID, c.cfgs[l].NodeID)
		}
	}
	mustSend(t, c.client(old), "general", "msg-2")
	c.converged()
	term := c.servers[old].Node().Term()

	c.stop(old)
	l := c.leader()
	newID := c.cfgs[l].NodeID
	log := c.logs[old].String()
	handedTo := ""
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="leadership transferred before shutdown"`) {
			_, after, _ := strings.Cut(line, " leader_id=")
			handedTo, _, _ = strings.Cut(after, " ")
		}
	}
	if handedTo != newID {
		t.Fatalf("old leader %s logged a hand-off to %q before stopping, want one to %s (the leader now)", c.cfgs[old].NodeID, handedTo, newID)
	}
	if strings.Contains(log, "leadership transfer before shutdown failed") {
		t.Fatalf("old leader logged a failed hand-off")
	}
	if got := c.servers[l].Node().Term(); got != term+1 {
		t.Fatalf("new leader %s is in term %d, want %d (one election, the transfer's)", newID, got, term+1)
	}
	if got := c.send("general", "msg-3"); got.GetSequence() != 3 {
		t.Fatalf("write after the hand-off got sequence %d, want 3", got.GetSequence())
	}
}
