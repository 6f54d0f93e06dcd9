package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/raftogram/raftogram/client"
)

// jsonSnapshot is one node in `cluster snapshot -json`.
type jsonSnapshot struct {
	NodeID        string `json:"node_id,omitempty"`
	Address       string `json:"address"`
	OK            bool   `json:"ok"`
	Error         string `json:"error,omitempty"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	Created       bool   `json:"created"`
}

// clusterSnapshot is `raftogram cluster snapshot [-node NODE_ID]`: it asks
// every node of the cluster, or only NODE_ID, to take a Raft snapshot now,
// in parallel, and prints one row per node. It returns the exit code: 0
// when every node asked took one (or had nothing new), 1 when one failed or
// could not be reached (its error on stderr) or NODE_ID is not a member.
func clusterSnapshot(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("cluster snapshot", "[-node NODE_ID] [-compact-log]",
		"Asks every node of the cluster (as 'cluster status' lists it), or only the node\n"+
			"NODE_ID, to take a Raft snapshot now, which also compacts its log. Prints NODE,\n"+
			"ADDRESS, SNAPSHOT (the index its newest snapshot covers) and CREATED (no when\n"+
			"nothing was applied since its newest snapshot, so none was taken). A node that\n"+
			"fails or does not answer is shown with SNAPSHOT \"failed\" and its error on\n"+
			"stderr, and the command exits 1.\n\n"+
			"With -compact-log each node also deletes every log entry its snapshot covers\n"+
			"(none of raft.trailing_logs kept), so redacted messages and deleted channels\n"+
			"leave the Raft log now; a node with nothing applied since its newest snapshot\n"+
			"fails with \"failed precondition\" (write something, then retry).\n\n"+
			"With -json one object {nodes: [{node_id, address, ok, error, snapshot_index,\n"+
			"created}]}.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	only := in.fs.String("node", "", "node id of the only node to snapshot (default: every node)")
	compact := in.fs.Bool("compact-log", false, "also delete every log entry the snapshot covers (redacted content leaves the Raft log now)")
	if _, code, ok := in.parse(args, 0, 0); !ok {
		return code
	}
	ctx, cancel := in.commandContext(ctx)
	defer cancel()
	c, err := in.connect(ctx)
	if err != nil {
		return in.fail(ctx, err)
	}
	defer c.Close()
	nodes, err := allNodeStatus(ctx, c)
	if err != nil {
		return in.fail(ctx, err)
	}
	if *only != "" {
		nodes = selectNode(nodes, *only)
		if nodes == nil {
			fmt.Fprintf(stderr, "%s: invalid argument: node %q is not a member of the cluster\n", in.name, *only)
			return exitError
		}
	}
	out := make([]jsonSnapshot, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		out[i] = jsonSnapshot{NodeID: n.NodeID, Address: n.Addr}
		if n.Err != nil {
			errs[i] = n.Err
			continue
		}
		wg.Go(func() {
			if *compact {
				out[i].SnapshotIndex, errs[i] = c.CompactLog(ctx, n.Addr)
				out[i].Created = errs[i] == nil
			} else {
				out[i].SnapshotIndex, out[i].Created, errs[i] = c.TakeSnapshot(ctx, n.Addr)
			}
			out[i].OK = errs[i] == nil
		})
	}
	wg.Wait()
	for i := range out {
		if errs[i] != nil {
			out[i].Error = in.describe(ctx, errs[i])
		}
	}
	if in.asJSON {
		err = in.writeJSON(struct {
			Nodes []jsonSnapshot `json:"nodes"`
		}{out})
	} else {
		tw := in.table("NODE", "ADDRESS", "SNAPSHOT", "CREATED")
		for _, n := range out {
			if !n.OK {
				fmt.Fprintf(tw, "%s\t%s\tfailed\t-\n", cell(orDash(n.NodeID)), n.Address)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", cell(n.NodeID), n.Address, n.SnapshotIndex, yesNo(n.Created))
		}
		err = flushTable(tw)
	}
	if err != nil {
		return in.fail(ctx, err)
	}
	code := exitOK
	for _, n := range out {
		if !n.OK {
			fmt.Fprintf(stderr, "%s: %s: %s\n", in.name, n.Address, n.Error)
			code = exitError
		}
	}
	return code
}

// selectNode returns the one entry of nodes with node id id, or nil.
func selectNode(nodes []client.NodeStatus, id string) []client.NodeStatus {
	for _, n := range nodes {
		if n.NodeID == id {
			return []client.NodeStatus{n}
		}
	}
	return nil
}

// yesNo returns "yes" or "no".
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// jsonDigest is one node in `cluster digest -json`.
type jsonDigest struct {
	NodeID       string `json:"node_id,omitempty"`
	Address      string `json:"address"`
	Reachable    bool   `json:"reachable"`
	Error        string `json:"error,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest,omitempty"`
	// Agrees is "yes" or "no" against the other nodes at the same applied
	// index, "-" when no other node is at it (or the node did not answer).
	Agrees string `json:"agrees"`
}

// clusterDigest is `raftogram cluster digest`: it has a node gather every
// node's projection digest and applied index and prints one row per node.
// It returns the exit code: 1 when nodes at the same applied index have
// different digests (one line per such index on stderr) or no node
// answered, otherwise 0 (unreachable nodes are listed, their errors on
// stderr).
func clusterDigest(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("cluster digest", "",
		"Asks a node of -addrs to gather every node's state digest: a SHA-256 over its\n"+
			"projection (every channel, message and dedup row) and the Raft index applied\n"+
			"to it. Nodes at the same applied index must have equal digests. Prints NODE,\n"+
			"ADDRESS, APPLIED, DIGEST and AGREES (yes or no against the other nodes at the\n"+
			"same index; - when no other node is there: run it again once writes pause).\n"+
			"Exits 1 when nodes at one index disagree (\"digests differ at index N\" on\n"+
			"stderr) or no node answers; a node that does not answer is listed with\n"+
			"APPLIED \"unreachable\" and its error on stderr.\n\n"+
			"With -json one object {agree, nodes: [{node_id, address, reachable, error,\n"+
			"applied_index, digest, agrees}]}.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	if _, code, ok := in.parse(args, 0, 0); !ok {
		return code
	}
	ctx, cancel := in.commandContext(ctx)
	defer cancel()
	c, err := in.connect(ctx)
	if err != nil {
		return in.fail(ctx, err)
	}
	defer c.Close()
	ds, err := c.ClusterDigests(ctx)
	if err != nil {
		return in.fail(ctx, err)
	}
	byIndex := map[uint64]map[string]bool{} // applied index -> digests seen
	count := map[uint64]int{}
	answered := 0
	for _, d := range ds {
		if d.Err == nil {
			answered++
			if byIndex[d.AppliedIndex] == nil {
				byIndex[d.AppliedIndex] = map[string]bool{}
			}
			byIndex[d.AppliedIndex][d.Digest] = true
			count[d.AppliedIndex]++
		}
	}
	out := make([]jsonDigest, len(ds))
	agree := true
	for i, d := range ds {
		jd := jsonDigest{NodeID: d.NodeID, Address: d.Addr, Reachable: d.Err == nil, Agrees: "-"}
		if d.Err != nil {
			jd.Error = in.describe(ctx, d.Err)
		} else {
			jd.AppliedIndex, jd.Digest = d.AppliedIndex, d.Digest
			switch {
			case len(byIndex[d.AppliedIndex]) > 1:
				jd.Agrees, agree = "no", false
			case count[d.AppliedIndex] > 1:
				jd.Agrees = "yes"
			}
		}
		out[i] = jd
	}
	if in.asJSON {
		err = in.writeJSON(struct {
			Agree bool         `json:"agree"`
			Nodes []jsonDigest `json:"nodes"`
		}{agree, out})
	} else {
		tw := in.table("NODE", "ADDRESS", "APPLIED", "DIGEST", "AGREES")
		for _, d := range out {
			if !d.Reachable {
				fmt.Fprintf(tw, "%s\t%s\tunreachable\t-\t-\n", cell(orDash(d.NodeID)), d.Address)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cell(d.NodeID), d.Address, d.AppliedIndex, d.Digest, d.Agrees)
		}
		err = flushTable(tw)
	}
	if err != nil {
		return in.fail(ctx, err)
	}
	for _, d := range out {
		if !d.Reachable {
			fmt.Fprintf(stderr, "%s: %s: %s\n", in.name, d.Address, d.Error)
		}
	}
	code := exitOK
	for idx, digests := range byIndex {
		if len(digests) > 1 {
			fmt.Fprintf(stderr, "%s: digests differ at index %d: %d different digests among %d nodes\n", in.name, idx, len(digests), count[idx])
			code = exitError
		}
	}
	if answered == 0 {
		fmt.Fprintf(stderr, "%s: unavailable: no node answered\n", in.name)
		return exitError
	}
	return code
}
