package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The chat-client commands: channel info, history -newest-first/-before/
// -since, and tail -new/-last, with their usage errors.
func TestCLIChatCommands(t *testing.T) {
	_, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "chat").expect(t, exitOK, nil, nil)
	for i := 1; i <= 5; i++ {
		runCLI(t, addrs, "send", "chat", fmt.Sprint("m", i), "--author", "alice").expect(t, exitOK, nil, nil)
	}
	r := runCLI(t, addrs, "channel", "info", "chat")
	r.expect(t, exitOK, []string{"CHANNEL", "FIRST", "LAST", "MESSAGES"}, nil)
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][3] != "1" || rows[0][4] != "5" || rows[0][5] != "5" {
		t.Fatalf("channel info:\n%s", r.stdout)
	}
	runCLI(t, addrs, "channel", "info", "nope").expect(t, exitError, nil, []string{"raftogram channel info: not found"})

	firstCol := func(out string) string {
		var seqs []string
		for _, row := range tableRows(t, out) {
			seqs = append(seqs, row[0])
		}
		return strings.Join(seqs, " ")
	}
	r = runCLI(t, addrs, "history", "chat", "--newest-first", "--limit", "2")
	r.expect(t, exitOK, nil, []string{"older messages: -newest-first -before 4"})
	if got := firstCol(r.stdout); got != "5 4" {
		t.Fatalf("newest page: %s", got)
	}
	r = runCLI(t, addrs, "history", "chat", "--newest-first", "--before", "4", "--limit", "10")
	r.expect(t, exitOK, nil, nil)
	if got := firstCol(r.stdout); got != "3 2 1" || strings.Contains(r.stderr, "older messages") {
		t.Fatalf("scroll back: %s / %s", got, r.stderr)
	}
	// -since: the time of message 4, read from its CREATED_AT.
	r = runCLI(t, addrs, "history", "chat", "--after", "3", "--limit", "1")
	since := tableRows(t, r.stdout)[0][1]
	r = runCLI(t, addrs, "history", "chat", "--since", since)
	r.expect(t, exitOK, nil, nil)
	if got := firstCol(r.stdout); !strings.HasSuffix(got, "4 5") {
		t.Fatalf("since %s: %s", since, got)
	}
	runCLI(t, addrs, "history", "chat", "--since", "yesterday").expect(t, exitUsage, nil, []string{"-since must be an RFC 3339 time"})

	for _, bad := range [][]string{{"--new", "--after", "1"}, {"--new", "--last", "2"}, {"--last", "2", "--after", "1"}, {"--last", "0"}} {
		runCLI(t, addrs, append([]string{"tail", "chat"}, bad...)...).expect(t, exitUsage, nil, nil)
	}
	tNew := startTail(t, addrs, "chat", "--new")
	tLast := startTail(t, addrs, "chat", "--last", "2")
	if got := tLast.waitLines(t, 2); !strings.HasPrefix(got[0], "4\t") || !strings.HasPrefix(got[1], "5\t") {
		t.Fatalf("tail --last 2: %q", got)
	}
	// The --new tail prints nothing until a new message commits; it must
	// be subscribed before the send, so keep sending until it prints.
	deadline := time.Now().Add(20 * time.Second)
	for len(tNew.lines()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tail --new printed nothing; stderr %s", tNew.stderr.String())
		}
		runCLI(t, addrs, "send", "chat", "live", "--author", "bob").expect(t, exitOK, nil, nil)
		time.Sleep(50 * time.Millisecond)
	}
	if got := tNew.lines(); !strings.HasSuffix(got[0], "bob\tlive") {
		t.Fatalf("tail --new: %q", got)
	}
	if got := tLast.waitLines(t, 3); !strings.HasPrefix(got[2], "6\t") {
		t.Fatalf("tail --last 2 after a send: %q", got)
	}
	if code := tNew.stop(t); code != exitOK {
		t.Fatalf("tail --new exit %d", code)
	}
	tLast.stop(t)
}

