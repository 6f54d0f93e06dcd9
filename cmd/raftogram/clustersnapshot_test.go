package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
)

// cluster snapshot snapshots every node, or the one named; an unknown node
// is an invalid argument; a stopped node fails the command.
func TestCLIClusterSnapshot(t *testing.T) {
	c, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "general").expect(t, exitOK, nil, nil)
	c.Converged()

	r := runCLI(t, addrs, "cluster", "snapshot")
	r.expect(t, exitOK, []string{"NODE", "ADDRESS", "SNAPSHOT", "CREATED"}, nil)
	rows := tableRows(t, r.stdout)
	if len(rows) != 3 {
		t.Fatalf("snapshot table:\n%s", r.stdout)
	}
	for i, row := range rows {
		if len(row) != 4 || row[0] != c.NodeID(i) || row[1] != c.Addr(i) || row[2] == "0" || row[3] != "yes" {
			t.Fatalf("snapshot row %d %q:\n%s", i, row, r.stdout)
		}
		if got := fmt.Sprint(c.Server(i).Node().Status().SnapshotIndex); got != row[2] {
			t.Fatalf("%s holds snapshot %s, the command printed %s", c.NodeID(i), got, row[2])
		}
	}

	// Only node2, nothing new since: not created, same index.
	var res struct {
		Nodes []jsonSnapshot `json:"nodes"`
	}
	runCLI(t, addrs, "cluster", "snapshot", "--node", c.NodeID(1), "--json").decode(t, &res)
	if len(res.Nodes) != 1 || res.Nodes[0].NodeID != c.NodeID(1) || !res.Nodes[0].OK || res.Nodes[0].Created ||
		fmt.Sprint(res.Nodes[0].SnapshotIndex) != rows[1][2] {
		t.Fatalf("snapshot --node %s: %+v", c.NodeID(1), res)
	}
	// -compact-log after a write: every node snapshots past the first
	// round and drops the log it covers.
	runCLI(t, addrs, "send", "general", "x", "--author", "a").expect(t, exitOK, nil, nil)
	c.Converged()
	runCLI(t, addrs, "cluster", "snapshot", "--compact-log", "--json").decode(t, &res)
	if len(res.Nodes) != 3 {
		t.Fatalf("snapshot --compact-log: %+v", res)
	}
	for i, n := range res.Nodes {
		first, err := strconv.ParseUint(rows[i][2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if !n.OK || !n.Created || n.SnapshotIndex <= first {
			t.Fatalf("snapshot --compact-log node %d: %+v (first snapshot %s)", i, n, rows[i][2])
		}
	}
	runCLI(t, addrs, "cluster", "snapshot", "--node", "node9").
		expect(t, exitError, nil, []string{`raftogram cluster snapshot: invalid argument: node "node9" is not a member of the cluster`})

	down := (c.Leader() + 1) % 3
	c.Stop(down)
	r = runCLI(t, addrs, "cluster", "snapshot", "--timeout", "5s")
	r.expect(t, exitError, []string{c.Addr(down) + "  failed"}, []string{"raftogram cluster snapshot: " + c.Addr(down) + ": unavailable: "})
	if n := strings.Count(r.stdout, "failed"); n != 1 {
		t.Fatalf("%d failed rows:\n%s", n, r.stdout)
	}
}

// cluster digest shows equal digests at the same applied index once the
// nodes converge; a stopped node is listed as unreachable.
func TestCLIClusterDigest(t *testing.T) {
	c, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "general").expect(t, exitOK, nil, nil)
	runCLI(t, addrs, "send", "general", "hello", "--author", "alice").expect(t, exitOK, nil, nil)
	c.Converged()
	var res struct {
		Agree bool         `json:"agree"`
		Nodes []jsonDigest `json:"nodes"`
	}
	poll(t, "three nodes agreeing at one index", func() error {
		runCLI(t, addrs, "cluster", "digest", "--json").decode(t, &res)
		if !res.Agree || len(res.Nodes) != 3 {
			return fmt.Errorf("%+v", res)
		}
		for i, n := range res.Nodes {
			if n.Agrees != "yes" || n.NodeID != c.NodeID(i) || n.Address != c.Addr(i) || len(n.Digest) != 64 ||
				n.Digest != res.Nodes[0].Digest || n.AppliedIndex != res.Nodes[0].AppliedIndex {
				return fmt.Errorf("node %d: %+v", i, n)
			}
		}
		return nil
	})
	r := runCLI(t, addrs, "cluster", "digest")
	r.expect(t, exitOK, []string{"NODE", "ADDRESS", "APPLIED", "DIGEST", "AGREES", res.Nodes[0].Digest}, nil)

	down := (c.Leader() + 1) % 3
	c.Stop(down)
	r = runCLI(t, addrs, "cluster", "digest", "--timeout", "5s")
	r.expect(t, exitOK, []string{c.Addr(down) + "  unreachable"}, []string{"raftogram cluster digest: " + c.Addr(down) + ": unavailable: "})
}

