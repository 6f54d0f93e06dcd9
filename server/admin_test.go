package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
)

// GetClusterStatus on a follower lists every configured node with the
// leader's commit index and each node's lag; digests gathered with it agree
// at the same applied index; a stopped node is listed unreachable with the
// reason.
func TestAdminClusterStatusGatheredByOneNode(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	mustSend(t, c.client(l), "general", "m1")
	c.converged()
	f := c.followers(l)[0]

	var cs *raftogramv1.ClusterStatus
	waitFor(t, "every node reachable, at the same applied index, with equal digests", 10*time.Second, func() error {
		var err error
		cs, err = c.admin(f).GetClusterStatus(ctxT(t), &raftogramv1.GetClusterStatusRequest{IncludeDigests: true})
		if err != nil {
			return err
		}
		if len(cs.GetNodes()) != 3 {
			return fmt.Errorf("%d nodes", len(cs.GetNodes()))
		}
		first := cs.GetNodes()[0].GetDigest()
		for _, n := range cs.GetNodes() {
			d := n.GetDigest()
			if !n.GetReachable() || d == nil || d.GetAppliedIndex() != first.GetAppliedIndex() || n.GetLag() != 0 {
				return fmt.Errorf("node %s: reachable %v, lag %d, digest %v (%s)", n.GetNodeId(), n.GetReachable(), n.GetLag(), d, n.GetDigestError())
			}
			if d.GetDigest() != first.GetDigest() || d.GetNodeId() != n.GetNodeId() {
				t.Fatalf("digests differ at index %d: %v vs %v", d.GetAppliedIndex(), d, first)
			}
		}
		return nil
	})
	if cs.GetNodeId() != c.cfgs[f].NodeID || cs.GetLeaderId() != c.cfgs[l].NodeID || cs.GetLeaderCommitIndex() == 0 {
		t.Fatalf("cluster status header %v", cs)
	}
	for i, n := range cs.GetNodes() {
		st := n.GetStatus()
		wantRole := "follower"
		if i == l {
			wantRole = "leader"
		}
		if n.GetNodeId() != c.cfgs[i].NodeID || n.GetGrpcAddr() != c.cfgs[i].GRPCBindAddr || st.GetNodeId() != c.cfgs[i].NodeID ||
			st.GetRole() != wantRole || st.GetVersion() != testVersion || st.GetLogAppliedIndex() < st.GetAppliedIndex() {
			t.Fatalf("node %d: %v", i, n)
		}
	}
	if i := l; cs.GetLeaderCommitIndex() != cs.GetNodes()[i].GetStatus().GetCommitIndex() {
		t.Fatalf("leader_commit_index %d is not the leader's %d", cs.GetLeaderCommitIndex(), cs.GetNodes()[i].GetStatus().GetCommitIndex())
	}

	down := c.followers(l)[1]
	c.stop(down)
	cs, err := c.admin(f).GetClusterStatus(ctxT(t), &raftogramv1.GetClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := cs.GetNodes()[down]
	if n.GetReachable() || codes.Code(n.GetErrorCode()) != codes.Unavailable || n.GetError() == "" || n.GetStatus() != nil {
		t.Fatalf("stopped node: %v", n)
	}
	if !cs.GetNodes()[l].GetReachable() || !cs.GetNodes()[f].GetReachable() || cs.GetLeaderId() != c.cfgs[l].NodeID {
		t.Fatalf("running nodes with one stopped: %v", cs)
	}
}

// TakeSnapshot snapshots the node asked at its applied index, then reports
// created false while nothing new was applied.
func TestAdminTakeSnapshotAndDigest(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	mustSend(t, c.client(l), "general", "m1")
	c.converged()
	f := c.followers(l)[0]
	before := c.servers[f].Node().Status().SnapshotIndex
	snap, err := c.admin(f).TakeSnapshot(ctxT(t), &raftogramv1.TakeSnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	applied := c.servers[f].Store().AppliedIndex()
	if !snap.GetCreated() || snap.GetSnapshotIndex() <= before || snap.GetSnapshotIndex() > applied {
		t.Fatalf("TakeSnapshot = %v; snapshot index before %d, applied %d", snap, before, applied)
	}
	if got := c.servers[f].Node().Status().SnapshotIndex; got != snap.GetSnapshotIndex() {
		t.Fatalf("node reports snapshot index %d after TakeSnapshot answered %d", got, snap.GetSnapshotIndex())
	}
	again, err := c.admin(f).TakeSnapshot(ctxT(t), &raftogramv1.TakeSnapshotRequest{})
	if err != nil || again.GetCreated() || again.GetSnapshotIndex() != snap.GetSnapshotIndex() {
		t.Fatalf("second TakeSnapshot with nothing new = %v, %v; want %d not created", again, err, snap.GetSnapshotIndex())
	}

	// compact_log: a snapshot that also drops the log it covers.
	mustSend(t, c.client(l), "general", "m2")
	c.converged()
	compacted, err := c.admin(f).TakeSnapshot(ctxT(t), &raftogramv1.TakeSnapshotRequest{CompactLog: true})
	if err != nil || !compacted.GetCreated() || compacted.GetSnapshotIndex() <= snap.GetSnapshotIndex() {
		t.Fatalf("TakeSnapshot compact_log = %v, %v; want a new snapshot past %d", compacted, err, snap.GetSnapshotIndex())
	}
	if got := c.servers[f].Node().Status().SnapshotIndex; got != compacted.GetSnapshotIndex() {
		t.Fatalf("node reports snapshot index %d after compact_log answered %d", got, compacted.GetSnapshotIndex())
	}
	applied = c.servers[f].Store().AppliedIndex()

	d, err := c.admin(f).GetDigest(ctxT(t), &raftogramv1.GetDigestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.servers[l].Store().Digest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.GetNodeId() != c.cfgs[f].NodeID || d.GetAppliedIndex() != applied || d.GetDigest() != want || len(d.GetDigest()) != 64 ||
		strings.Trim(d.GetDigest(), "0123456789abcdef") != "" {
		t.Fatalf("GetDigest = %v; want %s at %d", d, want, applied)
	}
}
