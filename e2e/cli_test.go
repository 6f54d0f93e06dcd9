package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftogram/raftogram/internal/testbin"
)

// cliTimeout bounds one CLI command run by these tests.
const cliTimeout = 30 * time.Second

// cliRun is the outcome of one run of the built binary as a CLI.
type cliRun struct {
	args           []string
	code           int
	stdout, stderr string
}

// runCLI runs the built binary with args, extra environment variables and
// stdin (none when empty), waits up to cliTimeout and returns its exit code
// and output.
func runCLI(t *testing.T, env []string, stdin string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(testbin.BaseEnv(), env...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("raftogram %q: %v\nstderr: %s", args, err, r.stderr)
	}
	return r
}

// expect fails the test unless the run exited with code and its stdout and
// stderr contain the given strings.
func (r cliRun) expect(t *testing.T, code int, stdoutHas, stderrHas []string) cliRun {
	t.Helper()
	ok := r.code == code
	for _, s := range stdoutHas {
		ok = ok && strings.Contains(r.stdout, s)
	}
	for _, s := range stderrHas {
		ok = ok && strings.Contains(r.stderr, s)
	}
	if !ok {
		t.Fatalf("raftogram %q: exit %d (want %d)\nstdout (want %q):\n%s\nstderr (want %q):\n%s", r.args, r.code, code, stdoutHas, r.stdout, stderrHas, r.stderr)
	}
	return r
}

// decode fails the test unless the run exited 0 with one JSON document on
// stdout, and decodes it into v.
func (r cliRun) decode(t *testing.T, v any) {
	t.Helper()
	r.expect(t, 0, nil, nil)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("raftogram %q: stdout is not one JSON line (%v):\n%s", r.args, err, r.stdout)
	}
}

// rows returns the table rows of the run's stdout, without the header,
// split into cells.
func (r cliRun) rows() [][]string {
	var rows [][]string
	for i, l := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
		if i > 0 {
			rows = append(rows, strings.Fields(l))
		}
	}
	return rows
}

// cliStatus is `raftogram cluster status -json`.
type cliStatus struct {
	LeaderID string `json:"leader_id"`
	Nodes    []struct {
		Address      string `json:"address"`
		Reachable    bool   `json:"reachable"`
		Error        string `json:"error"`
		NodeID       string `json:"node_id"`
		Role         string `json:"role"`
		Term         uint64 `json:"term"`
		CommitIndex  uint64 `json:"commit_index"`
		AppliedIndex uint64 `json:"applied_index"`
		Lag          uint64 `json:"lag"`
		Version      string `json:"version"`
	} `json:"nodes"`
}

// tailLines returns the message lines a tail process wrote to its log
// (which also holds the harness's header and anything on stderr).
func tailLines(t *testing.T, logPath string) []string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, "\t"); len(f) == 4 {
			out = append(out, l)
		}
	}
	return out
}

