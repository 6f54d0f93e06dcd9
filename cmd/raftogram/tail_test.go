package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/raftogram/raftogram/internal/testbin"
)

// tailRun is a `raftogram tail` running in the background.
type tailRun struct {
	cancel         context.CancelFunc
	stdout, stderr *testbin.Buffer
	done           chan int // the exit code
}

// startTail runs `raftogram tail args...` until stop.
func startTail(t *testing.T, addrs string, args ...string) *tailRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &tailRun{cancel: cancel, stdout: &testbin.Buffer{}, stderr: &testbin.Buffer{}, done: make(chan int, 1)}
	go func() {
		tr.done <- run(ctx, append([]string{"tail"}, args...), map[string]string{"RAFTOGRAM_ADDRS": addrs}, tr.stdout, tr.stderr)
	}()
	t.Cleanup(cancel)
	return tr
}

// lines returns the lines printed so far.
func (tr *tailRun) lines() []string {
	s := strings.TrimRight(tr.stdout.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitLines polls until the tail has printed n lines and returns them; it
// fails the test when the tail exits first.
func (tr *tailRun) waitLines(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	poll(t, fmt.Sprintf("tail prints %d lines", n), func() error {
		select {
		case code := <-tr.done:
			t.Fatalf("tail exited %d early; stderr %s", code, tr.stderr.String())
		default:
		}
		if got = tr.lines(); len(got) < n {
			return fmt.Errorf("%d lines: %q", len(got), got)
		}
		return nil
	})
	return got
}

// stop interrupts the tail (as Ctrl-C does) and returns its exit code.
func (tr *tailRun) stop(t *testing.T) int {
	t.Helper()
	tr.cancel()
	var code int
	poll(t, "tail exits after the interrupt", func() error {
		select {
		case code = <-tr.done:
			return nil
		default:
			return fmt.Errorf("still running")
		}
	})
	return code
}

// tail prints history then live messages, keeps going across a leader
// failover with every message once and in order, exits 0 when interrupted,
// prints JSON lines with -json and fails with not found for an unknown
// channel.
func TestCLITail(t *testing.T) {
	c, addrs := startCLICluster(t)
	runCLI(t, addrs, "channel", "create", "general").expect(t, exitOK, nil, nil)
	runCLI(t, addrs, "send", "general", "one", "--author", "alice").expect(t, exitOK, nil, nil)
	withStdin(t, "\xff\x00")
	runCLI(t, addrs, "send", "general", "-", "--author", "bob").expect(t, exitOK, nil, nil)

	onLeader := startTail(t, addrs, "general", "--consistency", "leader")
	anyNode := startTail(t, addrs, "general")
	fromTwo := startTail(t, addrs, "--json", "general", "--after", "2")
	for _, tr := range []*tailRun{onLeader, anyNode} {
		got := tr.waitLines(t, 2)
		if f := strings.Split(got[0], "\t"); len(f) != 4 || f[0] != "1" || f[2] != "alice" || f[3] != "one" {
			t.Fatalf("first tail line %q", got[0])
		}
		if f := strings.Split(got[1], "\t"); len(f) != 4 || f[0] != "2" || f[3] != "base64:/wA=" {
			t.Fatalf("second tail line %q", got[1])
		}
	}

	// The leader goes away: the leader-level stream resumes on the new one.
	l := c.Leader()
	c.Stop(l)
	c.Leader()
	runCLI(t, addrs, "send", "general", "three", "--author", "carol").expect(t, exitOK, nil, nil)
	runCLI(t, addrs, "send", "general", "four", "--author", "dave").expect(t, exitOK, nil, nil)
	for name, tr := range map[string]*tailRun{"leader-level": onLeader, "default-level": anyNode} {
		tr.waitLines(t, 4)
		var seqs []string
		for _, line := range tr.lines() {
			seqs = append(seqs, strings.Split(line, "\t")[0])
		}
		if want := []string{"1", "2", "3", "4"}; !reflect.DeepEqual(seqs, want) {
			t.Fatalf("%s tail printed sequences %v, want %v:\n%s", name, seqs, want, tr.stdout.String())
		}
	}

	got := fromTwo.waitLines(t, 2)
	for i, line := range got {
		var m jsonMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("tail -json line %q: %v", line, err)
		}
		if m.ChannelID != "general" || m.Sequence != uint64(3+i) || m.Text == nil || string(m.Payload) != *m.Text || m.ClientMessageID == "" {
			t.Fatalf("tail -json line %d: %+v", i, m)
		}
	}

	for name, tr := range map[string]*tailRun{"leader-level": onLeader, "default-level": anyNode, "json": fromTwo} {
		if code := tr.stop(t); code != exitOK || tr.stderr.String() != "" {
			t.Fatalf("%s tail after interrupt: exit %d, stderr %q", name, code, tr.stderr.String())
		}
	}
	if n := len(onLeader.lines()); n != 4 {
		t.Fatalf("leader-level tail printed %d lines after the end, want 4", n)
	}

	missing := startTail(t, addrs, "missing")
	var code int
	poll(t, "tail of a missing channel exits", func() error {
		select {
		case code = <-missing.done:
			return nil
		default:
			return fmt.Errorf("still running")
		}
	})
	if code != exitError || !strings.Contains(missing.stderr.String(), "raftogram tail: not found: ") {
		t.Fatalf("tail missing: exit %d, stderr %q", code, missing.stderr.String())
	}
}