// channel update, channel delete and redact, as a moderator uses them.
func TestCLIModeration(t *testing.T) {
	_, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "mod").expect(t, exitOK, nil, nil)
	for i := 1; i <= 3; i++ {
		runCLI(t, addrs, "send", "mod", fmt.Sprint("m", i), "--author", "alice").expect(t, exitOK, nil, nil)
	}
	runCLI(t, addrs, "channel", "update", "mod", "--name", "Moderated").expect(t, exitOK, []string{"Moderated"}, nil)
	runCLI(t, addrs, "channel", "update", "mod").expect(t, exitUsage, nil, []string{"give -name or a retention limit"})
	runCLI(t, addrs, "channel", "update", "nope", "--name", "x").expect(t, exitError, nil, []string{"not found"})

	var red struct {
		Redacted bool `json:"redacted"`
	}
	runCLI(t, addrs, "redact", "mod", "2", "--reason", "spam", "--json").decode(t, &red)
	if !red.Redacted {
		t.Fatal("redact: redacted false")
	}
	runCLI(t, addrs, "redact", "mod", "2").expect(t, exitOK, []string{"false"}, nil)
	runCLI(t, addrs, "redact", "mod", "0").expect(t, exitUsage, nil, []string{"SEQUENCE must be a positive integer"})
	runCLI(t, addrs, "redact", "mod", "9").expect(t, exitError, nil, []string{"not found"})
	r := runCLI(t, addrs, "history", "mod")
	r.expect(t, exitOK, nil, nil)
	rows := tableRows(t, r.stdout)
	if len(rows) != 3 || rows[1][3] != "[redacted]" || rows[2][3] != "m3" {
		t.Fatalf("history after redaction:\n%s", r.stdout)
	}
	var hist struct {
		Messages []jsonMessage `json:"messages"`
	}
	runCLI(t, addrs, "history", "mod", "--json").decode(t, &hist)
	if !hist.Messages[1].Redacted || len(hist.Messages[1].Payload) != 0 || hist.Messages[0].Redacted {
		t.Fatalf("history JSON: %+v", hist.Messages)
	}

	tr := startTail(t, addrs, "mod")
	tr.waitLines(t, 3)
	runCLI(t, addrs, "channel", "delete", "mod").expect(t, exitOK, []string{"true"}, nil)
	var code int
	poll(t, "tail of a deleted channel exits", func() error {
		select {
		case code = <-tr.done:
			return nil
		default:
			return fmt.Errorf("still running")
		}
	})
	if code != exitError || !strings.Contains(tr.stderr.String(), "not found") {
		t.Fatalf("tail after delete: exit %d, stderr %s", code, tr.stderr.String())
	}
	runCLI(t, addrs, "channel", "delete", "mod").expect(t, exitOK, []string{"false"}, nil)
	runCLI(t, addrs, "channel", "info", "mod").expect(t, exitError, nil, []string{"not found"})
}

// Retention through the CLI: channel create/update limits, channel info
// showing them, and history and tail starting where a trimmed channel now
// starts (with a note) unless -after asks for trimmed messages.
func TestCLIRetention(t *testing.T) {
	_, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "recent", "--max-messages", "3").expect(t, exitOK, nil, nil)
	for i := 1; i <= 5; i++ {
		runCLI(t, addrs, "send", "recent", fmt.Sprint("m", i), "--author", "alice").expect(t, exitOK, nil, nil)
	}
	r := runCLI(t, addrs, "channel", "info", "recent")
	r.expect(t, exitOK, []string{"RETENTION"}, nil)
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][3] != "3" || rows[0][4] != "5" || rows[0][5] != "3" ||
		!strings.Contains(r.stdout, "3 msgs") {
		t.Fatalf("channel info of a 3-message channel after 5 sends:\n%s", r.stdout)
	}
	r = runCLI(t, addrs, "history", "recent")
	r.expect(t, exitOK, []string{"m3", "m5"}, []string{"messages before 3 were removed by retention"})
	runCLI(t, addrs, "history", "recent", "--after", "1").expect(t, exitError, nil, []string{"out of range"})

	// update: the limit given replaces one, the other stays.
	runCLI(t, addrs, "channel", "update", "recent", "--max-age", "1h").expect(t, exitOK, []string{"3 msgs, 1h0m0s"}, nil)
	runCLI(t, addrs, "channel", "update", "recent", "--max-messages", "1").expect(t, exitOK, []string{"1 msgs, 1h0m0s"}, nil)
	var info jsonChannel
	runCLI(t, addrs, "channel", "info", "recent", "--json").decode(t, &info)
	if info.FirstSequence != 5 || info.TrimmedThrough != 4 || info.Retention.MaxMessages != 1 || info.Retention.MaxAge != "1h0m0s" {
		t.Fatalf("channel info --json after tightening to 1 message: %+v", info)
	}
	runCLI(t, addrs, "channel", "update", "recent", "--max-age", "10ms").expect(t, exitError, nil, []string{"max_age"})
	runCLI(t, addrs, "channel", "update", "recent").expect(t, exitUsage, nil, []string{"give -name or a retention limit"})

	tr := startTail(t, addrs, "recent")
	if got := tr.waitLines(t, 1); !strings.HasPrefix(got[0], "5\t") {
		t.Fatalf("tail of a trimmed channel: %q", got)
	}
	tr.stop(t)
	if !strings.Contains(tr.stderr.String(), "messages before 5 were removed by retention") {
		t.Fatalf("tail stderr: %s", tr.stderr.String())
	}
}
