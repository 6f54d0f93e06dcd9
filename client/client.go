package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/keepalive"
)

// Defaults of [Config].
const (
	DefaultBaseBackoff    = 25 * time.Millisecond
	DefaultMaxBackoff     = time.Second
	DefaultAttemptTimeout = 5 * time.Second
	// DefaultStreamSilence is three heartbeats at the server's default
	// follower_stream_heartbeat (1s), plus slack.
	DefaultStreamSilence = 5 * time.Second
	// maxRecvMsgSize lets one message of the largest payload a node accepts
	// (16 MiB) through, above gRPC's 4 MiB default.
	maxRecvMsgSize = 17 << 20
	// maxRedirects is how many NotLeader hints in a row are followed at
	// once, before backing off like any other retry.
	maxRedirects = 3
	// searchSteps caps the back-off of attempts refused for want of a
	// leader or that found their node unreachable at BaseBackoff·2²
	// (100 ms by default): they cost the nodes nothing, and a leader is
	// usually known again within an election timeout.
	searchSteps = 2
)

// Config configures a [Client]. Only Addrs is required.
type Config struct {
	// Addrs are the gRPC addresses (host:port) of one or more nodes. Any
	// node will do: the Client learns the leader from the nodes' answers
	// and dials leader addresses it was not given.
	Addrs []string
	// TLS, when set, makes every connection TLS with this config (see
	// [LoadTLS]); nil means plaintext.
	TLS *tls.Config
	// Token, when set, is sent as "authorization: Bearer <Token>" with
	// every call; it needs TLS.
	Token string
	// DialOptions are appended to the Client's own (transport security,
	// keepalive, a reconnect backoff capped at one second, a 17 MiB receive
	// limit), so they override them: pass grpc.WithTransportCredentials for
	// TLS, grpc.WithPerRPCCredentials for tokens.
	DialOptions []grpc.DialOption
	// ConnsPerNode is how many connections (HTTP/2 transports) to open to
	// each node; calls are spread over them. 0 means 1.
	ConnsPerNode int
	// Consistency is the read consistency of calls that leave theirs at
	// [ConsistencyDefault]. Zero means [Linearizable]: any node answers,
	// reads are spread over the nodes and still see every write
	// acknowledged before they started.
	Consistency Consistency
	// BaseBackoff and MaxBackoff bound the pause before a retry: attempt n
	// waits a uniformly random time in [0, min(MaxBackoff, BaseBackoff·2ⁿ)]
	// ("full jitter"), except that an attempt refused for want of a leader
	// (NotLeader) or whose node could not be reached waits at most
	// min(MaxBackoff, BaseBackoff·4), so a new leader is found soon after
	// an election. Zero means DefaultBaseBackoff / DefaultMaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt of a unary call (the caller's
	// context bounds the whole call, retries included), so a node that
	// stopped answering is left for another. Zero means
	// DefaultAttemptTimeout; negative means no bound.
	AttemptTimeout time.Duration
	// StreamSilence: a Subscription at any level but LeaderOnly whose
	// stream brings nothing, not even a heartbeat, for this long abandons
	// it and resumes on another node (a node that hangs without closing
	// its connection is otherwise noticed only by keepalive). Set it above
	// the servers' follower_stream_heartbeat. Zero means
	// DefaultStreamSilence; negative disables the watch.
	StreamSilence time.Duration
	// OnRetry, when set, is called (synchronously, so keep it quick) for
	// every attempt the Client retries and every Subscription stream it
	// resumes, with the error that made it move on: load tools and test
	// harnesses count and classify attempts with it. Nil: nothing.
	OnRetry func(Retry)
	// Logger receives retries and failovers at debug level. Nil discards.
	Logger *slog.Logger
}

// Retry describes one attempt the Client moved on from (Config.OnRetry).
type Retry struct {
	// Op is the call: "Send", "CreateChannel", "ReadHistory", ...,
	// "Subscribe" for a resumed stream.
	Op string
	// Addr is the node the failed attempt went to.
	Addr string
	// Err is the attempt's error (an *Error: errors.Is with ErrNotLeader,
	// ErrUnavailable, ...).
	Err error
}

// retried reports a retried attempt to the logger and Config.OnRetry.
func (c *Client) retried(op, addr string, err error, attrs ...any) {
	c.log.Debug("retrying", append([]any{"op", op, "addr", addr, "error", err}, attrs...)...)
	if c.cfg.OnRetry != nil {
		c.cfg.OnRetry(Retry{Op: op, Addr: addr, Err: err})
	}
}

