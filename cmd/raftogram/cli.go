package main

// Shared plumbing of the client commands (channel, send, history, tail,
// cluster): common flags, interspersed flag parsing, connecting, error
// reporting with exit codes, JSON and table output. docs/cli.md documents
// what users see.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/raftogram/raftogram/client"
)

// defaultAddrs are the gRPC addresses of the README's three nodes, used when
// neither -addrs nor RAFTOGRAM_ADDRS is set.
const defaultAddrs = "127.0.0.1:9000,127.0.0.1:9001,127.0.0.1:9002"

// defaultTimeout bounds one command (retries included) unless -timeout says
// otherwise; tail has no bound.
const defaultTimeout = 10 * time.Second

// stdin is what `send CHANNEL -` reads; tests replace it.
var stdin io.Reader = os.Stdin

// exitCodesHelp closes every client command's usage.
const exitCodesHelp = "\nExit status: 0 success; 1 the cluster answered with an error or could not be\n" +
	"reached (the error, named by kind, on stderr); 2 usage error.\n"

// cmdOptions says which common flags a command takes beyond -addrs and -json.
type cmdOptions struct {
	read    bool // -consistency and -min-index
	timeout bool // -timeout
}

// invocation is one run of a client command: its flag set, the common
// flags' values and where its output goes.
type invocation struct {
	name     string // "raftogram channel get", for messages
	synopsis string // the arguments after the name, for the usage line
	about    string // what the command does, for the usage
	fs       *flag.FlagSet
	stdout   io.Writer
	stderr   io.Writer
	opts     cmdOptions

	addrs       string
	cacert      string
	cert        string
	key         string
	token       string
	asJSON      bool
	timeout     time.Duration
	consistency string
	minIndex    uint64
}

// newInvocation returns an invocation of the command name ("channel get")
// with the common flags defined on its flag set; the caller adds its own
// flags before [invocation.parse]. -addrs defaults to RAFTOGRAM_ADDRS from
// env, else [defaultAddrs].
func newInvocation(name, synopsis, about string, opts cmdOptions, env map[string]string, stdout, stderr io.Writer) *invocation {
	in := &invocation{name: "raftogram " + name, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr, opts: opts}
	in.fs = flag.NewFlagSet(in.name, flag.ContinueOnError)
	in.fs.SetOutput(stderr)
	in.fs.Usage = func() {} // parse prints the usage where it belongs
	addrs := defaultAddrs
	if v := strings.TrimSpace(env["RAFTOGRAM_ADDRS"]); v != "" {
		addrs = v
	}
	in.fs.StringVar(&in.addrs, "addrs", addrs, "comma-separated gRPC addresses of any nodes (env RAFTOGRAM_ADDRS)")
	in.fs.StringVar(&in.cacert, "cacert", env["RAFTOGRAM_CACERT"], "PEM file of the CA that signs the nodes' certificates: connect with TLS (env RAFTOGRAM_CACERT)")
	in.fs.StringVar(&in.cert, "cert", env["RAFTOGRAM_CERT"], "PEM client certificate, for clusters that take client certificates (env RAFTOGRAM_CERT)")
	in.fs.StringVar(&in.key, "key", env["RAFTOGRAM_KEY"], "PEM key of -cert (env RAFTOGRAM_KEY)")
	in.fs.StringVar(&in.token, "token", env["RAFTOGRAM_TOKEN"], "bearer token (static or JWT) for clusters with auth; needs TLS (env RAFTOGRAM_TOKEN)")
	in.fs.BoolVar(&in.asJSON, "json", false, "print JSON instead of a table")
	if opts.timeout {
		in.fs.DurationVar(&in.timeout, "timeout", defaultTimeout, "give up after this long, retries included")
	}
	if opts.read {
		in.fs.StringVar(&in.consistency, "consistency", "", "which node may answer: leader, linearizable, at-least or local (default linearizable)")
		in.fs.Uint64Var(&in.minIndex, "min-index", 0, "with -consistency at-least: the Raft index the node must have applied (a write's index)")
	}
	return in
}

// usage writes the command's usage: synopsis, description, flags and exit
// codes.
func (in *invocation) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n\nFlags:\n", in.name, in.synopsis, strings.TrimRight(in.about, "\n"))
	out := in.fs.Output()
	in.fs.SetOutput(w)
	in.fs.PrintDefaults()
	in.fs.SetOutput(out)
	fmt.Fprint(w, exitCodesHelp)
}

