package server

import (
	"strings"
	"testing"
)

// A clean stop logs no ERROR line on the node that stops: neither a
// follower's nor a leader's, whose hand-over makes raft report the new
// leader's newer term (logged at debug; see cluster.expectedRaftError).
func TestCleanStopLogsNoError(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	c.send("general", "m1")
	// The leader first (it hands over), then a follower that is not the
	// new leader, so no stop happens while a peer is down (a leader logs
	// an unreachable peer as an error, rightly).
	for range 2 {
		i := c.leader()
		if i != l {
			i = 3 - l - i
		}
		before := len(c.logs[i].String())
		c.stop(i)
		stopLog := c.logs[i].String()[before:]
		if !strings.Contains(stopLog, "shutting down") || !strings.Contains(stopLog, "msg=stopped") {
			t.Fatalf("%s: the stop was not logged:\n%s", c.cfgs[i].NodeID, stopLog)
		}
		for _, line := range strings.Split(stopLog, "\n") {
			if strings.Contains(line, "level=ERROR") {
				t.Errorf("%s logged an error while stopping cleanly: %s", c.cfgs[i].NodeID, line)
			}
		}
	}
	if !strings.Contains(c.logs[l].String(), "leadership transferred before shutdown") {
		t.Errorf("the leader did not hand over before stopping:\n%s", c.logs[l].String())
	}
}
