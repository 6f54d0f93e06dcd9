package torture

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftogram/raftogram/client"
	"google.golang.org/grpc/codes"
)

// Client timing.
const (
	attemptTimeout = 4 * time.Second  // one RPC attempt (client.Config.AttemptTimeout)
	sendGiveUp     = 30 * time.Second // a logical write stops retrying
	// Pauses of the client between attempts: full jitter, from backoffBase
	// doubling per attempt up to backoffMax.
	backoffBase = 20 * time.Millisecond
	backoffMax  = 150 * time.Millisecond
)

// Read consistency levels as the history records them (Op.Level,
// Segment.Level); "" in older histories means leader.
const (
	LevelLeader       = "leader"
	LevelLinearizable = "linearizable"
	LevelAtLeast      = "at-least"
	LevelLocal        = "local"
)

// levels maps the history's level names to the client's.
var levels = map[string]client.Consistency{
	LevelLeader:       client.LeaderOnly,
	LevelLinearizable: client.Linearizable,
	LevelAtLeast:      client.AtLeast,
	LevelLocal:        client.Local,
}

// linearizableLevel reports whether reads at level are linearizable (and
// so checked by porcupine).
func linearizableLevel(level string) bool {
	return level == "" || level == LevelLeader || level == LevelLinearizable
}

// dial returns a client.Client for the cluster's nodes, without avoid (when
// not nil), that reports its retried attempts to log (when not nil). On a
// secure cluster it speaks TLS and presents the writer token.
func dial(c *Cluster, avoid *Node, timeout time.Duration, log *attemptLog) (*client.Client, error) {
	return dialAs(c, avoid, timeout, log, c.writerToken())
}

// dialAs is dial presenting token on a secure cluster.
func dialAs(c *Cluster, avoid *Node, timeout time.Duration, log *attemptLog, token string) (*client.Client, error) {
	var addrs []string
	for _, n := range c.Nodes {
		if n != avoid {
			addrs = append(addrs, n.GRPCAddr)
		}
	}
	cfg := client.Config{Addrs: addrs, AttemptTimeout: timeout, BaseBackoff: backoffBase, MaxBackoff: backoffMax}
	c.sec.credentials(&cfg, token)
	if log != nil {
		cfg.OnRetry = log.add
	}
	cl, err := client.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("torture: %w", err)
	}
	return cl, nil
}

// attemptLog collects the attempts a client.Client retried (its OnRetry
// hook: the node and the attempt's error). A torture Client runs one
// operation at a time on its own client.Client, so the attempts recorded
// between two take calls belong to the operation in between.
type attemptLog struct {
	mu       sync.Mutex
	attempts []loggedAttempt
}

type loggedAttempt struct {
	at   time.Time
	addr string
	err  error
}

// add records one retried attempt; it is the client's OnRetry hook.
func (l *attemptLog) add(r client.Retry) {
	if r.Op == "Subscribe" {
		return // resumed streams are not attempts of an operation
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, loggedAttempt{at: time.Now(), addr: r.Addr, err: r.Err})
}

// take returns the attempts logged since the last call and forgets them.
func (l *attemptLog) take() []loggedAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.attempts
	l.attempts = nil
	return a
}

// definite lists the errors that say a call did not take effect.
var definite = []error{
	client.ErrNotLeader, client.ErrInvalidArgument, client.ErrNotFound, client.ErrAlreadyExists,
	client.ErrPermissionDenied, client.ErrUnauthenticated, client.ErrOutOfRange,
	client.ErrFailedPrecondition, client.ErrUnimplemented, client.ErrResourceExhausted,
}

// outcomeOf is how a call that returned err ended: OK, Failed when the
// error says it did not take effect (one of definite, or any answer with a
// NotLeader detail: an Unavailable during an election too), Unknown for
// everything else (the client gave up on Unavailable, a lost connection).
// A call its context ended is Unknown even when the error also carries an
// earlier attempt's definite answer: an attempt may have been in flight.
func outcomeOf(err error) Outcome {
	if err == nil {
		return OK
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Unknown
	}
	var e *client.Error
	if errors.As(err, &e) && e.NotLeaderDetail() {
		return Failed
	}
	for _, d := range definite {
		if errors.Is(err, d) {
			return Failed
		}
	}
	return Unknown
}

