package proccluster

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/testbin"
)

// WriteConfig's file is what config.Load reads back, every field.
func TestWriteConfigRoundTrips(t *testing.T) {
	cfg := Defaults()
	cfg.NodeID = "node2"
	cfg.RaftBindAddr, cfg.GRPCBindAddr, cfg.HealthBindAddr = "127.0.0.1:7001", "127.0.0.1:9001", "127.0.0.1:8081"
	cfg.DataDir = t.TempDir()
	cfg.Cluster.Peers = config.Peers{
		{NodeID: "node1", RaftAddr: "127.0.0.1:7000", GRPCAddr: "127.0.0.1:9000"},
		{NodeID: "node2", RaftAddr: "127.0.0.1:7001", GRPCAddr: "127.0.0.1:9001"},
		{NodeID: "node3", RaftAddr: "127.0.0.1:7002", GRPCAddr: "127.0.0.1:9002"},
	}
	cfg.Raft.SnapshotInterval = 1500 * time.Millisecond
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := WriteConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		b, _ := os.ReadFile(path)
		t.Fatalf("config.Load of the written file = %+v\nwant %+v\nfile:\n%s", got, cfg, b)
	}
}

func TestOneLeaderAndConverged(t *testing.T) {
	leader := httpapi.Health{NodeID: "node1", Role: "leader", IsLeader: true, LeaderID: "node1", LeaderGRPCAddr: "g1", Term: 3, AppliedIndex: 9}
	follower := func(id string) httpapi.Health {
		return httpapi.Health{NodeID: id, Role: "follower", LeaderID: "node1", LeaderGRPCAddr: "g1", Term: 3, AppliedIndex: 9}
	}
	ok := map[string]httpapi.Health{"node1": leader, "node2": follower("node2"), "node3": follower("node3")}
	if id, err := OneLeader(ok); id != "node1" || err != nil {
		t.Fatalf("OneLeader = %q, %v", id, err)
	}
	if idx, err := Converged(ok, 9); idx != 9 || err != nil {
		t.Fatalf("Converged = %d, %v", idx, err)
	}
	with := func(id string, f func(*httpapi.Health)) map[string]httpapi.Health {
		hs := map[string]httpapi.Health{}
		for k, v := range ok {
			hs[k] = v
		}
		h := hs[id]
		f(&h)
		hs[id] = h
		return hs
	}
	for _, tc := range []struct {
		name string
		hs   map[string]httpapi.Health
		want string
	}{
		{"no leader", with("node1", func(h *httpapi.Health) { h.Role, h.IsLeader = "candidate", false }), "no leader"},
		{"two leaders", with("node2", func(h *httpapi.Health) { h.Role, h.IsLeader = "leader", true }), "two leaders"},
		{"half a leader", with("node1", func(h *httpapi.Health) { h.IsLeader = false }), "inconsistent"},
		{"candidate", with("node3", func(h *httpapi.Health) { h.Role = "candidate" }), "not a follower"},
		{"other leader", with("node3", func(h *httpapi.Health) { h.LeaderID = "node2" }), `node3 follows "node2"`},
		{"older term", with("node2", func(h *httpapi.Health) { h.Term = 2 }), "in term 2"},
	} {
		if _, err := OneLeader(tc.hs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: OneLeader = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := Converged(with("node3", func(h *httpapi.Health) { h.AppliedIndex = 8 }), 0); err == nil {
		t.Error("Converged with applied indexes 9, 9, 8: no error")
	}
	if _, err := Converged(ok, 10); err == nil {
		t.Error("Converged at 9 with min 10: no error")
	}
}

// The harness proved end to end on the real binary: configs written from
// config.Config, one leader, writes through the client, pause and resume,
// kill and restart, graceful stop, every exit reported.
func TestClusterLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the raftogram binary; skipped with -short")
	}
	dir := t.TempDir()
	bin, err := testbin.BuildBinary(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines, crashes atomic.Int64
	c, err := New(Options{
		Bin: bin, Dir: filepath.Join(dir, "cluster"),
		Configure: func(i int, cfg *config.Config) { cfg.Limits.MaxPayloadBytes = 4096 + i },
		OnLine:    func(*Node, string) { lines.Add(1) },
		OnExit: func(_ *Node, p *Process) {
			if !p.Expected() {
				crashes.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for _, n := range c.Nodes {
				b, _ := os.ReadFile(n.LogPath)
				t.Logf("----- %s -----\n%s", n.ID, b)
			}
		}
	})
	if got := c.Node("node3").Config.Limits.MaxPayloadBytes; got != 4098 {
		t.Fatalf("Configure not applied: node3 max_payload_bytes %d", got)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, err := c.WaitStable(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.Client(ctx, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateChannel(ctx, "general", "General"); err != nil {
		t.Fatal(err)
	}
	send := func(text string) {
		t.Helper()
		if _, err := cl.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "a", Payload: []byte(text)}); err != nil {
			t.Fatalf("Send %s: %v", text, err)
		}
	}
	send("one")

	// Paused, the leader is left out of Stable; the others elect one.
	if err := leader.Pause(); err != nil {
		t.Fatal(err)
	}
	if !leader.Paused() || !leader.Running() || len(c.Up()) != 2 {
		t.Fatalf("after Pause: paused %v running %v, %d up", leader.Paused(), leader.Running(), len(c.Up()))
	}
	l2, err := c.WaitStable(ctx, 20*time.Second)
	if err != nil || l2 == leader {
		t.Fatalf("leader while %s is paused: %v, %v", leader.ID, l2, err)
	}
	send("two")
	if err := leader.Continue(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// Killed, a node stops; restarted, it catches up with its data.
	victim := c.Followers(l2)[0]
	pid := victim.Process().PID()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	if victim.Running() || victim.Process().ExitCode() != -1 {
		t.Fatalf("after Kill: running %v, exit code %d", victim.Running(), victim.Process().ExitCode())
	}
	send("three")
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	if victim.Process().PID() == pid || victim.Starts() != 2 {
		t.Fatalf("restart: pid %d (was %d), %d starts", victim.Process().PID(), pid, victim.Starts())
	}
	idx, err := c.WaitConverged(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := c.Healths()
	if err != nil || hs[victim.ID].AppliedIndex != idx {
		t.Fatalf("restarted %s: %+v, %v; want applied %d", victim.ID, hs[victim.ID], err, idx)
	}
	h, err := cl.ReadHistory(ctx, "general", client.ReadOptions{Node: victim.GRPCAddr, Consistency: client.Local})
	if err != nil || len(h.Messages) != 3 {
		t.Fatalf("restarted %s holds %v, %v; want 3 messages", victim.ID, h, err)
	}

	// A graceful stop exits 0; none of the exits was a crash.
	for _, n := range c.Nodes {
		if code, err := n.Terminate(); code != 0 || err != nil {
			t.Fatalf("Terminate %s = %d, %v; want exit 0", n.ID, code, err)
		}
	}
	// Output is copied before an exit is reported, so every line is counted.
	if crashes.Load() != 0 || lines.Load() == 0 {
		t.Fatalf("%d unexpected exits, %d log lines seen", crashes.Load(), lines.Load())
	}
	if err := c.Node("node1").Wipe(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Node("node1").DataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir after Wipe: %v", err)
	}
	if _, err := c.Node("node1").Health(); err == nil {
		t.Fatal("node1 answers /health after a stop")
	}
}