// TestCLI runs every CLI command of the built binary against a real
// three-node cluster: help and usage errors, channel create/get/list, send,
// history, cluster status, cluster transfer-leader, and tail as a process
// that follows the channel across a SIGKILL of the leader and exits 0 on
// SIGINT.
func TestCLI(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	all := c.ids()
	c.start(all...)
	leader := c.waitStable(all...)
	addrs := strings.Join(c.GRPCAddrs(), ",")
	env := []string{"RAFTOGRAM_ADDRS=" + addrs}

	// Help, an unknown command, usage errors: no node is involved.
	r := runCLI(t, nil, "", "help").expect(t, 0, []string{"Commands:", "channel", "cluster", "send", "history", "tail", "Exit status"}, nil)
	if r.stderr != "" {
		t.Fatalf("help wrote to stderr: %s", r.stderr)
	}
	runCLI(t, nil, "", "help", "tail").expect(t, 0, []string{"Usage: raftogram tail CHANNEL", "-consistency", "Exit status"}, nil)
	runCLI(t, nil, "", "send", "--help").expect(t, 0, []string{"Usage: raftogram send CHANNEL", "-author", "RAFTOGRAM_ADDRS"}, nil)
	runCLI(t, nil, "", "bogus").expect(t, 2, nil, []string{`unknown command "bogus"`, "Commands:"})
	runCLI(t, nil, "", "channel", "bogus").expect(t, 2, nil, []string{`unknown subcommand "bogus"`})
	runCLI(t, nil, "", "cluster").expect(t, 2, nil, []string{"missing subcommand"})
	runCLI(t, env, "", "history", "general", "--bogus").expect(t, 2, nil, []string{"flag provided but not defined: -bogus"})
	runCLI(t, env, "", "send", "general", "hi").expect(t, 2, nil, []string{"-author is required"})

	// channel create, as the README writes it, then idempotently.
	r = runCLI(t, nil, "", "channel", "create", "--id", "general", "--name", "General", "--addrs", addrs)
	if rows := r.expect(t, 0, []string{"CHANNEL", "CREATED", "INDEX"}, nil).rows(); len(rows) != 1 || !reflect.DeepEqual(rows[0][:3], []string{"general", "General", "true"}) {
		t.Fatalf("channel create:\n%s", r.stdout)
	}
	var created struct {
		ChannelID string `json:"channel_id"`
		Name      string `json:"name"`
		Created   bool   `json:"created"`
		Index     uint64 `json:"index"`
	}
	runCLI(t, env, "", "channel", "create", "general", "--name", "Other", "--json").decode(t, &created)
	if created.ChannelID != "general" || created.Name != "General" || created.Created || created.Index == 0 {
		t.Fatalf("channel create again: %+v", created)
	}
	runCLI(t, env, "", "channel", "create", "random").expect(t, 0, []string{"random"}, nil)

	// send: argument, stdin, a repeated id.
	r = runCLI(t, env, "", "send", "general", "Hello", "--author", "alice", "--id", "msg-1")
	if rows := r.expect(t, 0, []string{"SEQUENCE", "DEDUPLICATED", "CLIENT_MESSAGE_ID"}, nil).rows(); len(rows) != 1 || rows[0][0] != "1" || rows[0][1] != "false" || rows[0][3] != "msg-1" {
		t.Fatalf("send:\n%s", r.stdout)
	}
	var sent struct {
		Sequence        uint64 `json:"sequence"`
		Deduplicated    bool   `json:"deduplicated"`
		Index           uint64 `json:"index"`
		ClientMessageID string `json:"client_message_id"`
	}
	runCLI(t, env, "", "send", "general", "Hello", "--author", "alice", "--id", "msg-1", "--json").decode(t, &sent)
	if sent.Sequence != 1 || !sent.Deduplicated {
		t.Fatalf("identical send with a used id: %+v", sent)
	}
	runCLI(t, env, "", "send", "general", "Hello again", "--author", "alice", "--id", "msg-1").
		expect(t, 1, nil, []string{"raftogram send: already exists: "})
	runCLI(t, env, "\x00\x01\xfe", "send", "general", "-", "--author", "bob", "--json").decode(t, &sent)
	if sent.Sequence != 2 || sent.Deduplicated || sent.ClientMessageID == "" || sent.Index == 0 {
		t.Fatalf("send from stdin: %+v", sent)
	}
	runCLI(t, env, "", "send", "missing", "x", "--author", "bob").expect(t, 1, nil, []string{"raftogram send: not found: "})

	// channel get and list.
	r = runCLI(t, env, "", "channel", "get", "general")
	if rows := r.expect(t, 0, []string{"CREATED_AT", "MESSAGES"}, nil).rows(); len(rows) != 1 || !reflect.DeepEqual(append(rows[0][:2:2], rows[0][3:]...), []string{"general", "General", "1", "2", "2", "-"}) {
		t.Fatalf("channel get:\n%s", r.stdout)
	}
	var ch struct {
		ChannelID    string `json:"channel_id"`
		LastSequence uint64 `json:"last_sequence"`
	}
	runCLI(t, env, "", "channel", "get", "general", "--json", "--consistency", "at-least", "--min-index", fmt.Sprint(sent.Index)).decode(t, &ch)
	if ch.ChannelID != "general" || ch.LastSequence != 2 {
		t.Fatalf("channel get -json: %+v", ch)
	}
	runCLI(t, env, "", "channel", "get", "missing").expect(t, 1, nil, []string{"raftogram channel get: not found: "})
	r = runCLI(t, env, "", "channel", "list")
	if rows := r.expect(t, 0, nil, nil).rows(); len(rows) != 2 || rows[0][0] != "general" || rows[1][0] != "random" {
		t.Fatalf("channel list:\n%s", r.stdout)
	}
	var list struct {
		Channels []struct {
			ChannelID string `json:"channel_id"`
		} `json:"channels"`
	}
	runCLI(t, env, "", "channel", "list", "--all", "--page-size", "1", "--json").decode(t, &list)
	if len(list.Channels) != 2 {
		t.Fatalf("channel list -all: %+v", list)
	}

	// history.
	r = runCLI(t, env, "", "history", "general", "--consistency", "local")
	if rows := r.expect(t, 0, []string{"SEQUENCE", "CREATED_AT", "AUTHOR", "PAYLOAD"}, nil).rows(); len(rows) > 2 {
		t.Fatalf("history -consistency local:\n%s", r.stdout)
	}
	r = runCLI(t, env, "", "history", "general")
	if rows := r.expect(t, 0, nil, nil).rows(); len(rows) != 2 || rows[0][2] != "alice" || rows[0][3] != "Hello" || rows[1][3] != "base64:AAH+" {
		t.Fatalf("history:\n%s", r.stdout)
	}
	var hist struct {
		Messages []struct {
			Sequence uint64  `json:"sequence"`
			Payload  []byte  `json:"payload"`
			Text     *string `json:"text"`
		} `json:"messages"`
		HasMore bool `json:"has_more"`
	}
	runCLI(t, env, "", "history", "general", "--after", "1", "--json").decode(t, &hist)
	if len(hist.Messages) != 1 || !bytes.Equal(hist.Messages[0].Payload, []byte{0, 1, 0xfe}) || hist.Messages[0].Text != nil || hist.HasMore {
		t.Fatalf("history -json: %+v", hist)
	}
	runCLI(t, env, "", "history", "missing").expect(t, 1, nil, []string{"raftogram history: not found: "})

	// cluster status. An election under a loaded machine may move the
	// leader between two commands, so each look names the leader /health
	// agrees on just before and is repeated until the two match.
	var st cliStatus
	eventually(t, electionWait, "cluster status names the agreed leader", func() error {
		leader = c.waitStable(all...)
		r = runCLI(t, env, "", "cluster", "status")
		r.expect(t, 0, []string{"NODE", "ROLE", "COMMIT", "APPLIED", "LAG", "SNAPSHOT", "LAST_CONTACT", "VERSION"}, nil)
		for i, row := range r.rows() {
			role := "follower"
			if c.Nodes[i] == leader {
				role = "leader"
			}
			if len(row) != 10 || row[0] != c.Nodes[i].ID || row[1] != c.Nodes[i].GRPCAddr || row[2] != role || row[9] != "dev" {
				return fmt.Errorf("cluster status row %d %q, want %s %s %s version dev:\n%s", i, row, c.Nodes[i].ID, c.Nodes[i].GRPCAddr, role, r.stdout)
			}
		}
		st = cliStatus{}
		runCLI(t, env, "", "cluster", "status", "--json").decode(t, &st)
		if st.LeaderID != leader.ID || len(st.Nodes) != 3 {
			return fmt.Errorf("cluster status -json: %+v, want leader %s", st, leader.ID)
		}
		return nil
	})

	// cluster transfer-leader to a follower; status and /health agree.
	to := c.Nodes[0]
	if to == leader {
		to = c.Nodes[1]
	}
	r = runCLI(t, env, "", "cluster", "transfer-leader", "--to", to.ID)
	if rows := r.expect(t, 0, []string{"LEADER"}, nil).rows(); len(rows) != 1 || rows[0][0] != to.ID {
		t.Fatalf("transfer-leader:\n%s", r.stdout)
	}
	if got := c.waitStable(all...); got != to {
		t.Fatalf("after transfer-leader %s leads, want %s", got.ID, to.ID)
	}
	runCLI(t, env, "", "cluster", "status", "--json").decode(t, &st)
	if st.LeaderID != to.ID {
		t.Fatalf("cluster status after transfer-leader: leader %q, want %s", st.LeaderID, to.ID)
	}
	runCLI(t, env, "", "cluster", "transfer-leader", "--to", "node9").expect(t, 1, nil, []string{"invalid argument: "})
	leader = to

	// tail as a process: history, then live messages across a SIGKILL of
	// the leader, then SIGINT ends it with exit 0.
	dir := t.TempDir()
	tailLog := filepath.Join(dir, "tail.log")
	dumpLogsOnFailure(t, tailLog)
	tail := startProc(t, dir, tailLog, testbin.BaseEnv(), "tail", "general", "--addrs", addrs, "--consistency", "leader")
	waitTail := func(n int) []string {
		t.Helper()
		var lines []string
		eventually(t, electionWait, fmt.Sprintf("tail prints %d messages", n), func() error {
			if tail.exited() {
				t.Fatalf("tail exited early: %v", tail.Err())
			}
			if lines = tailLines(t, tailLog); len(lines) < n {
				return fmt.Errorf("%d lines: %q", len(lines), lines)
			}
			return nil
		})
		return lines
	}
	lines := waitTail(2)
	if f := strings.Split(lines[0], "\t"); f[0] != "1" || f[2] != "alice" || f[3] != "Hello" {
		t.Fatalf("first tail line %q", lines[0])
	}
	c.signal(leader.ID, syscall.SIGKILL)
	c.wait(leader.ID, exitWait)
	var rest []string
	for _, nd := range c.Nodes {
		if nd != leader {
			rest = append(rest, nd.ID)
		}
	}
	c.waitStable(rest...)
	runCLI(t, env, "", "send", "general", "after failover", "--author", "carol").expect(t, 0, nil, nil)
	lines = waitTail(3)
	var seqs []string
	for _, l := range lines {
		seqs = append(seqs, strings.Split(l, "\t")[0])
	}
	if !reflect.DeepEqual(seqs, []string{"1", "2", "3"}) || !strings.HasSuffix(lines[2], "\tcarol\tafter failover") {
		t.Fatalf("tail printed %q, want sequences 1, 2, 3 once each", lines)
	}
	tail.signal(t, syscall.SIGINT)
	if code := tail.wait(t, exitWait); code != 0 {
		t.Fatalf("tail exit code after SIGINT = %d, want 0", code)
	}

	// A node down: status lists it as unreachable and still succeeds.
	r = runCLI(t, env, "", "cluster", "status", "--timeout", "5s")
	r.expect(t, 0, []string{leader.GRPCAddr + "  unreachable"}, []string{"raftogram cluster status: " + leader.GRPCAddr + ": unavailable: "})
	runCLI(t, nil, "", "cluster", "status", "--addrs", leader.GRPCAddr, "--timeout", "5s").expect(t, 1, []string{"unreachable"}, []string{"no node answered"})
}