// codeOf is the gRPC code name of a client error ("NotFound",
// "DeadlineExceeded"...).
func codeOf(err error) string {
	var e *client.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded.String()
	case errors.Is(err, context.Canceled):
		return codes.Canceled.String()
	case errors.As(err, &e):
		return e.Code.String()
	}
	return codes.Unknown.String()
}

// Client is one simulated user with its own client.Client: it sends, reads
// and records every operation in the history. Leader following and retries
// are the client.Client's; one logical operation is one call of it.
type Client struct {
	ID  int
	c   *Cluster
	cl  *client.Client
	log *attemptLog
	h   *History
	rng *rand.Rand
	// stop ends when the run stops issuing new operations; an operation in
	// flight then gets grace to finish before its context is cancelled.
	stop  context.Context
	grace time.Duration
	// mine is this user's last acknowledged write per channel: reads at
	// AtLeast ask for its index and must show it.
	mine map[string]SendResultRef
}

// SendResultRef is an acknowledged write: its sequence and Raft index.
type SendResultRef struct {
	Seq, Index uint64
}

// newClient returns user id's Client, talking to every node but avoid (when
// not nil) with attempts bounded by timeout.
func newClient(c *Cluster, h *History, id int, rng *rand.Rand, stop context.Context, avoid *Node, timeout time.Duration) (*Client, error) {
	log := &attemptLog{}
	cl, err := dial(c, avoid, timeout, log)
	if err != nil {
		return nil, err
	}
	return &Client{ID: id, c: c, cl: cl, log: log, h: h, rng: rng, stop: stop, grace: attemptTimeout, mine: map[string]SendResultRef{}}, nil
}

// Close closes the user's connections.
func (cl *Client) Close() { cl.cl.Close() }

func (cl *Client) stopped() bool { return cl.stop.Err() != nil }

// pause sleeps d, or less if the run stops. It is a think time or a
// backoff, not a wait for a condition.
func (cl *Client) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cl.stop.Done():
	}
}

