package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/internal/testbin"
	"github.com/raftogram/raftogram/internal/testcluster"
)

// cliWait bounds the polling of CLI tests (a tail printing, a leader moving).
const cliWait = 20 * time.Second

// cliResult is what one CLI run printed and returned.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs `raftogram args...` in process against the nodes in addrs
// (through RAFTOGRAM_ADDRS; "" leaves it unset) and returns its exit code
// and output.
func runCLI(t *testing.T, addrs string, args ...string) cliResult {
	t.Helper()
	env := map[string]string{}
	if addrs != "" {
		env["RAFTOGRAM_ADDRS"] = addrs
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, env, &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

// expect fails the test unless r exited with code and its stdout and stderr
// contain the given strings.
func (r cliResult) expect(t *testing.T, code int, stdoutHas, stderrHas []string) {
	t.Helper()
	ok := r.code == code
	for _, s := range stdoutHas {
		ok = ok && strings.Contains(r.stdout, s)
	}
	for _, s := range stderrHas {
		ok = ok && strings.Contains(r.stderr, s)
	}
	if !ok {
		t.Fatalf("exit %d (want %d)\nstdout (want %q):\n%s\nstderr (want %q):\n%s", r.code, code, stdoutHas, r.stdout, stderrHas, r.stderr)
	}
}

// decode fails the test unless r exited 0 with exactly one JSON document on
// stdout, and decodes it into v.
func (r cliResult) decode(t *testing.T, v any) {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %q: %v", r.stdout, err)
	}
	if dec.More() || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("stdout holds more than one JSON line: %q", r.stdout)
	}
}

// startCLICluster starts a three-node in-process cluster and returns it with
// its addresses as -addrs takes them.
func startCLICluster(t *testing.T) (*testcluster.Cluster, string) {
	t.Helper()
	c := testcluster.Start(t, 3)
	return c, strings.Join(c.Addrs(), ",")
}

