package main

import (
	"reflect"
	"testing"
)

// send from the argument and from stdin, with and without -id, a
// deduplicated repeat, JSON output and the errors of the cluster.
func TestCLISend(t *testing.T) {
	c, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "general").expect(t, exitOK, nil, nil)

	r := runCLI(t, addrs, "send", "general", "Hello", "--author", "alice", "--id", "msg-1")
	r.expect(t, exitOK, []string{"SEQUENCE", "DEDUPLICATED", "INDEX", "CLIENT_MESSAGE_ID"}, nil)
	rows := tableRows(t, r.stdout)
	if len(rows) != 1 || rows[0][0] != "1" || rows[0][1] != "false" || rows[0][3] != "msg-1" {
		t.Fatalf("send table %q", r.stdout)
	}

	type sendJSON struct {
		ChannelID       string `json:"channel_id"`
		Sequence        uint64 `json:"sequence"`
		Deduplicated    bool   `json:"deduplicated"`
		Index           uint64 `json:"index"`
		ClientMessageID string `json:"client_message_id"`
	}
	var res sendJSON
	runCLI(t, addrs, "send", "--json", "general", "Hello", "--author", "alice", "--id", "msg-1").decode(t, &res)
	if res != (sendJSON{ChannelID: "general", Sequence: 1, Deduplicated: true, Index: res.Index, ClientMessageID: "msg-1"}) || res.Index == 0 {
		t.Fatalf("repeat of msg-1 = %+v, want sequence 1 deduplicated", res)
	}

	// stdin, byte for byte, with "-" or no TEXT; a generated id.
	withStdin(t, "line one\n\x00binary")
	runCLI(t, addrs, "send", "general", "-", "--author", "alice", "--json").decode(t, &res)
	if res.Sequence != 2 || res.Deduplicated || len(res.ClientMessageID) != 32 {
		t.Fatalf("send from stdin = %+v, want sequence 2 with a generated id", res)
	}
	withStdin(t, "from stdin without -")
	runCLI(t, addrs, "send", "general", "--author", "alice", "--json").decode(t, &res)
	if res.Sequence != 3 {
		t.Fatalf("send without TEXT = %+v, want sequence 3", res)
	}
	h, err := newTestClient(t, c).ReadHistory(t.Context(), "general", readAll)
	if err != nil {
		t.Fatal(err)
	}
	var payloads []string
	for _, m := range h.Messages {
		payloads = append(payloads, string(m.Payload))
	}
	if want := []string{"Hello", "line one\n\x00binary", "from stdin without -"}; !reflect.DeepEqual(payloads, want) {
		t.Fatalf("stored payloads %q, want %q", payloads, want)
	}

	runCLI(t, addrs, "send", "general", "changed", "--author", "bob", "--id", "msg-1").
		expect(t, exitError, nil, []string{"raftogram send: already exists: "})
	runCLI(t, addrs, "send", "missing", "x", "--author", "a").expect(t, exitError, nil, []string{"raftogram send: not found: "})
	runCLI(t, addrs, "send", "general", "x", "--author", string(make([]byte, 200))).
		expect(t, exitError, nil, []string{"raftogram send: invalid argument: "})
}
