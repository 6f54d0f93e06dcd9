package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/raftogram/raftogram/client"
)

// clusterGroup is `raftogram cluster status|transfer-leader|snapshot|digest`.
var clusterGroup = &group{
	name:  "cluster",
	about: "Shows the nodes of a cluster, moves its leadership, snapshots nodes and compares their state.",
	subs: map[string]command{"status": clusterStatus, "transfer-leader": clusterTransferLeader,
		"snapshot": clusterSnapshot, "digest": clusterDigest},
	sums: map[string]string{
		"status":          "one table of every node: role, term, indexes, lag, snapshot",
		"transfer-leader": "hand leadership to another node",
		"snapshot":        "make nodes take a Raft snapshot now",
		"digest":          "every node's state digest; fails when nodes at one index differ",
	},
}

func init() {
	subcommands["cluster"] = clusterGroup.run
	summaries["cluster"] = "cluster status, transfer-leader, snapshot or digest (raftogram cluster help)"
}

// transferPoll is how often transfer-leader asks the nodes for the new
// leader when the old one did not name it.
const transferPoll = 100 * time.Millisecond

// jsonNode is one node in `cluster status -json`.
type jsonNode struct {
	Address       string `json:"address"`
	Reachable     bool   `json:"reachable"`
	Error         string `json:"error,omitempty"`
	NodeID        string `json:"node_id,omitempty"`
	Role          string `json:"role,omitempty"`
	LeaderID      string `json:"leader_id,omitempty"`
	LeaderAddress string `json:"leader_address,omitempty"`
	Term          uint64 `json:"term"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	Lag           uint64 `json:"lag"`
	// LogAppliedIndex counts no-op and configuration entries too.
	LogAppliedIndex uint64 `json:"log_applied_index"`
	LastLogIndex    uint64 `json:"last_log_index"`
	SnapshotIndex   uint64 `json:"snapshot_index"`
	LastContactMS   int64  `json:"last_contact_ms"`
	Version         string `json:"version,omitempty"`
	// The node's figures over the last minute (0 from older nodes).
	WritesPerSecond float64 `json:"writes_per_second"`
	WriteP99MS      float64 `json:"write_p99_ms"`
	Subscribers     uint64  `json:"subscribers"`
	LeaderChanges   uint64  `json:"leader_changes"`
}

// clusterStatus is `raftogram cluster status`: it asks a node of -addrs to
// gather every node's status (with old nodes: every node of -addrs, and any
// leader they name that is not among them) and prints one table row per
// node. It returns the exit code: 0 when at
// least one node answered (unreachable ones are listed as such, their
// errors on stderr), 1 when none did.
func clusterStatus(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("cluster status", "",
		"Asks a node of -addrs to gather the status of every node of the cluster (nodes\n"+
			"too old to gather are asked one by one, with any leader they name that is not\n"+
			"listed) and prints one row per node: NODE, ADDRESS, ROLE, TERM, COMMIT and\n"+
			"APPLIED (Raft indexes), LAG (the highest commit index seen minus the last log\n"+
			"entry the node applied, no-op entries included), SNAPSHOT (index of its newest\n"+
			"snapshot), LAST_CONTACT (since it last heard from the leader; - on the leader)\n"+
			"and VERSION. A node that does not answer is shown with role \"unreachable\" and\n"+
			"its error on stderr; the command fails (exit 1) only when no node answers.\n\n"+
			"With -json one object {leader_id, nodes: [{address, reachable, error, node_id,\n"+
			"role, leader_id, leader_address, term, commit_index, applied_index, lag,\n"+
			"log_applied_index, last_log_index, snapshot_index, last_contact_ms, version,\n"+
			"writes_per_second, write_p99_ms, subscribers, leader_changes}]}.",
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
	nodes, err := allNodeStatus(ctx, c)
	if err != nil {
		return in.fail(ctx, err)
	}
	var maxCommit uint64
	answered := 0
	leader := ""
	for _, n := range nodes {
		if n.Err == nil {
			answered++
			maxCommit = max(maxCommit, n.CommitIndex)
			if n.Role == "leader" {
				leader = n.NodeID
			}
		}
	}
	if in.asJSON {
		out := struct {
			LeaderID string     `json:"leader_id"`
			Nodes    []jsonNode `json:"nodes"`
		}{LeaderID: leader, Nodes: []jsonNode{}}
		for _, n := range nodes {
			jn := jsonNode{Address: n.Addr, Reachable: n.Err == nil}
			if n.Err != nil {
				jn.Error = in.describe(ctx, n.Err)
			} else {
				jn.NodeID, jn.Role, jn.LeaderID, jn.LeaderAddress = n.NodeID, n.Role, n.LeaderID, n.LeaderAddr
				jn.Term, jn.CommitIndex, jn.AppliedIndex, jn.Lag = n.Term, n.CommitIndex, n.AppliedIndex, lag(maxCommit, n)
				jn.LogAppliedIndex = n.LogAppliedIndex
				jn.LastLogIndex, jn.SnapshotIndex, jn.LastContactMS, jn.Version = n.LastLogIndex, n.SnapshotIndex, n.LastContact.Milliseconds(), n.Version
				jn.WritesPerSecond, jn.WriteP99MS = n.WritesPerSecond, float64(n.WriteP99)/float64(time.Millisecond)
				jn.Subscribers, jn.LeaderChanges = n.Subscribers, n.LeaderChanges
			}
			out.Nodes = append(out.Nodes, jn)
		}
		err = in.writeJSON(out)
	} else {
		tw := in.table("NODE", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "SNAPSHOT", "LAST_CONTACT", "VERSION")
		for _, n := range nodes {
			if n.Err != nil {
				fmt.Fprintf(tw, "-\t%s\tunreachable\t-\t-\t-\t-\t-\t-\t-\n", n.Addr)
				continue
			}
			contact := "-"
			if n.LastContact > 0 {
				contact = n.LastContact.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", cell(n.NodeID), n.Addr, n.Role, n.Term, n.CommitIndex,
				n.AppliedIndex, lag(maxCommit, n), n.SnapshotIndex, contact, orDash(n.Version))
		}
		err = flushTable(tw)
	}
	if err != nil {
		return in.fail(ctx, err)
	}
	for _, n := range nodes {
		if n.Err != nil {
			fmt.Fprintf(stderr, "%s: %s: %s\n", in.name, n.Addr, in.describe(ctx, n.Err))
		}
	}
	if answered == 0 {
		fmt.Fprintf(stderr, "%s: unavailable: no node answered\n", in.name)
		return exitError
	}
	return exitOK
}

// allNodeStatus returns the status of every address c knows, then of any
// leader address a node named that was not among them, one entry per node:
// an address whose node id was reported already is left out. It returns
// only ClusterStatus's error (a closed client).
func allNodeStatus(ctx context.Context, c *client.Client) ([]client.NodeStatus, error) {
	sts, err := c.ClusterStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster status: %w", err)
	}
	asked := map[string]bool{}
	for _, st := range sts {
		asked[st.Addr] = true
	}
	for i := 0; i < len(sts); i++ {
		if a := sts[i].LeaderAddr; sts[i].Err == nil && a != "" && !asked[a] {
			asked[a] = true
			st, err := c.NodeStatus(ctx, a)
			if err != nil {
				st = &client.NodeStatus{Addr: a, Err: err}
			}
			sts = append(sts, *st)
		}
	}
	seen := map[string]bool{}
	out := sts[:0]
	for _, st := range sts {
		if st.Err == nil {
			if seen[st.NodeID] {
				continue
			}
			seen[st.NodeID] = true
		}
		out = append(out, st)
	}
	return out, nil
}

// lag returns how far the last log entry n applied (of any kind; its
// projection's applied index from a node too old to say) trails commit, 0
// when it does not.
func lag(commit uint64, n client.NodeStatus) uint64 {
	applied := max(n.AppliedIndex, n.LogAppliedIndex)
	if applied >= commit {
		return 0
	}
	return commit - applied
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clusterTransferLeader is `raftogram cluster transfer-leader [-to NODE]`:
// it asks the leader to hand leadership to NODE (a node id), or to the most
// up-to-date follower, and prints the new leader's id once a node reports
// it. It returns the exit code (1 with "invalid argument" for an unknown
// node).
func clusterTransferLeader(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	in := newInvocation("cluster transfer-leader", "[-to NODE_ID]",
		"Asks the leader to hand leadership to the node NODE_ID (by node id, as 'cluster\n"+
			"status' shows it), or without -to to the most up-to-date follower, and waits\n"+
			"until a node reports the new leader. Prints LEADER, the node that leads\n"+
			"afterwards; with -json one object {leader_id}. An attempt whose outcome is\n"+
			"unknown is not repeated (it could move leadership twice): it fails with\n"+
			"\"unavailable\"; run 'cluster status' to see where leadership went.",
		cmdOptions{timeout: true}, env, stdout, stderr)
	to := in.fs.String("to", "", "node id to hand leadership to (default: the most up-to-date follower)")
	if _, code, ok := in.parse(args, 0, 0); !ok {
		return code
	}
	return in.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		leader, err := c.TransferLeadership(ctx, *to)
		if err != nil {
			return err
		}
		if leader == "" {
			if leader, err = waitLeader(ctx, c); err != nil {
				return err
			}
		}
		if *to != "" && leader != *to {
			return fmt.Errorf("leadership went to %s, not %s", leader, *to)
		}
		if in.asJSON {
			err = in.writeJSON(struct {
				LeaderID string `json:"leader_id"`
			}{leader})
		} else {
			tw := in.table("LEADER")
			fmt.Fprintln(tw, cell(leader))
			err = flushTable(tw)
		}
		return err
	})
}

// waitLeader polls the nodes until one reports that it leads and returns
// its id, or returns an error wrapping ctx's error when ctx ends first.
func waitLeader(ctx context.Context, c *client.Client) (string, error) {
	t := time.NewTicker(transferPoll)
	defer t.Stop()
	for {
		sts, err := allNodeStatus(ctx, c)
		if err != nil {
			return "", err
		}
		for _, st := range sts {
			if st.Err == nil && st.Role == "leader" {
				return st.NodeID, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for the new leader: %w", errors.Join(ctx.Err(), client.ErrUnavailable))
		case <-t.C:
		}
	}
}
