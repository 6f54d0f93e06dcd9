package torture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Client timing.
const (
	attemptTimeout = 4 * time.Second  // one unary RPC
	sendGiveUp     = 30 * time.Second // a logical write stops retrying
)

// Conns holds one gRPC connection per node and the shared guess of who
// leads.
type Conns struct {
	c       *Cluster
	conns   []*grpc.ClientConn
	clients []raftogramv1.MessengerClient
	hint    atomic.Int32 // index of the node believed to lead
}

// Dial connects to every node's gRPC address (lazily; nothing blocks).
func Dial(c *Cluster) (*Conns, error) {
	cs := &Conns{c: c}
	for _, n := range c.Nodes {
		cc, err := grpc.NewClient(n.GRPCAddr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
				MinConnectTimeout: 2 * time.Second,
			}))
		if err != nil {
			cs.Close()
			return nil, err
		}
		cs.conns = append(cs.conns, cc)
		cs.clients = append(cs.clients, raftogramv1.NewMessengerClient(cc))
	}
	return cs, nil
}

// Close closes every connection.
func (cs *Conns) Close() {
	for _, cc := range cs.conns {
		cc.Close()
	}
}

// pick returns the index of the node believed to lead.
func (cs *Conns) pick() int { return int(cs.hint.Load()) }

// follow records the leader named by a NotLeader hint, or, when none is
// named, moves the guess on from the node that failed.
func (cs *Conns) follow(failed int, leaderAddr string) {
	if leaderAddr != "" {
		if n := cs.c.NodeByGRPC(leaderAddr); n != nil {
			cs.hint.Store(int32(n.Index))
			return
		}
	}
	cs.hint.CompareAndSwap(int32(failed), int32((failed+1)%len(cs.clients)))
}

// class is how one RPC ended.
type class struct {
	outcome Outcome
	code    string
	leader  string // the NotLeader hint's gRPC target
	hinted  bool   // a NotLeader detail was present
	err     string
}

// classify maps an RPC error to an outcome. NotLeader (FailedPrecondition
// or Unavailable carrying the NotLeader detail) and deterministic
// rejections mean the write was not applied; every other error, including
// Unavailable without the detail, leaves the outcome unknown.
func classify(err error) class {
	if err == nil {
		return class{outcome: OK}
	}
	st, _ := status.FromError(err)
	c := class{outcome: Unknown, code: st.Code().String(), err: st.Message()}
	for _, d := range st.Details() {
		if nl, ok := d.(*raftogramv1.NotLeader); ok {
			c.hinted = true
			c.leader = nl.GetLeaderGrpcTarget()
		}
	}
	switch st.Code() {
	case codes.FailedPrecondition, codes.Unavailable:
		if c.hinted {
			c.outcome = Failed
		}
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied, codes.Unimplemented, codes.OutOfRange:
		c.outcome = Failed
	}
	return c
}

// Client is one simulated user: it sends, reads and records every
// operation in the history.
type Client struct {
	ID   int
	cs   *Conns
	h    *History
	rng  *rand.Rand
	stop <-chan struct{} // closed when the run stops issuing new attempts
	// avoid is a node index this client never sends to (-1: none): a
	// probe of the majority while the leader is paused.
	avoid int
}

func (cl *Client) stopped() bool {
	select {
	case <-cl.stop:
		return true
	default:
		return false
	}
}

// pause sleeps d, or less if the run stops. It is a backoff, not a wait
// for a condition.
func (cl *Client) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cl.stop:
	}
}

// Send writes one message with a fresh client_message_id, retrying
// unknown outcomes with the same id and following NotLeader hints until it
// succeeds, the give-up time passes or the run stops. With redo it resends
// the id once more after success, which must come back deduplicated with
// the same sequence.
func (cl *Client) Send(channel, cmid string, payload []byte, redo bool) Op {
	op := Op{Client: cl.ID, Kind: KindSend, Channel: channel, CMID: cmid, Sum: PayloadSum(payload), Invoke: cl.h.Now()}
	author := fmt.Sprintf("client-%d", cl.ID)
	giveUp := time.Now().Add(sendGiveUp)
	anyUnknown := false
	redirects := 0
	for {
		a, cls := cl.sendOnce(channel, author, cmid, payload)
		op.Attempts = append(op.Attempts, a)
		if a.Outcome == OK {
			op.Outcome, op.Seq, op.Dedup = OK, a.Seq, a.Dedup
			break
		}
		if a.Outcome == Unknown {
			anyUnknown = true
		}
		if cls.code == codes.NotFound.String() || cls.code == codes.InvalidArgument.String() {
			op.Outcome, op.Err = Failed, a.Code+": "+a.Err
			break
		}
		if cl.stopped() || time.Now().After(giveUp) {
			op.Outcome, op.Err = Failed, "gave up: "+a.Code+": "+a.Err
			if anyUnknown {
				op.Outcome = Unknown
			}
			break
		}
		if cls.leader != "" && redirects < 3 {
			redirects++
			continue
		}
		redirects = 0
		cl.pause(time.Duration(20+cl.rng.IntN(130)) * time.Millisecond)
	}
	op.Return = cl.h.Now()
	if op.Outcome == OK && redo {
		for range 10 {
			a, _ := cl.sendOnce(channel, author, cmid, payload)
			a.Redo = true
			op.Attempts = append(op.Attempts, a)
			if a.Outcome == OK || cl.stopped() {
				break
			}
			cl.pause(time.Duration(20+cl.rng.IntN(80)) * time.Millisecond)
		}
	}
	cl.h.Add(op)
	return op
}