// parse parses args, flags and positional arguments in any order (a "--"
// ends the flags), checks the common flags and that there are between
// minArgs and maxArgs positional arguments (maxArgs < 0: no limit), and
// returns the positional arguments. When it returns ok false the command
// must exit with code: exitOK after -help (the usage went to stdout),
// exitUsage after a usage error (reported on stderr with the usage).
func (in *invocation) parse(args []string, minArgs, maxArgs int) (pos []string, code int, ok bool) {
	pos, err := parseInterspersed(in.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		in.usage(in.stdout)
		return nil, exitOK, false
	}
	if err != nil { // the flag package has printed the error
		fmt.Fprintln(in.stderr)
		in.usage(in.stderr)
		return nil, exitUsage, false
	}
	switch {
	case len(pos) < minArgs:
		return nil, in.usageError("missing argument: want %s", in.synopsis), false
	case maxArgs >= 0 && len(pos) > maxArgs:
		return nil, in.usageError("unexpected argument %q", pos[maxArgs]), false
	case len(splitAddrs(in.addrs)) == 0:
		return nil, in.usageError("-addrs is empty"), false
	case in.opts.timeout && in.timeout <= 0:
		return nil, in.usageError("-timeout must be positive, got %v", in.timeout), false
	}
	if in.opts.read {
		c, err := in.readConsistency()
		if err != nil {
			return nil, in.usageError("-consistency: %v", strings.ReplaceAll(err.Error(), "raftogram: invalid argument: ", "")), false
		}
		if in.minIndex > 0 && c != client.AtLeast {
			return nil, in.usageError("-min-index needs -consistency at-least"), false
		}
	}
	return pos, exitOK, true
}

// usageError reports a usage error and the usage on stderr and returns
// exitUsage.
func (in *invocation) usageError(format string, args ...any) int {
	fmt.Fprintf(in.stderr, "%s: %s\n\n", in.name, fmt.Sprintf(format, args...))
	in.usage(in.stderr)
	return exitUsage
}

// parseInterspersed parses args with fs, letting flags follow positional
// arguments (the flag package stops at the first one), and returns the
// positional arguments in order. Everything after a "--" is positional; a
// lone "-" is positional. It returns fs.Parse's error (flag.ErrHelp for
// -h/-help).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" && !flagTakesValue(fs, args, used-1) {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagTakesValue reports whether args[i] is the separate value of the flag
// before it (as in "-author --"), rather than a "--" ending the flags.
func flagTakesValue(fs *flag.FlagSet, args []string, i int) bool {
	if i == 0 {
		return false
	}
	prev := args[i-1]
	if !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// splitAddrs returns the non-empty, trimmed entries of a comma-separated
// address list.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// readConsistency returns the level named by -consistency (Linearizable
// when empty or "default", the client's own default), or an error wrapping
// client.ErrInvalidArgument.
func (in *invocation) readConsistency() (client.Consistency, error) {
	if in.consistency == "" {
		return client.Linearizable, nil
	}
	c, err := client.ParseConsistency(in.consistency)
	if err != nil {
		return 0, err // names the flag value and the valid levels
	}
	if c == client.ConsistencyDefault {
		c = client.Linearizable
	}
	return c, nil
}

// withClient runs fn with a Client for -addrs, under the command's
// timeout, and returns exitOK, or, when connecting or fn fails, the exit
// code of in.fail for that error.
func (in *invocation) withClient(ctx context.Context, fn func(context.Context, *client.Client) error) int {
	ctx, cancel := in.commandContext(ctx)
	defer cancel()
	c, err := in.connect(ctx)
	if err != nil {
		return in.fail(ctx, err)
	}
	defer c.Close()
	if err := fn(ctx, c); err != nil {
		return in.fail(ctx, err)
	}
	return exitOK
}

// commandContext returns the command's context: ctx bounded by -timeout when the
// command has one.
func (in *invocation) commandContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if in.opts.timeout {
		return context.WithTimeout(ctx, in.timeout)
	}
	return context.WithCancel(ctx)
}

// connect returns a client of the nodes named by -addrs. It returns
// client.New's error (a malformed address) wrapped.
func (in *invocation) connect(ctx context.Context) (*client.Client, error) {
	cfg := client.Config{Addrs: splitAddrs(in.addrs), Token: in.token}
	if in.cacert != "" || in.cert != "" || in.key != "" {
		tc, err := client.LoadTLS(client.TLSFiles{CA: in.cacert, Cert: in.cert, Key: in.key})
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	c, err := client.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", in.addrs, err)
	}
	return c, nil
}

// fail reports err on stderr as "raftogram CMD: KIND: detail" and returns
// exitError; ctx is the command's context, whose end makes the kind
// "timeout" (or "unavailable" when no node could be reached).
func (in *invocation) fail(ctx context.Context, err error) int {
	fmt.Fprintf(in.stderr, "%s: %s\n", in.name, in.describe(ctx, err))
	return exitError
}

// errorKind returns the name of err's client.Kind ("not found",
// "unavailable"...), or "error" when it is none of the client's.
func errorKind(err error) string {
	k := client.Kind(err)
	if k == nil {
		return "error"
	}
	return strings.TrimPrefix(k.Error(), "raftogram: ")
}

