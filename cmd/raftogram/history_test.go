package main

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/testcluster"
)

// readAll reads a whole (small) channel at the default level.
var readAll = client.ReadOptions{Limit: 1000}

// newTestClient returns a client of c's nodes, closed when the test ends.
func newTestClient(t *testing.T, c *testcluster.Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(t.Context(), client.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// history as a table (text and base64 payloads) and as JSON, paging with
// -after/-limit, each consistency level, and a not-found.
func TestCLIHistory(t *testing.T) {
	_, addrs := startCLICluster(t)
	start := time.Now().Add(-time.Minute)
	runCLI(t, addrs, "channel", "create", "general").expect(t, exitOK, nil, nil)
	runCLI(t, addrs, "channel", "create", "empty").expect(t, exitOK, nil, nil)
	runCLI(t, addrs, "send", "general", "Hello, wörld", "--author", "alice", "--id", "m1").expect(t, exitOK, nil, nil)
	withStdin(t, "\x00\x01\x02\xff\xfe")
	runCLI(t, addrs, "send", "general", "-", "--author", "bob", "--id", "m2").expect(t, exitOK, nil, nil)
	var last struct {
		Index uint64 `json:"index"`
	}
	runCLI(t, addrs, "send", "general", "two\nlines", "--author", "carol", "--id", "m3", "--json").decode(t, &last)

	r := runCLI(t, addrs, "history", "general")
	r.expect(t, exitOK, []string{"SEQUENCE", "CREATED_AT", "AUTHOR", "PAYLOAD"}, nil)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[1], "alice   Hello, wörld") ||
		!strings.HasSuffix(lines[2], "bob     base64:AAEC//4=") || !strings.HasSuffix(lines[3], "carol   base64:dHdvCmxpbmVz") {
		t.Fatalf("history table:\n%s", r.stdout)
	}
	if ts, err := time.Parse(time.RFC3339, tableRows(t, r.stdout)[0][1]); err != nil || ts.Before(start) {
		t.Fatalf("CREATED_AT %q: %v", tableRows(t, r.stdout)[0][1], err)
	}

	// Paging: the continuation on stderr.
	r = runCLI(t, addrs, "history", "general", "--after", "1", "--limit", "1")
	r.expect(t, exitOK, nil, []string{"more messages: -after 2"})
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][0] != "2" {
		t.Fatalf("history -after 1 -limit 1:\n%s", r.stdout)
	}

	type histJSON struct {
		ChannelID    string        `json:"channel_id"`
		Messages     []jsonMessage `json:"messages"`
		HasMore      bool          `json:"has_more"`
		NodeID       string        `json:"node_id"`
		AppliedIndex uint64        `json:"applied_index"`
	}
	for _, level := range []string{"leader", "linearizable", "local", "at-least"} {
		args := []string{"history", "general", "--json", "--consistency", level}
		if level == "at-least" {
			args = append(args, "--min-index", fmt.Sprint(last.Index))
		}
		var h histJSON
		runCLI(t, addrs, args...).decode(t, &h)
		if level == "local" && len(h.Messages) < 3 {
			continue // a follower may not have applied the last write yet
		}
		// The leader level is the server's default answer: no node or index.
		if fresh := level == "leader" || (h.NodeID != "" && h.AppliedIndex >= last.Index); h.ChannelID != "general" || h.HasMore || !fresh || len(h.Messages) != 3 {
			t.Fatalf("%s: history JSON %+v", level, h)
		}
		m := h.Messages
		if m[0].Sequence != 1 || m[0].AuthorID != "alice" || m[0].ClientMessageID != "m1" || string(m[0].Payload) != "Hello, wörld" ||
			m[0].Text == nil || *m[0].Text != "Hello, wörld" || m[0].CreatedAt.Before(start) {
			t.Fatalf("%s: first message %+v", level, m[0])
		}
		if !reflect.DeepEqual(m[1].Payload, []byte{0, 1, 2, 0xff, 0xfe}) || m[1].Text != nil {
			t.Fatalf("%s: binary message %+v", level, m[1])
		}
		if m[2].Text == nil || *m[2].Text != "two\nlines" {
			t.Fatalf("%s: two-line message %+v", level, m[2])
		}
	}
	// The payload is base64 in the JSON itself.
	r = runCLI(t, addrs, "history", "general", "--json", "--limit", "1", "--after", "1")
	if !strings.Contains(r.stdout, `"payload":"`+base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, 0xfe})+`"`) || !strings.Contains(r.stdout, `"has_more":true`) {
		t.Fatalf("history JSON %s", r.stdout)
	}

	var empty histJSON
	runCLI(t, addrs, "history", "empty", "--json").decode(t, &empty)
	if empty.Messages == nil || len(empty.Messages) != 0 {
		t.Fatalf("empty channel JSON %+v", empty)
	}
	runCLI(t, addrs, "history", "missing").expect(t, exitError, nil, []string{"raftogram history: not found: "})
}
