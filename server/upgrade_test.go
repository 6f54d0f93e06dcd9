package server

// Upgrade tests: every build must open the data directory a released build
// left behind (testdata/datadir-v1: a one-node cluster's raft.db, snapshot
// and projection.db), replay it and serve the same history.
//
// The fixture is frozen. It was made once, by the build it is named for,
// with
//
//	go test ./server -run TestGenerateDatadirFixture -datadir.generate
//
// which refuses to overwrite an existing fixture. A release that changes
// what is on disk (log encoding, schema migration, raft or bolt format)
// adds datadir-v2 the same way (change datadirfixture.V1 in the generator
// only) and keeps every older fixture and its test.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/datadirfixture"
	"github.com/raftogram/raftogram/internal/testbin"
	"github.com/raftogram/raftogram/projection"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var generateDatadir = flag.Bool("datadir.generate", false, "write testdata/"+datadirfixture.V1+" (refuses to overwrite it)")

// fixtureNode is one node opened on a data directory, on loopback ports.
type fixtureNode struct {
	srv *Server
	api raftogramv1.MessengerClient
	log *testbin.Buffer
}

// openFixtureNode opens a one-node cluster (node1) on dataDir and waits
// until it leads (its linearizable reads then wait for the log to apply).
func openFixtureNode(t *testing.T, dataDir string, tunes ...func(*config.Config)) *fixtureNode {
	t.Helper()
	ls := Listeners{Raft: mustListen(t), GRPC: mustListen(t), HTTP: mustListen(t)}
	cfg := config.Default()
	cfg.NodeID = datadirfixture.NodeID
	cfg.RaftBindAddr = ls.Raft.Addr().String()
	cfg.GRPCBindAddr = ls.GRPC.Addr().String()
	cfg.HealthBindAddr = ls.HTTP.Addr().String()
	cfg.DataDir = dataDir
	cfg.Cluster.Peers = config.Peers{{NodeID: cfg.NodeID, RaftAddr: cfg.RaftBindAddr, GRPCAddr: cfg.GRPCBindAddr}}
	cfg.Raft.HeartbeatTimeout = 500 * time.Millisecond
	cfg.Raft.ElectionTimeout = 500 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout = 300 * time.Millisecond
	cfg.Raft.CommitTimeout = 10 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	for _, f := range tunes {
		f(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n := &fixtureNode{log: &testbin.Buffer{}}
	srv, err := Open(context.Background(), cfg, ls, slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("open %s: %v", dataDir, err)
	}
	n.srv = srv
	t.Cleanup(func() {
		n.close(t)
		if t.Failed() {
			t.Logf("--- node log ---\n%s", n.log)
		}
	})
	conn, err := grpc.NewClient(cfg.GRPCBindAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.api = raftogramv1.NewMessengerClient(conn)
	waitFor(t, "the node leads", 20*time.Second, func() error {
		if st := srv.Node().Status(); !st.IsLeader {
			return fmt.Errorf("role %s", st.Role)
		}
		return nil
	})
	return n
}

func (n *fixtureNode) close(t *testing.T) {
	if n.srv == nil {
		return
	}
	if err := n.srv.Close(); err != nil {
		t.Errorf("close node: %v", err)
	}
	n.srv = nil
}

// served reads every channel and its whole history through the gRPC API
// (linearizable reads, the default), in the fixture's shape; Index is left
// 0 (the API does not return them).
func served(t *testing.T, api raftogramv1.MessengerClient) []datadirfixture.Channel {
	t.Helper()
	ctx := ctxT(t)
	var out []datadirfixture.Channel
	token := ""
	for {
		page, err := api.ListChannels(ctx, &raftogramv1.ListChannelsRequest{PageToken: token})
		if err != nil {
			t.Fatalf("ListChannels: %v", err)
		}
		for _, ch := range page.GetChannels() {
			c := datadirfixture.Channel{ID: ch.GetChannelId(), Name: ch.GetName(), CreatedAtUnixNano: ch.GetCreatedAt().AsTime().UnixNano()}
			var after uint64
			for {
				h, err := api.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: c.ID, AfterSequence: after})
				if err != nil {
					t.Fatalf("ReadHistory %s: %v", c.ID, err)
				}
				for _, m := range h.GetMessages() {
					c.Messages = append(c.Messages, datadirfixture.Message{Sequence: m.GetSequence(), AuthorID: m.GetAuthorId(),
						Payload: m.GetPayload(), ClientMessageID: m.GetClientMessageId(), CreatedAtUnixNano: m.GetCreatedAt().AsTime().UnixNano()})
					after = m.GetSequence()
				}
				if !h.GetHasMore() {
					break
				}
			}
			out = append(out, c)
		}
		if token = page.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// withoutIndexes returns channels with every channel's and message's Index
// zeroed, to compare with what the API serves.
func withoutIndexes(channels []datadirfixture.Channel) []datadirfixture.Channel {
	out := make([]datadirfixture.Channel, len(channels))
	for i, c := range channels {
		out[i] = c
		out[i].Index = 0
		out[i].Messages = nil
		for _, m := range c.Messages {
			m.Index = 0
			if len(m.Payload) == 0 {
				m.Payload = nil
			}
			out[i].Messages = append(out[i].Messages, m)
		}
	}
	return out
}

// TestDatadirV1OpensReplaysAndServes opens copies of the frozen v1 data
// directory with this build and checks the served history, in three
// states a node can be found in: as it was left, having lost its
// projection (rebuilt from the snapshot, then the log after it), and with
// the projection back at the snapshot (the log after it replayed).
func TestDatadirV1OpensReplaysAndServes(t *testing.T) {
	want, err := datadirfixture.Load(datadirfixture.V1)
	if err != nil {
		t.Fatal(err)
	}
	state, err := datadirfixture.SnapshotState(datadirfixture.V1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		// restored: the log must show a snapshot restore.
		restored bool
	}{
		{"as left", func(*testing.T, string) {}, false},
		{"projection lost", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, projection.FileName)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"projection at the snapshot", func(t *testing.T, dir string) {
			copyFile(t, state, filepath.Join(dir, projection.FileName))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := datadirfixture.CopyNode(datadirfixture.V1, filepath.Join(t.TempDir(), datadirfixture.NodeID))
			if err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, dir)
			n := openFixtureNode(t, dir)
			if got := served(t, n.api); !reflect.DeepEqual(got, withoutIndexes(want.Channels)) {
				gotJSON, _ := json.MarshalIndent(got, "", " ")
				wantJSON, _ := json.MarshalIndent(withoutIndexes(want.Channels), "", " ")
				t.Fatalf("served history differs from %s:\n got %s\nwant %s", datadirfixture.ExpectedFile, gotJSON, wantJSON)
			}
			if st := n.srv.Node().Status(); st.AppliedIndex < want.LastIndex || st.SnapshotIndex != want.SnapshotIndex {
				t.Fatalf("applied %d (want ≥ %d), snapshot %d (want %d)", st.AppliedIndex, want.LastIndex, st.SnapshotIndex, want.SnapshotIndex)
			}
			if got := strings.Contains(n.log.String(), "projection restored from snapshot"); got != tc.restored {
				t.Fatalf("snapshot restored: %v, want %v", got, tc.restored)
			}
			checkWritesAfterUpgrade(t, n.api, want)
		})
	}
}

// checkWritesAfterUpgrade writes on top of the old data: a channel's next
// sequence follows its old last one, and an old client_message_id is
// still deduplicated to its old sequence.
func checkWritesAfterUpgrade(t *testing.T, api raftogramv1.MessengerClient, want datadirfixture.Expected) {
	t.Helper()
	var ch datadirfixture.Channel
	var old datadirfixture.Message
	for _, c := range want.Channels {
		for _, m := range c.Messages {
			if m.ClientMessageID != "" {
				ch, old = c, m
			}
		}
	}
	if old.ClientMessageID == "" {
		t.Fatal("the fixture has no message with a client_message_id")
	}
	ctx := ctxT(t)
	again, err := api.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: ch.ID, AuthorId: old.AuthorID, Payload: old.Payload, ClientMessageId: old.ClientMessageID})
	if err != nil || !again.GetDeduplicated() || again.GetSequence() != old.Sequence {
		t.Fatalf("retry of %s/%s: %v, %v; want deduplicated at %d", ch.ID, old.ClientMessageID, again, err, old.Sequence)
	}
	next, err := api.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: ch.ID, AuthorId: "upgrader", Payload: []byte("new")})
	if last := ch.Messages[len(ch.Messages)-1].Sequence; err != nil || next.GetSequence() != last+1 {
		t.Fatalf("new message in %s: %v, %v; want sequence %d", ch.ID, next, err, last+1)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateDatadirFixture writes testdata/datadir-v1 (only with
// -datadir.generate): a one-node cluster whose log holds every event kind
// (new and existing channels, messages with and without
// client_message_id, a deduplicated retry, a rejected send), a snapshot,
// then entries after it, stopped cleanly; and expected.json, the history
// it served before stopping.
func TestGenerateDatadirFixture(t *testing.T) {
	if !*generateDatadir {
		t.Skip("generator: run with -datadir.generate to write testdata/" + datadirfixture.V1)
	}
	root := datadirfixture.Dir(datadirfixture.V1)
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v): released fixtures are never rewritten; add a new one", root, err)
	}
	dir := filepath.Join(t.TempDir(), datadirfixture.NodeID)
	n := openFixtureNode(t, dir, func(cfg *config.Config) {
		cfg.Raft.SnapshotThreshold = 20
		cfg.Raft.SnapshotInterval = 50 * time.Millisecond
		cfg.Raft.TrailingLogs = 4 // the log no longer starts at 1: losing the projection needs the snapshot
	})
	ctx := ctxT(t)
	index := map[string]uint64{} // channel (and channel/sequence) → log index that created it
	create := func(id, name string) {
		r, err := n.api.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: id, Name: name})
		if err != nil {
			t.Fatalf("create %q: %v", id, err)
		}
		if r.GetCreated() {
			index[r.GetChannelId()] = r.GetIndex()
		}
	}
	send := func(ch, author, payload, cmid string) {
		r, err := n.api.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: ch, AuthorId: author, Payload: []byte(payload), ClientMessageId: cmid})
		if err != nil {
			t.Fatalf("send %s/%s: %v", ch, cmid, err)
		}
		if key := fmt.Sprintf("%s/%d", ch, r.GetSequence()); !r.GetDeduplicated() {
			index[key] = r.GetIndex()
		}
	}
	create("general", "General")
	create("ops", "Ops ☎")
	create("", "auto-named")
	create("general", "General") // exists: answered, not recreated
	for i := 1; i <= 8; i++ {
		send("general", "alice", fmt.Sprintf("hello %d", i), fmt.Sprintf("m%02d", i))
	}
	send("general", "bob", "", "")                 // empty payload, no client_message_id
	send("general", "bob", "\x00\x01\xfe\xff", "") // binary payload
	send("general", "alice", "hello 3", "m03")     // a retry: deduplicated
	send("ops", "ålice", "deploy started", "ops-1")
	send("ops", "ålice", "deploy done", "ops-2")
	if _, err := n.api.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "missing", AuthorId: "carol", Payload: []byte("x")}); err == nil {
		t.Fatal("send to a missing channel succeeded")
	}
	waitFor(t, "a snapshot", 20*time.Second, func() error {
		if st := n.srv.Node().Status(); st.SnapshotIndex == 0 {
			return fmt.Errorf("no snapshot yet at index %d", st.LastLogIndex)
		}
		return nil
	})
	// Entries after the snapshot (fewer than the threshold: no second one).
	send("general", "alice", "after the snapshot", "m09")
	send("ops", "ålice", "rollback", "ops-3")
	send("general", "alice", "hello 1", "m01") // a retry of a message in the snapshot
	create("late", "Created after the snapshot")
	send("late", "dave", "first", "l-1")

	st := n.srv.Node().Status()
	exp := datadirfixture.Expected{SnapshotIndex: st.SnapshotIndex, LastIndex: st.AppliedIndex, Channels: served(t, n.api)}
	for i, c := range exp.Channels {
		exp.Channels[i].Index = index[c.ID]
		for j, m := range c.Messages {
			exp.Channels[i].Messages[j].Index = index[fmt.Sprintf("%s/%d", c.ID, m.Sequence)]
		}
	}
	if exp.LastIndex <= exp.SnapshotIndex {
		t.Fatalf("no entries after the snapshot: last %d, snapshot %d", exp.LastIndex, exp.SnapshotIndex)
	}
	n.close(t)

	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, datadirfixture.ExpectedFile), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if rel == TmpDirName {
				return filepath.SkipDir // snapshot copies in flight: empty after a clean stop
			}
			return os.MkdirAll(filepath.Join(root, datadirfixture.NodeID, rel), 0o755)
		}
		copyFile(t, path, filepath.Join(root, datadirfixture.NodeID, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (snapshot %d, last index %d, log file %s): commit it", root, exp.SnapshotIndex, exp.LastIndex, cluster.LogFileName)
}