// opContext bounds one operation: d at most, and cl.grace after the run
// stops.
func (cl *Client) opContext(d time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	unregister := context.AfterFunc(cl.stop, func() {
		if cl.grace <= 0 {
			cancel()
			return
		}
		t := time.AfterFunc(cl.grace, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { unregister(); cancel() }
}

// nodeID is the id of the node at gRPC address addr, or addr.
func (cl *Client) nodeID(addr string) string {
	if n := cl.c.NodeByGRPC(addr); n != nil {
		return n.ID
	}
	return addr
}

// attempts turns the attempts logged since the last call into history
// attempts, each returning when it was logged and invoked when the one
// before returned (or at invoke).
func (cl *Client) attempts(invoke int64, redo bool) []Attempt {
	var out []Attempt
	for _, la := range cl.log.take() {
		ret := int64(la.at.Sub(cl.h.start))
		a := Attempt{Node: cl.nodeID(la.addr), Invoke: invoke, Return: ret, Outcome: outcomeOf(la.err),
			Code: codeOf(la.err), Redo: redo}
		if la.err != nil {
			a.Err = la.err.Error()
		}
		out = append(out, a)
		invoke = ret
	}
	return out
}

// Send writes one message with the given client_message_id through the
// client, which retries unknown outcomes with the same id and follows the
// leader until it succeeds, the give-up time passes or the run stops. The
// op is OK on success; Failed on a definite refusal when no attempt before
// it could have applied; Unknown otherwise. With redo it sends the id once
// more after success, which must come back deduplicated with the same
// sequence.
func (cl *Client) Send(channel, cmid string, payload []byte, redo bool) Op {
	op := Op{Client: cl.ID, Kind: KindSend, Channel: channel, CMID: cmid, Sum: PayloadSum(payload), Invoke: cl.h.Now()}
	author := cl.c.author(cl.ID)
	res, err := cl.send(channel, author, cmid, payload)
	op.Return = cl.h.Now()
	op.Attempts = cl.attempts(op.Invoke, false)
	last := Attempt{Invoke: op.Invoke, Return: op.Return, Outcome: outcomeOf(err), Code: codeOf(err)}
	if n := len(op.Attempts); n > 0 {
		last.Invoke = op.Attempts[n-1].Return
	}
	anyUnknown := false
	for _, a := range op.Attempts {
		anyUnknown = anyUnknown || a.Outcome == Unknown
	}
	switch {
	case err == nil:
		last.Node = cl.nodeID(cl.cl.Leader()) // the node that answered: the client's leader now
		last.Seq, last.Dedup = res.Sequence, res.Deduplicated
		op.Outcome, op.Seq, op.Index, op.Dedup = OK, res.Sequence, res.Index, res.Deduplicated
		cl.mine[channel] = SendResultRef{Seq: res.Sequence, Index: res.Index}
	case last.Outcome == Failed && !anyUnknown:
		last.Err = err.Error()
		op.Outcome, op.Err = Failed, last.Code+": "+err.Error()
	default:
		last.Outcome, last.Err = Unknown, err.Error()
		op.Outcome, op.Err = Unknown, last.Code+": "+err.Error()
	}
	op.Attempts = append(op.Attempts, last)
	if op.Outcome == OK && redo && !cl.stopped() {
		invoke := cl.h.Now()
		res, err := cl.send(channel, author, cmid, payload)
		ret := cl.h.Now()
		op.Attempts = append(op.Attempts, cl.attempts(invoke, true)...)
		a := Attempt{Node: cl.nodeID(cl.cl.Leader()), Invoke: invoke, Return: ret, Outcome: outcomeOf(err), Code: codeOf(err), Redo: true}
		if err == nil {
			a.Seq, a.Dedup = res.Sequence, res.Deduplicated
		} else {
			a.Err = err.Error()
		}
		op.Attempts = append(op.Attempts, a)
	}
	cl.h.Add(op)
	return op
}

// Publish writes n messages to channel through one client.Publisher stream
// without waiting for each, and records each as a send op: invoked when
// published, returned when the harness saw its outcome (waiting in publish
// order, so no earlier than its real return). The Publisher resends what a
// broken stream left unanswered with the same ids, inside the op. Every
// stream attempt it moved on from counts as an attempt of unknown outcome
// of each message pending then (a stream's end says nothing about its
// unanswered messages, NotLeader included), so a resend that comes back
// deduplicated has the unknown attempt before it.
func (cl *Client) Publish(channel string, cmids []string) []Op {
	ctx, cancel := cl.opContext(sendGiveUp)
	defer cancel()
	p := cl.cl.NewPublisher(client.PublisherOptions{MaxPending: len(cmids)})
	defer p.Close()
	author := cl.c.author(cl.ID)
	ops := make([]Op, len(cmids))
	futures := make([]*client.PublishFuture, len(cmids))
	errs := make([]error, len(cmids))
	for i, cmid := range cmids {
		pl := payload(cl.rng, cmid)
		ops[i] = Op{Client: cl.ID, Kind: KindSend, Channel: channel, CMID: cmid, Sum: PayloadSum(pl), Invoke: cl.h.Now(), Published: true}
		futures[i], errs[i] = p.PublishAsync(ctx, client.SendRequest{ChannelID: channel, AuthorID: author, Payload: pl, ClientMessageID: cmid})
	}
	results := make([]*client.SendResult, len(cmids))
	for i, f := range futures {
		if f != nil {
			results[i], errs[i] = f.Wait(ctx)
		}
		ops[i].Return = cl.h.Now()
	}
	logged := cl.log.take()
	for i := range ops {
		op := &ops[i]
		err := errs[i]
		invoke := op.Invoke
		anyUnknown := false
		for _, la := range logged {
			at := int64(la.at.Sub(cl.h.start))
			if at < op.Invoke || at > op.Return {
				continue
			}
			op.Attempts = append(op.Attempts, Attempt{Node: cl.nodeID(la.addr), Invoke: invoke, Return: at, Outcome: Unknown,
				Code: codeOf(la.err), Err: la.err.Error()})
			invoke, anyUnknown = at, true
		}
		last := Attempt{Invoke: invoke, Return: op.Return, Outcome: outcomeOf(err), Code: codeOf(err)}
		switch {
		case err == nil:
			last.Node = cl.nodeID(cl.cl.Leader())
			last.Seq, last.Dedup = results[i].Sequence, results[i].Deduplicated
			op.Outcome, op.Seq, op.Index, op.Dedup = OK, results[i].Sequence, results[i].Index, results[i].Deduplicated
			cl.mine[channel] = SendResultRef{Seq: op.Seq, Index: op.Index}
		case last.Outcome == Failed && !anyUnknown:
			last.Err = err.Error()
			op.Outcome, op.Err = Failed, last.Code+": "+err.Error()
		default:
			last.Outcome, last.Err = Unknown, err.Error()
			op.Outcome, op.Err = Unknown, last.Code+": "+err.Error()
		}
		op.Attempts = append(op.Attempts, last)
		cl.h.Add(*op)
	}
	return ops
}

func (cl *Client) send(channel, author, cmid string, payload []byte) (*client.SendResult, error) {
	ctx, cancel := cl.opContext(sendGiveUp)
	defer cancel()
	return cl.cl.Send(ctx, client.SendRequest{ChannelID: channel, AuthorID: author, Payload: payload, ClientMessageID: cmid})
}

// Redact is one RedactMessage of channel#seq, as a moderator's (retried by
// the client while its outcome is unknown: a redaction is idempotent).
func (cl *Client) Redact(channel string, seq uint64) Op {
	return cl.moderate(Op{Client: cl.ID, Kind: KindRedact, Channel: channel, Seq: seq}, func(ctx context.Context) error {
		_, err := cl.cl.RedactMessage(ctx, channel, seq, "torture")
		return err
	})
}

// DeleteAndCreate deletes channel and creates it again (the client retries
// both while their outcome is unknown, until the give-up), recording the
// deletion as one op; while the channel is gone, sends to it fail NotFound.
func (cl *Client) DeleteAndCreate(channel string) Op {
	return cl.moderate(Op{Client: cl.ID, Kind: KindDelete, Channel: channel}, func(ctx context.Context) error {
		if _, err := cl.cl.DeleteChannel(ctx, channel); err != nil {
			return err
		}
		_, err := cl.cl.CreateChannel(ctx, channel, "torture "+channel)
		return err
	})
}

// moderate runs call within the send give-up and records op with its
// times and outcome.
func (cl *Client) moderate(op Op, call func(context.Context) error) Op {
	ctx, cancel := cl.opContext(sendGiveUp)
	defer cancel()
	op.Invoke = cl.h.Now()
	err := call(ctx)
	op.Return = cl.h.Now()
	cl.log.take()
	op.Outcome = outcomeOf(err)
	if err != nil {
		op.Err = codeOf(err) + ": " + err.Error()
	}
	cl.h.Add(op)
	return op
}

// Read is one ReadHistory call at a level the user picks: leader (25 %),
// linearizable on any node (35 %), at-least the index of its own last
// write to the channel, read from just before that write so that the
// answer must show it (25 %; linearizable before its first write), or
// local on any node (15 %).
func (cl *Client) Read(channel string, after uint64, limit int) Op {
	level := LevelLocal
	switch p := cl.rng.IntN(100); {
	case p < 25:
		level = LevelLeader
	case p < 60:
		level = LevelLinearizable
	case p < 85:
		level = LevelAtLeast
	}
	var mustSee uint64
	opts := client.ReadOptions{After: after, Limit: limit}
	if level == LevelAtLeast {
		w, ok := cl.mine[channel]
		if !ok {
			level = LevelLinearizable
		} else {
			opts.MinIndex, mustSee = w.Index, w.Seq
			opts.After = w.Seq - 1 - min(w.Seq-1, uint64(cl.rng.IntN(8)))
		}
	}
	opts.Consistency = levels[level]
	return cl.read(channel, level, opts, mustSee, "")
}

// ReadOn is one ReadHistory call on node only, at a level picked for
// reads aimed at a node that may be deposed, paused or behind: leader or
// linearizable (40 % each: either must refuse or wait rather than serve a
// stale prefix), local or at-least the highest index the workload knows
// (10 % each).
func (cl *Client) ReadOn(node *Node, channel string, after uint64, limit int, knownIndex uint64) Op {
	level := LevelLeader
	switch p := cl.rng.IntN(100); {
	case p < 40:
	case p < 80:
		level = LevelLinearizable
	case p < 90:
		level = LevelLocal
	default:
		level = LevelAtLeast
	}
	opts := client.ReadOptions{After: after, Limit: limit, Consistency: levels[level], Node: node.GRPCAddr}
	if level == LevelAtLeast {
		opts.MinIndex = knownIndex
	}
	return cl.read(channel, level, opts, 0, node.ID)
}

// read runs one ReadHistory call (retried by the client while no node
// answers, within attemptTimeout in all) and records it.
func (cl *Client) read(channel, level string, opts client.ReadOptions, mustSee uint64, node string) Op {
	op := Op{Client: cl.ID, Kind: KindRead, Channel: channel, After: opts.After, Level: level, MinIndex: opts.MinIndex, MustSee: mustSee, Node: node}
	ctx, cancel := cl.opContext(attemptTimeout)
	defer cancel()
	op.Invoke = cl.h.Now()
	res, err := cl.cl.ReadHistory(ctx, channel, opts)
	op.Return = cl.h.Now()
	cl.log.take()
	op.Outcome = outcomeOf(err)
	if err != nil {
		op.Err = codeOf(err) + ": " + err.Error()
	} else {
		op.Msgs = refs(res.Messages)
		op.HasMore = res.HasMore
		if res.NodeID != "" {
			op.Node = res.NodeID
		}
		op.AppliedIndex = res.AppliedIndex
	}
	cl.h.Add(op)
	return op
}

func refs(ms []client.Message) []MsgRef {
	out := make([]MsgRef, len(ms))
	for i, m := range ms {
		out[i] = MsgRef{Seq: m.Sequence, CMID: m.ClientMessageID, Author: m.AuthorID, Sum: PayloadSum(m.Payload), Redacted: m.Redacted}
	}
	return out
}

// Subscriber follows one channel through client.Subscribe, at a level
// picked anew for each subscription, resuming after the last sequence seen
// whenever one ends: on purpose every 2-8 s, or when it fails for good.
// Within a subscription the client resumes failed streams itself.
type Subscriber struct {
	ID      int
	Channel string
	c       *Cluster
	cl      *client.Client
	h       *History
	rng     *rand.Rand
	known   func() uint64 // the highest Raft index of an acknowledged write
	cursor  atomic.Uint64
	streams atomic.Int64
}

// Cursor is the last sequence the subscriber has seen.
func (s *Subscriber) Cursor() uint64 { return s.cursor.Load() }

// Run subscribes until ctx ends.
func (s *Subscriber) Run(ctx context.Context) {
	for ctx.Err() == nil {
		s.subscription(ctx)
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(time.Duration(20+s.rng.IntN(100)) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// subscription records one client.Subscription as a segment: leader
// (30 %), linearizable (30 %), at-least the highest index the workload
// knows (20 %) or local (20 %).
func (s *Subscriber) subscription(ctx context.Context) {
	level := LevelLocal
	switch p := s.rng.IntN(100); {
	case p < 30:
		level = LevelLeader
	case p < 60:
		level = LevelLinearizable
	case p < 80:
		level = LevelAtLeast
	}
	opts := client.SubscribeOptions{After: s.cursor.Load(), Consistency: levels[level]}
	if level == LevelAtLeast {
		opts.MinIndex = s.known()
	}
	seg := Segment{Subscriber: s.ID, Channel: s.Channel, After: opts.After, Level: level, Start: s.h.Now()}
	s.streams.Add(1)
	sub, err := s.cl.Subscribe(ctx, s.Channel, opts)
	if err == nil {
		// A subscription lives a few seconds at most, then resumes from
		// the cursor.
		life := time.AfterFunc(time.Duration(2000+s.rng.IntN(6000))*time.Millisecond, func() { sub.Close() })
		var nodes []string
		err = s.receive(sub, &seg, &nodes)
		seg.Node = strings.Join(nodes, ",")
		life.Stop()
		sub.Close()
	}
	seg.End = s.h.Now()
	if err != nil && !errors.Is(err, client.ErrClosed) && ctx.Err() == nil {
		seg.Code, seg.Err = codeOf(err), err.Error()
		var ce *client.Error
		if errors.As(err, &ce) && ce.TrimmedFirstSequence > s.cursor.Load()+1 {
			seg.SkipTo = ce.TrimmedFirstSequence - 1
			s.cursor.Store(seg.SkipTo)
		}
	}
	s.h.AddSegment(seg)
}

// receive records every batch of sub in seg, and the nodes that served
// them in nodes, until sub ends, and returns why it ended.
func (s *Subscriber) receive(sub *client.Subscription, seg *Segment, nodes *[]string) error {
	for {
		b, err := sub.Recv()
		if err != nil {
			return err
		}
		if n := *nodes; b.NodeID != "" && (len(n) == 0 || n[len(n)-1] != b.NodeID) {
			*nodes = append(n, b.NodeID)
		}
		ms := refs(b.Messages)
		seg.Msgs = append(seg.Msgs, ms...)
		if len(ms) > 0 {
			s.cursor.Store(ms[len(ms)-1].Seq)
		}
	}
}