func (cl *Client) sendOnce(channel, author, cmid string, payload []byte) (Attempt, class) {
	i := cl.cs.pick()
	if cl.rng.IntN(20) == 0 {
		i = cl.rng.IntN(len(cl.cs.clients))
	}
	if i == cl.avoid {
		i = (i + 1 + cl.rng.IntN(len(cl.cs.clients)-1)) % len(cl.cs.clients)
	}
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	a := Attempt{Node: cl.cs.c.Nodes[i].ID, Invoke: cl.h.Now()}
	resp, err := cl.cs.clients[i].SendMessage(ctx, &raftogramv1.SendMessageRequest{
		ChannelId: channel, AuthorId: author, Payload: payload, ClientMessageId: cmid,
	})
	a.Return = cl.h.Now()
	cls := classify(err)
	a.Outcome, a.Code, a.Err = cls.outcome, cls.code, cls.err
	if err == nil {
		a.Seq, a.Dedup = resp.GetSequence(), resp.GetDeduplicated()
	} else if cls.outcome != OK {
		cl.cs.follow(i, cls.leader)
	}
	return a, cls
}

// Read is one ReadHistory RPC on the node believed to lead, or, one time
// in five, on a random node: a deposed leader that has not noticed yet must
// refuse it rather than serve a stale prefix.
func (cl *Client) Read(channel string, after uint64, limit uint32) Op {
	i := cl.cs.pick()
	if cl.rng.IntN(5) == 0 {
		i = cl.rng.IntN(len(cl.cs.clients))
	}
	return cl.readOn(i, channel, after, limit)
}

// readOn is one ReadHistory RPC on node i.
func (cl *Client) readOn(i int, channel string, after uint64, limit uint32) Op {
	op := Op{Client: cl.ID, Kind: KindRead, Channel: channel, After: after, Node: cl.cs.c.Nodes[i].ID}
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	op.Invoke = cl.h.Now()
	resp, err := cl.cs.clients[i].ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: channel, AfterSequence: after, Limit: limit})
	op.Return = cl.h.Now()
	cls := classify(err)
	op.Outcome = cls.outcome
	if err != nil {
		op.Err = cls.code + ": " + cls.err
		cl.cs.follow(i, cls.leader)
	} else {
		op.Msgs = refs(resp.GetMessages())
		op.HasMore = resp.GetHasMore()
	}
	cl.h.Add(op)
	return op
}

func refs(ms []*raftogramv1.Message) []MsgRef {
	out := make([]MsgRef, len(ms))
	for i, m := range ms {
		out[i] = MsgRef{Seq: m.GetSequence(), CMID: m.GetClientMessageId(), Sum: PayloadSum(m.GetPayload())}
	}
	return out
}

// Subscriber follows one channel with Subscribe streams, resuming after the
// last sequence seen whenever a stream ends.
type Subscriber struct {
	ID      int
	Channel string
	cs      *Conns
	h       *History
	rng     *rand.Rand
	cursor  atomic.Uint64
	streams atomic.Int64
}

// Cursor is the last sequence the subscriber has seen.
func (s *Subscriber) Cursor() uint64 { return s.cursor.Load() }

// Run subscribes until ctx ends. Every few seconds it also drops its
// stream on purpose, to exercise resumption when nothing fails.
func (s *Subscriber) Run(ctx context.Context) {
	for ctx.Err() == nil {
		s.stream(ctx)
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

func (s *Subscriber) stream(ctx context.Context) {
	i := s.cs.pick()
	after := s.cursor.Load()
	seg := Segment{Subscriber: s.ID, Channel: s.Channel, Node: s.cs.c.Nodes[i].ID, After: after, Start: s.h.Now()}
	s.streams.Add(1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A stream lives a few seconds at most, then resumes from the cursor.
	life := time.AfterFunc(time.Duration(2000+s.rng.IntN(6000))*time.Millisecond, cancel)
	defer life.Stop()
	st, err := s.cs.clients[i].Subscribe(sctx, &raftogramv1.SubscribeRequest{ChannelId: s.Channel, AfterSequence: after})
	for err == nil {
		var chunk *raftogramv1.SubscribeChunk
		chunk, err = st.Recv()
		if err != nil {
			break
		}
		ms := refs(chunk.GetMessages())
		seg.Msgs = append(seg.Msgs, ms...)
		if len(ms) > 0 {
			s.cursor.Store(ms[len(ms)-1].Seq)
		}
	}
	seg.End = s.h.Now()
	if !errors.Is(err, io.EOF) {
		cls := classify(err)
		seg.Err = cls.code + ": " + cls.err
		if cls.code != codes.Canceled.String() {
			s.cs.follow(i, cls.leader)
		}
	}
	s.h.AddSegment(seg)
}