// disagreeing gathers a cluster whose nodes 1 and 2 are at the same index
// with different digests.
type disagreeing struct {
	raftogramv1.UnimplementedAdminServer
}

func (disagreeing) GetClusterStatus(context.Context, *raftogramv1.GetClusterStatusRequest) (*raftogramv1.ClusterStatus, error) {
	node := func(id, digest string, index uint64) *raftogramv1.NodeReport {
		return &raftogramv1.NodeReport{NodeId: id, GrpcAddr: id + ":9000", Reachable: true, Status: &raftogramv1.NodeStatus{NodeId: id},
			Digest: &raftogramv1.Digest{NodeId: id, Digest: digest, AppliedIndex: index}}
	}
	return &raftogramv1.ClusterStatus{NodeId: "node1", Nodes: []*raftogramv1.NodeReport{
		node("node1", strings.Repeat("a", 64), 7), node("node2", strings.Repeat("b", 64), 7), node("node3", strings.Repeat("c", 64), 9),
	}}, nil
}

// Nodes at one index with different digests: exit 1, the index named on
// stderr, each of them marked; a node alone at its index is "-".
func TestCLIClusterDigestDisagreement(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	raftogramv1.RegisterAdminServer(s, disagreeing{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	r := runCLI(t, ln.Addr().String(), "cluster", "digest")
	r.expect(t, exitError, nil, []string{"raftogram cluster digest: digests differ at index 7: 2 different digests among 2 nodes"})
	rows := tableRows(t, r.stdout)
	if len(rows) != 3 || rows[0][4] != "no" || rows[1][4] != "no" || rows[2][4] != "-" {
		t.Fatalf("table:\n%s", r.stdout)
	}
	var res struct {
		Agree bool `json:"agree"`
	}
	r = runCLI(t, ln.Addr().String(), "cluster", "digest", "--json")
	if r.code != exitError {
		t.Fatalf("JSON exit %d", r.code)
	}
	r.code = exitOK
	r.decode(t, &res)
	if res.Agree {
		t.Fatal("agree true for disagreeing nodes")
	}
}

func TestCLIClusterSnapshotAndDigestHelp(t *testing.T) {
	for _, args := range [][]string{{"cluster", "snapshot", "--help"}, {"cluster", "digest", "-h"}} {
		r := runCLI(t, "127.0.0.1:1", args...)
		r.expect(t, exitOK, []string{"Usage: raftogram " + strings.Join(args[:2], " "), "-addrs", "-json", "-timeout", "Exit status: 0 success"}, nil)
	}
	runCLI(t, "127.0.0.1:1", "cluster", "snapshot", "--help").expect(t, exitOK, []string{"-node"}, nil)
	runCLI(t, "", "help", "cluster").expect(t, exitOK, []string{"snapshot", "digest"}, nil)
}