// tableRows returns the rows of a table printed by a command, each split into
// its cells, without the header.
func tableRows(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		t.Fatalf("no table in %q", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// withStdin makes `send ... -` read s for the rest of the test.
func withStdin(t *testing.T, s string) {
	prev := stdin
	stdin = strings.NewReader(s)
	t.Cleanup(func() { stdin = prev })
}

// poll calls cond every 20 ms until it returns nil or cliWait passes, then
// fails the test with cond's last error.
func poll(t *testing.T, what string, cond func() error) {
	t.Helper()
	if err := testbin.Poll(context.Background(), cliWait, 20*time.Millisecond, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		pos       []string
		author    string
		json, err bool
	}{
		{args: []string{"general", "hello", "-author", "a"}, pos: []string{"general", "hello"}, author: "a"},
		{args: []string{"--author=a", "general", "--json", "hello"}, pos: []string{"general", "hello"}, author: "a", json: true},
		{args: []string{"general", "-", "--author", "a"}, pos: []string{"general", "-"}, author: "a"},
		{args: []string{"general", "--", "-author", "x"}, pos: []string{"general", "-author", "x"}},
		{args: []string{"-author", "--", "general", "-json"}, pos: []string{"general"}, author: "--", json: true},
		{args: []string{"--json", "--", "general"}, pos: []string{"general"}, json: true},
		{args: []string{"general", "-bogus"}, err: true},
		{args: nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		author := fs.String("author", "", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if (err != nil) != tc.err {
			t.Fatalf("%q: error %v, want error %v", tc.args, err, tc.err)
		}
		if tc.err {
			continue
		}
		if !reflect.DeepEqual(pos, tc.pos) || *author != tc.author || *asJSON != tc.json {
			t.Fatalf("%q: positional %q author %q json %v; want %q %q %v", tc.args, pos, *author, *asJSON, tc.pos, tc.author, tc.json)
		}
	}
}

func TestPayloadText(t *testing.T) {
	for in, want := range map[string]string{
		"Hello, wörld":         "Hello, wörld",
		"":                     "",
		"two\nlines":           "base64:dHdvCmxpbmVz",
		"\x00\x01\x02\xff\xfe": "base64:AAEC//4=",
		"tab\there":            "base64:dGFiCWhlcmU=",
	} {
		if got := payloadText([]byte(in)); got != want {
			t.Errorf("payloadText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := cell("a\tb"); got != `"a\tb"` {
		t.Errorf("cell with a tab = %q", got)
	}
}

// Every client command answers -help on stdout with its usage, its flags
// and the exit codes, and exits 0, without contacting a node.
func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"channel", "create", "-help"}, {"channel", "get", "--help"}, {"channel", "list", "-h"},
		{"send", "--help"}, {"history", "--help"}, {"tail", "--help"},
		{"cluster", "status", "--help"}, {"cluster", "transfer-leader", "--help"},
		{"help", "send"}, {"channel", "help", "get"},
	} {
		r := runCLI(t, "127.0.0.1:1", args...)
		r.expect(t, exitOK, []string{"Usage: raftogram ", "-addrs", "-json", "Exit status: 0 success; 1 the cluster", "2 usage error"}, nil)
		if r.stderr != "" {
			t.Fatalf("%v: stderr %q", args, r.stderr)
		}
	}
	r := runCLI(t, "", "history", "-help")
	r.expect(t, exitOK, []string{"-consistency", "-min-index", "-after", "-limit", "-timeout", "RAFTOGRAM_ADDRS", "127.0.0.1:9000,127.0.0.1:9001,127.0.0.1:9002"}, nil)
	if r := runCLI(t, "", "tail", "-help"); strings.Contains(r.stdout, "  -timeout") {
		t.Fatalf("tail has a -timeout flag:\n%s", r.stdout)
	}
	for _, g := range []string{"channel", "cluster"} {
		runCLI(t, "", "help", g).expect(t, exitOK, []string{"Usage: raftogram " + g + " SUBCOMMAND", "Subcommands:"}, nil)
	}
}

// Bad command lines exit 2 with the problem and the usage on stderr, and
// never contact a node (the address refuses connections).
func TestCLIUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"channel"}, "missing subcommand"},
		{[]string{"channel", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"cluster", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"cluster"}, "missing subcommand"},
		{[]string{"channel", "get"}, "missing argument"},
		{[]string{"channel", "get", "a", "b"}, `unexpected argument "b"`},
		{[]string{"channel", "create", "-id", "a", "b"}, "two channel ids"},
		{[]string{"channel", "list", "-page-size", "-1"}, "-page-size must not be negative"},
		{[]string{"channel", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"send", "general", "hi"}, "-author is required"},
		{[]string{"send", "-author", "a"}, "missing argument"},
		{[]string{"send", "general", "hi", "extra", "-author", "a"}, `unexpected argument "extra"`},
		{[]string{"send", "general", "hi", "-author", "a", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"history", "general", "-limit", "x"}, `invalid value "x" for flag -limit`},
		{[]string{"history", "general", "-limit", "-5"}, "-limit must not be negative"},
		{[]string{"history", "general", "-consistency", "eventual"}, `unknown consistency "eventual"`},
		{[]string{"history", "general", "-min-index", "5"}, "-min-index needs -consistency at-least"},
		{[]string{"history", "general", "-timeout", "0s"}, "-timeout must be positive"},
		{[]string{"history", "general", "-addrs", " , "}, "-addrs is empty"},
		{[]string{"tail"}, "missing argument"},
		{[]string{"tail", "general", "-timeout", "1s"}, "flag provided but not defined: -timeout"},
		{[]string{"cluster", "status", "extra"}, `unexpected argument "extra"`},
		{[]string{"cluster", "transfer-leader", "node2"}, `unexpected argument "node2"`},
	} {
		r := runCLI(t, "127.0.0.1:1", tc.args...)
		r.expect(t, exitUsage, nil, []string{tc.err, "Usage: raftogram "})
		if r.stdout != "" {
			t.Fatalf("%v: stdout %q", tc.args, r.stdout)
		}
	}
}

// A cluster that cannot be reached is exit 1 naming the kind; cluster
// status lists the node as unreachable.
func TestCLIUnreachable(t *testing.T) {
	runCLI(t, "127.0.0.1:1", "history", "general", "-timeout", "300ms").
		expect(t, exitError, nil, []string{"raftogram history: unavailable: no answer within -timeout 300ms", "connection refused"})
	r := runCLI(t, "127.0.0.1:1", "cluster", "status", "-timeout", "2s")
	r.expect(t, exitError, []string{"127.0.0.1:1", "unreachable"}, []string{"127.0.0.1:1: unavailable:", "no node answered"})
}