// Consistency says which node may answer a read or serve a subscription and
// how fresh it must be (raftogram.v1.ReadConsistency).
type Consistency int

const (
	// ConsistencyDefault (the zero value) takes the Client's
	// Config.Consistency.
	ConsistencyDefault Consistency = iota
	// LeaderOnly: the leader answers, after confirming it still leads
	// (READ_CONSISTENCY_UNSPECIFIED, the server's behaviour for callers that
	// ask for no level). Subscriptions follow the leader.
	LeaderOnly
	// Linearizable: any node answers once it has applied everything the
	// leader had committed when the read arrived; a read sees every write
	// acknowledged before it started.
	Linearizable
	// AtLeast: any node answers once it has applied MinIndex (a write's
	// Index): read-your-writes and monotonic reads.
	AtLeast
	// Local: any node answers at once from what it has; the answer says the
	// node and its applied index.
	Local
)

// String returns the level's name as the CLI spells it.
func (c Consistency) String() string {
	switch c {
	case ConsistencyDefault:
		return "default"
	case LeaderOnly:
		return "leader"
	case Linearizable:
		return "linearizable"
	case AtLeast:
		return "at-least"
	case Local:
		return "local"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

// ParseConsistency returns the level named s (as [Consistency.String]
// spells it, case-insensitively), or an error wrapping ErrInvalidArgument.
func ParseConsistency(s string) (Consistency, error) {
	for c := ConsistencyDefault; c <= Local; c++ {
		if strings.EqualFold(s, c.String()) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown consistency %q (default, leader, linearizable, at-least, local)", ErrInvalidArgument, s)
}

// Client talks to a raftogram cluster. It finds and follows the leader for
// writes, spreads reads over the nodes, and retries what is safe to retry.
// It is safe for concurrent use; Close it when done.
type Client struct {
	cfg      Config
	log      *slog.Logger
	dialOpts []grpc.DialOption
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	rr       atomic.Uint64 // round-robin over nodes

	mu     sync.Mutex
	nodes  []*node          // the rotation: configured first, then leaders learnt from NotLeader hints
	byAddr map[string]*node // every dialled node, pinned-only ones too
	leader string           // the current guess, "" when unknown
	closed bool
}

// node is one server and the connections to it.
type node struct {
	addr     string
	conns    []*grpc.ClientConn
	next     atomic.Uint64
	rotating bool // in Client.nodes; guarded by Client.mu
}

func (n *node) conn() *grpc.ClientConn {
	if len(n.conns) == 1 {
		return n.conns[0]
	}
	return n.conns[n.next.Add(1)%uint64(len(n.conns))]
}

// New returns a Client for the nodes at cfg.Addrs. It does not wait for any
// node: connections are made in the background and on use, so New succeeds
// while the cluster is down. It returns an error wrapping
// ErrInvalidArgument when Addrs is empty or holds an empty address,
// ctx's error when ctx has ended, or gRPC's error for an address it
// cannot parse.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("client: %w: no node address given", ErrInvalidArgument)
	}
	if cfg.ConnsPerNode <= 0 {
		cfg.ConnsPerNode = 1
	}
	if cfg.Consistency == ConsistencyDefault {
		cfg.Consistency = Linearizable
	}
	if cfg.Consistency < ConsistencyDefault || cfg.Consistency > Local {
		return nil, fmt.Errorf("client: %w: consistency %d", ErrInvalidArgument, cfg.Consistency)
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.StreamSilence == 0 {
		cfg.StreamSilence = DefaultStreamSilence
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sec, err := securityOptions(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: log, byAddr: map[string]*node{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.dialOpts = append(sec, []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		// The server allows pings every 10 s; probing every 15 s finds a
		// dead peer behind an idle stream within 20 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 15 * time.Second, Timeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	}...)
	c.dialOpts = append(c.dialOpts, cfg.DialOptions...)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range cfg.Addrs {
		if a == "" {
			c.closeLocked()
			return nil, fmt.Errorf("client: %w: empty node address", ErrInvalidArgument)
		}
		if _, err := c.nodeLocked(a, true); err != nil {
			c.closeLocked()
			return nil, err
		}
	}
	return c, nil
}

// nodeLocked returns the node at addr, dialling it when it is new, and
// adds it to the rotation when rotate is set and it is not there yet.
func (c *Client) nodeLocked(addr string, rotate bool) (*node, error) {
	if n, ok := c.byAddr[addr]; ok {
		if rotate && !n.rotating {
			n.rotating = true
			c.nodes = append(c.nodes, n)
		}
		return n, nil
	}
	n := &node{addr: addr}
	for range c.cfg.ConnsPerNode {
		cc, err := grpc.NewClient(addr, c.dialOpts...)
		if err != nil {
			for _, cc := range n.conns {
				cc.Close()
			}
			return nil, fmt.Errorf("client: dial %s: %w", addr, err)
		}
		cc.Connect()
		n.conns = append(n.conns, cc)
	}
	if rotate {
		n.rotating = true
		c.nodes = append(c.nodes, n)
	}
	c.byAddr[addr] = n
	return n, nil
}

// Close closes every connection and ends every open Subscription; calls in
// flight and later calls fail with ErrClosed. It returns the first error
// of closing a connection. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Client) closeLocked() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.cancel()
	var errs []error
	for _, n := range c.byAddr {
		for _, cc := range n.conns {
			errs = append(errs, cc.Close())
		}
	}
	return errors.Join(errs...)
}

func (c *Client) isClosed() bool { return c.ctx.Err() != nil }

// Leader returns the gRPC address of the node the Client believes leads,
// or "" when it does not know (yet).
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Addrs returns the addresses the Client spreads calls over: the
// configured ones, then any leader learnt from the nodes' hints (not the
// ones only named by pinned calls).
func (c *Client) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

func (c *Client) setLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != addr {
		c.log.Debug("leader changed", "from", c.leader, "to", addr)
		c.leader = addr
	}
}

// noteLeader makes addr the leader guess when there is none.
func (c *Client) noteLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == "" {
		c.leader = addr
	}
}

// forgetLeader drops the leader guess if it is addr.
func (c *Client) forgetLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == addr {
		c.leader = ""
	}
}

// route is where a call may go.
type route int

const (
	toLeader route = iota // writes, admin moves, LeaderOnly reads
	toAny                 // reads at a level any node serves: spread
)

func routeFor(c Consistency) route {
	if c == LeaderOnly {
		return toLeader
	}
	return toAny
}

// pick returns the node for the next attempt: the pinned one, else the
// hint from a NotLeader answer, else (for the leader) the leader guess,
// else the next node round-robin, avoiding the previous attempt's node.
func (c *Client) pick(r route, pin, hint, prev string) (*node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	switch {
	case pin != "":
		return c.nodeLocked(pin, false)
	case hint != "":
		return c.nodeLocked(hint, true)
	case r == toLeader && c.leader != "":
		return c.nodeLocked(c.leader, true)
	}
	n := c.nodes[c.rr.Add(1)%uint64(len(c.nodes))]
	if n.addr == prev && len(c.nodes) > 1 {
		n = c.nodes[c.rr.Add(1)%uint64(len(c.nodes))]
	}
	return n, nil
}

// call describes one logical call for [Client.do].
type call struct {
	op    string
	route route
	pin   string // the only node to use; "" for any
	// retryUnknown says the call may be repeated after an attempt whose
	// outcome is unknown (Unavailable, attempt timeout, lost connection):
	// reads, and writes the server deduplicates.
	retryUnknown bool
	// stream: fn runs a long-lived stream, which AttemptTimeout does not
	// bound.
	stream bool
}

// do runs fn against nodes until it succeeds, fails definitely, or ctx
// ends. A NotLeader answer (the call was not executed) is followed to the
// leader it names; an unknown outcome is retried when cl.retryUnknown;
// every other error is returned at once. Between attempts it backs off
// with full jitter, growing only while nodes answer with other errors. On ctx's end it returns an error matching ctx's error
// and, when there was one, the last attempt's.
func (c *Client) do(ctx context.Context, cl call, fn func(ctx context.Context, cc *grpc.ClientConn) error) error {
	var prev, hint string
	var lastErr error
	redirects := 0
	for attempt := 0; ; attempt++ {
		searching := false // the attempt was refused for want of a leader, or its node was unreachable
		if err := ctx.Err(); err != nil {
			return c.ctxError(cl.op, err, lastErr)
		}
		n, err := c.pick(cl.route, cl.pin, hint, prev)
		if err != nil {
			return fmt.Errorf("%s: %w", cl.op, err)
		}
		cc := n.conn()
		actx, cancel := c.attemptContext(ctx, cl.stream)
		err = fn(actx, cc)
		cancel()
		if err == nil {
			if cl.route == toLeader && cl.pin == "" {
				c.noteLeader(n.addr)
			}
			return nil
		}
		e := fromStatus(err)
		switch {
		case c.isClosed():
			return fmt.Errorf("%s: %w", cl.op, ErrClosed)
		case ctxEnded(ctx) != nil:
			// The attempt was cut by ctx: the previous attempt's error,
			// if any, says more.
			if lastErr == nil || !unknownOutcome(e.Code) {
				lastErr = fmt.Errorf("%s on %s: %w", cl.op, n.addr, e)
			}
			return c.ctxError(cl.op, ctxEnded(ctx), lastErr)
		}
		lastErr = fmt.Errorf("%s on %s: %w", cl.op, n.addr, e)
		hint = ""
		switch {
		case e.notLeader:
			// Not executed. FailedPrecondition names the leader;
			// Unavailable means the node knows none yet.
			c.forgetLeader(n.addr)
			if e.Leader != "" && e.Leader != n.addr {
				c.setLeader(e.Leader)
				hint = e.Leader
			}
			if cl.pin != "" {
				return lastErr
			}
			searching = true
		case unknownOutcome(e.Code):
			c.forgetLeader(n.addr)
			if !cl.retryUnknown {
				return lastErr
			}
			searching = cc.GetState() != connectivity.Ready
		default:
			return lastErr
		}
		prev = n.addr
		c.retried(cl.op, n.addr, e, "attempt", attempt+1)
		if hint != "" && redirects < maxRedirects {
			redirects++
			continue
		}
		redirects = 0
		if err := c.sleep(ctx, c.retryPause(attempt, searching)); err != nil {
			return c.ctxError(cl.op, err, lastErr)
		}
	}
}

// ctxEnded returns ctx's error, or context.DeadlineExceeded once ctx's
// deadline has passed although its timer has not fired yet: gRPC can end
// an attempt at the deadline before ctx.Err() says so, and that attempt
// must still count as cut by ctx.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// unknownOutcome reports whether an attempt that failed with code may or
// may not have taken effect, and another attempt may succeed.
func unknownOutcome(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true
	}
	return false
}

// ctxError is the error of a call whose context ended: it matches ctx's
// error and the last attempt's.
func (c *Client) ctxError(op string, ctxErr, last error) error {
	if c.isClosed() {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	if last == nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	return fmt.Errorf("%s: %w (last attempt: %w)", op, ctxErr, last)
}

func (c *Client) attemptContext(ctx context.Context, stream bool) (context.Context, context.CancelFunc) {
	if c.cfg.AttemptTimeout < 0 || stream {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.AttemptTimeout)
}

// retryPause returns the pause before retry number attempt+1. After an
// attempt that found no leader or no reachable node (searching) — a leader
// change or a node that is gone, not one that is overloaded — the pause
// stops growing at BaseBackoff·2^searchSteps, so a new leader is found
// soon after an election.
func (c *Client) retryPause(attempt int, searching bool) time.Duration {
	if searching {
		attempt = min(attempt, searchSteps)
	}
	return c.backoff(attempt)
}

// backoff returns the pause before retry number attempt+1.
func (c *Client) backoff(attempt int) time.Duration {
	return fullJitter(c.cfg.BaseBackoff, c.cfg.MaxBackoff, attempt)
}

// fullJitter returns a uniformly random duration in
// [0, min(max, base·2^attempt)].
func fullJitter(base, max time.Duration, attempt int) time.Duration {
	ceil := max
	if attempt < 32 {
		if d := base << attempt; d > 0 && d < max {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// sleep waits d, or until ctx ends or the Client closes (returning
// ctx's error or ErrClosed).
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// consistency resolves a call's level against the Client's default.
func (c *Client) consistency(cons Consistency) (Consistency, error) {
	switch {
	case cons == ConsistencyDefault:
		return c.cfg.Consistency, nil
	case cons < ConsistencyDefault || cons > Local:
		return 0, fmt.Errorf("%w: consistency %d", ErrInvalidArgument, cons)
	}
	return cons, nil
}