// describe returns err as the one line a command prints: its kind, then
// the node's message. When ctx ran out of time the kind is "timeout", or
// "unavailable" when no node could be reached, followed by the last
// attempt's error.
func (in *invocation) describe(ctx context.Context, err error) string {
	var ce *client.Error
	hasNodeErr := errors.As(err, &ce)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		kind := "timeout"
		if errors.Is(err, client.ErrUnavailable) {
			kind = "unavailable"
		}
		msg := fmt.Sprintf("%s: no answer within -timeout %v", kind, in.timeout)
		if hasNodeErr {
			msg += fmt.Sprintf(" (last attempt: %s: %s)", errorKind(ce), nodeMessage(ce))
		}
		return msg
	}
	if hasNodeErr {
		return errorKind(ce) + ": " + nodeMessage(ce)
	}
	return errorKind(err) + ": " + strings.ReplaceAll(err.Error(), "raftogram: ", "")
}

// nodeMessage returns a node error's message and, for not-leader answers,
// the leader it named.
func nodeMessage(e *client.Error) string {
	msg := e.Message
	if e.Leader != "" {
		msg += " (leader " + e.LeaderID + " at " + e.Leader + ")"
	}
	return msg
}

// writeJSON writes v as one JSON document on its own line to stdout. It
// returns the encoder's error.
func (in *invocation) writeJSON(v any) error {
	if err := json.NewEncoder(in.stdout).Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// table returns a tab-separated table writer on stdout with the given
// header row written; Flush it when done.
func (in *invocation) table(header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// flushTable flushes tw and returns its error wrapped.
func flushTable(tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// timeText returns t in UTC with milliseconds, or "-" for the zero time.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// payloadText returns a payload for a table or a line of tail: the text
// when it is printable UTF-8 (no control characters), else "base64:" and
// its standard base64.
func payloadText(p []byte) string {
	if printable(p) {
		return string(p)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(p)
}

// cell returns s for a table cell: as it is when printable, else quoted
// (so a tab or newline cannot break the table).
func cell(s string) string {
	if printable([]byte(s)) {
		return s
	}
	return strconv.Quote(s)
}

// printable reports whether p is valid UTF-8 made of printable characters
// and spaces only.
func printable(p []byte) bool {
	if !utf8.Valid(p) {
		return false
	}
	for _, r := range string(p) {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// jsonMessage is a message in JSON output: the payload in base64 (as
// protobuf's JSON mapping spells bytes) and, when it is valid UTF-8, also as
// text.
type jsonMessage struct {
	ChannelID       string    `json:"channel_id,omitempty"`
	Sequence        uint64    `json:"sequence"`
	CreatedAt       time.Time `json:"created_at"`
	AuthorID        string    `json:"author_id"`
	ClientMessageID string    `json:"client_message_id"`
	Payload         []byte    `json:"payload"`
	Text            *string   `json:"text,omitempty"`
	Redacted        bool      `json:"redacted,omitempty"`
}

// messageText is the PAYLOAD column of m: payloadText, or "[redacted]".
func messageText(m client.Message) string {
	if m.Redacted {
		return "[redacted]"
	}
	return payloadText(m.Payload)
}

// newJSONMessage returns m as JSON output, naming channel when not empty.
func newJSONMessage(channel string, m client.Message) jsonMessage {
	jm := jsonMessage{ChannelID: channel, Sequence: m.Sequence, CreatedAt: m.CreatedAt.UTC(), AuthorID: m.AuthorID,
		ClientMessageID: m.ClientMessageID, Payload: m.Payload, Redacted: m.Redacted}
	if jm.Payload == nil {
		jm.Payload = []byte{}
	}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		jm.Text = &s
	}
	return jm
}

// group is a command with subcommands (channel, cluster).
type group struct {
	name  string // "channel"
	about string
	subs  map[string]command
	sums  map[string]string
}

// run dispatches args[0] to the subcommand of that name and returns its
// exit code. No subcommand or an unknown one is a usage error (exit 2);
// -h, -help or help prints the group's usage (exit 0), and help SUB runs
// SUB with -help.
func (g *group) run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "raftogram %s: missing subcommand\n\n", g.name)
		g.usage(stderr)
		return exitUsage
	}
	name := args[0]
	if isHelpFlag(name) || name == "help" {
		if len(args) > 1 && name == "help" {
			if sub, ok := g.subs[args[1]]; ok {
				return sub(ctx, []string{"-help"}, env, stdout, stderr)
			}
		}
		g.usage(stdout)
		return exitOK
	}
	sub, ok := g.subs[name]
	if !ok {
		fmt.Fprintf(stderr, "raftogram %s: unknown subcommand %q\n\n", g.name, name)
		g.usage(stderr)
		return exitUsage
	}
	return sub(ctx, args[1:], env, stdout, stderr)
}

// usage writes the group's usage: its subcommands and the exit codes.
func (g *group) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: raftogram %s SUBCOMMAND [flags] [args]\n\n%s\n\nSubcommands:\n", g.name, g.about)
	names := make([]string, 0, len(g.subs))
	for n := range g.subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, g.sums[n])
	}
	fmt.Fprintf(w, "\nRun 'raftogram %s SUBCOMMAND -help' for its flags.\n", g.name)
	fmt.Fprint(w, exitCodesHelp)
}
