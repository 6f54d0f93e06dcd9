package main

import (
	"fmt"
	"strings"
	"testing"
)

// statusJSON is `cluster status -json`.
type statusJSON struct {
	LeaderID string     `json:"leader_id"`
	Nodes    []jsonNode `json:"nodes"`
}

// clusterStatusJSON runs `cluster status -json` and decodes it.
func clusterStatusJSON(t *testing.T, addrs string) statusJSON {
	t.Helper()
	var st statusJSON
	runCLI(t, addrs, "cluster", "status", "--json").decode(t, &st)
	return st
}

// cluster status lists every node in a table and in JSON; transfer-leader
// moves the leader (to a named node or any), which status then shows; an
// unknown node is an error; a stopped node is listed as unreachable.
func TestCLIClusterStatusAndTransferLeader(t *testing.T) {
	c, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "general").expect(t, exitOK, nil, nil)
	l := c.Leader()

	r := runCLI(t, addrs, "cluster", "status")
	r.expect(t, exitOK, []string{"NODE", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "SNAPSHOT", "LAST_CONTACT", "VERSION"}, nil)
	rows := tableRows(t, r.stdout)
	if len(rows) != 3 {
		t.Fatalf("status table:\n%s", r.stdout)
	}
	for i, row := range rows {
		role := "follower"
		if i == l {
			role = "leader"
		}
		if len(row) != 10 || row[0] != c.NodeID(i) || row[1] != c.Addr(i) || row[2] != role {
			t.Fatalf("status row %d %q, want %s at %s as %s:\n%s", i, row, c.NodeID(i), c.Addr(i), role, r.stdout)
		}
		if i == l && row[8] != "-" {
			t.Fatalf("leader's LAST_CONTACT %q, want -", row[8])
		}
	}

	st := clusterStatusJSON(t, addrs)
	if st.LeaderID != c.NodeID(l) || len(st.Nodes) != 3 {
		t.Fatalf("status JSON %+v", st)
	}
	var maxCommit uint64
	for _, n := range st.Nodes {
		maxCommit = max(maxCommit, n.CommitIndex)
	}
	for i, n := range st.Nodes {
		if !n.Reachable || n.NodeID != c.NodeID(i) || n.Address != c.Addr(i) || n.Term == 0 || n.AppliedIndex == 0 ||
			n.LogAppliedIndex < n.AppliedIndex || n.Lag != maxCommit-min(maxCommit, n.LogAppliedIndex) || n.LeaderID != c.NodeID(l) || n.LeaderAddress != c.Addr(l) {
			t.Fatalf("status JSON node %d: %+v (max commit %d)", i, n, maxCommit)
		}
	}

	// Only one address given: the node asked gathers the whole cluster.
	if i := (l + 1) % 3; true {
		st := clusterStatusJSON(t, c.Addr(i))
		if len(st.Nodes) != 3 || st.LeaderID != c.NodeID(l) {
			t.Fatalf("status from one follower %+v, want every node and the leader", st)
		}
		for j, n := range st.Nodes {
			if !n.Reachable || n.NodeID != c.NodeID(j) || n.Address != c.Addr(j) {
				t.Fatalf("status from one follower, node %d: %+v", j, n)
			}
		}
	}

	// transfer-leader to a named follower; status shows it.
	to := (l + 1) % 3
	r = runCLI(t, addrs, "cluster", "transfer-leader", "--to", c.NodeID(to))
	r.expect(t, exitOK, []string{"LEADER"}, nil)
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][0] != c.NodeID(to) {
		t.Fatalf("transfer-leader table:\n%s", r.stdout)
	}
	poll(t, "status shows the new leader", func() error {
		if st := clusterStatusJSON(t, addrs); st.LeaderID != c.NodeID(to) {
			return fmt.Errorf("leader %q, want %s", st.LeaderID, c.NodeID(to))
		}
		return nil
	})
	if got := c.Leader(); got != to {
		t.Fatalf("cluster's leader is %s, want %s", c.NodeID(got), c.NodeID(to))
	}

	// To the leader itself: nothing moves. Without -to: another node leads.
	var res struct {
		LeaderID string `json:"leader_id"`
	}
	runCLI(t, addrs, "cluster", "transfer-leader", "--to", c.NodeID(to), "--json").decode(t, &res)
	if res.LeaderID != c.NodeID(to) {
		t.Fatalf("transfer to the leader itself = %+v", res)
	}
	runCLI(t, addrs, "cluster", "transfer-leader", "--json").decode(t, &res)
	if res.LeaderID == "" || res.LeaderID == c.NodeID(to) {
		t.Fatalf("transfer without -to = %+v, want a leader other than %s", res, c.NodeID(to))
	}
	poll(t, "status shows the leader transfer-leader named", func() error {
		if st := clusterStatusJSON(t, addrs); st.LeaderID != res.LeaderID {
			return fmt.Errorf("leader %q, want %s", st.LeaderID, res.LeaderID)
		}
		return nil
	})
	runCLI(t, addrs, "cluster", "transfer-leader", "--to", "node9").
		expect(t, exitError, nil, []string{"raftogram cluster transfer-leader: invalid argument: ", "node9"})

	// A stopped node is listed as unreachable; the command still succeeds.
	down := (c.Leader() + 1) % 3
	c.Stop(down)
	r = runCLI(t, addrs, "cluster", "status", "--timeout", "3s")
	r.expect(t, exitOK, []string{c.Addr(down) + "  unreachable"}, []string{"raftogram cluster status: " + c.Addr(down) + ": unavailable: "})
	if n := strings.Count(r.stdout, "unreachable"); n != 1 {
		t.Fatalf("%d unreachable rows:\n%s", n, r.stdout)
	}
	st = clusterStatusJSON(t, addrs)
	if n := st.Nodes[down]; n.Reachable || !strings.HasPrefix(n.Error, "unavailable: ") || n.NodeID != "" {
		t.Fatalf("stopped node in JSON %+v", n)
	}
}
