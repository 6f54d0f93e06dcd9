package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// channel create, get and list against a three-node cluster, in tables and
// JSON, including the idempotent create, paging and a not-found.
func TestCLIChannel(t *testing.T) {
	tc, addrs := startCLICluster(t)
	before := time.Now().UTC().Add(-time.Minute)

	// create: -id or the argument, idempotent; flags after the argument.
	r := runCLI(t, addrs, "channel", "create", "--id", "general", "--name", "General")
	r.expect(t, exitOK, []string{"CHANNEL", "NAME", "CREATED", "INDEX"}, nil)
	if rows := tableRows(t, r.stdout); len(rows) != 1 || !reflect.DeepEqual(rows[0][:3], []string{"general", "General", "true"}) {
		t.Fatalf("create table %q", r.stdout)
	}
	var created struct {
		ChannelID string `json:"channel_id"`
		Name      string `json:"name"`
		Created   bool   `json:"created"`
		Index     uint64 `json:"index"`
	}
	runCLI(t, addrs, "channel", "create", "general", "--name", "Other", "--json").decode(t, &created)
	if created.ChannelID != "general" || created.Name != "General" || created.Created || created.Index == 0 {
		t.Fatalf("create again = %+v, want the stored channel, created false, an index", created)
	}
	runCLI(t, addrs, "channel", "create", "--name", "auto", "--json").decode(t, &created)
	if !strings.HasPrefix(created.ChannelID, "channel-") || created.Name != "auto" || !created.Created {
		t.Fatalf("create without id = %+v", created)
	}
	runCLI(t, addrs, "channel", "create", "bad id!").expect(t, exitError, nil, []string{"raftogram channel create: invalid argument: "})
	for i := range 3 {
		runCLI(t, addrs, "channel", "create", fmt.Sprintf("page-%d", i)).expect(t, exitOK, nil, nil)
	}
	runCLI(t, addrs, "send", "general", "one", "--author", "a").expect(t, exitOK, nil, nil)
	runCLI(t, addrs, "send", "general", "two", "--author", "a").expect(t, exitOK, nil, nil)

	// get.
	r = runCLI(t, addrs, "channel", "get", "general")
	r.expect(t, exitOK, []string{"CHANNEL", "NAME", "CREATED_AT", "FIRST", "LAST", "MESSAGES"}, nil)
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][0] != "general" || rows[0][1] != "General" ||
		!reflect.DeepEqual(rows[0][3:], []string{"1", "2", "2", "-"}) {
		t.Fatalf("get table %q", r.stdout)
	}
	// A Local read answers from whichever node it reaches: let every node
	// apply both sends first.
	tc.Converged()
	var ch jsonChannel
	runCLI(t, addrs, "channel", "get", "general", "--json", "--consistency", "local").decode(t, &ch)
	if ch.ChannelID != "general" || ch.FirstSequence != 1 || ch.LastSequence != 2 || ch.MessageCount != 2 || ch.CreatedAt.Before(before) {
		t.Fatalf("get JSON %+v", ch)
	}
	runCLI(t, addrs, "channel", "get", "--json", "general", "--consistency", "at-least", "--min-index", fmt.Sprint(created.Index)).decode(t, &ch)
	runCLI(t, addrs, "channel", "get", "missing").expect(t, exitError, nil, []string{"raftogram channel get: not found: "})
	if r := runCLI(t, addrs, "channel", "get", "missing", "--json"); r.code != exitError || r.stdout != "" {
		t.Fatalf("get missing -json: exit %d stdout %q", r.code, r.stdout)
	}

	// list: one page, the token on stderr; -all; JSON.
	r = runCLI(t, addrs, "channel", "list", "--page-size", "2")
	r.expect(t, exitOK, []string{"CHANNEL"}, []string{"more channels: -page-token "})
	if rows := tableRows(t, r.stdout); len(rows) != 2 || rows[0][0] != created.ChannelID || rows[1][0] != "general" {
		t.Fatalf("list page table %q", r.stdout)
	}
	var page struct {
		Channels      []jsonChannel `json:"channels"`
		NextPageToken string        `json:"next_page_token"`
	}
	runCLI(t, addrs, "channel", "list", "--page-size", "2", "--json").decode(t, &page)
	if len(page.Channels) != 2 || page.NextPageToken == "" {
		t.Fatalf("list page JSON %+v", page)
	}
	runCLI(t, addrs, "channel", "list", "--page-size", "2", "--page-token", page.NextPageToken, "--json").decode(t, &page)
	if len(page.Channels) != 2 || page.Channels[0].ChannelID != "page-0" {
		t.Fatalf("second page %+v", page)
	}
	want := []string{created.ChannelID, "general", "page-0", "page-1", "page-2"}
	r = runCLI(t, addrs, "channel", "list", "--all", "--page-size", "2")
	r.expect(t, exitOK, nil, nil)
	var got []string
	for _, row := range tableRows(t, r.stdout) {
		got = append(got, row[0])
	}
	if !reflect.DeepEqual(got, want) || r.stderr != "" {
		t.Fatalf("list -all = %v (stderr %q), want %v", got, r.stderr, want)
	}
	runCLI(t, addrs, "channel", "list", "--all", "--page-size", "2", "--json").decode(t, &page)
	if len(page.Channels) != 5 || page.NextPageToken != "" {
		t.Fatalf("list -all JSON %+v", page)
	}
	runCLI(t, addrs, "channel", "list", "--page-token", "garbage").expect(t, exitError, nil, []string{"raftogram channel list: invalid argument: "})
}
