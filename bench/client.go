package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// ClientOptions tunes a Client.
type ClientOptions struct {
	// Conns is how many gRPC connections to open to the leader; slot i uses
	// connection i % Conns. Default 1.
	Conns int
	// AttemptTimeout bounds one attempt of a unary call. Default 10s.
	AttemptTimeout time.Duration
	// BackoffMin and BackoffMax bound the pause before retrying after a
	// failure that gives no leader hint. Defaults 10ms and 500ms.
	BackoffMin, BackoffMax time.Duration
	// Errors counts failed attempts by class; nil keeps a private count.
	Errors *ErrorCounts
	// DialOptions are added to the defaults (plaintext); tests use them to
	// dial over bufconn.
	DialOptions []grpc.DialOption
}

// Client calls the leader of a raftogram cluster. It starts with the first
// address, follows NotLeader hints (leader_grpc_target), moves on to the next
// address when a node cannot be reached, and retries calls that may be
// retried with the very same request, so a SendMessage keeps its
// client_message_id across a failover. It is safe for concurrent use.
type Client struct {
	addrs []string
	opts  ClientOptions
	errs  *ErrorCounts

	mu        sync.Mutex
	endpoints map[string]*endpoint
	closed    bool

	cur      atomic.Pointer[endpoint]
	moves    atomic.Int64
	answered atomic.Pointer[endpoint] // the last endpoint that answered a call
	changes  atomic.Int64
}

// endpoint is the connections to one node.
type endpoint struct {
	target string
	ccs    []*grpc.ClientConn
	stubs  []raftogramv1.MessengerClient
}

func (e *endpoint) stub(slot int) raftogramv1.MessengerClient { return e.stubs[e.index(slot)] }

func (e *endpoint) conn(slot int) *grpc.ClientConn { return e.ccs[e.index(slot)] }

// index maps a client slot (negative for set-up calls) to a connection.
func (e *endpoint) index(slot int) int {
	if slot < 0 {
		slot = -slot
	}
	return slot % len(e.ccs)
}

// subscribeDesc describes Messenger.Subscribe for a stream opened by hand
// (Client.Subscribe decodes its chunks with chunkCodec).
var subscribeDesc = grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true}

// NewClient returns a client for the cluster reachable at addrs
// (host:port, or any gRPC target with a scheme). It does not connect until
// the first call.
func NewClient(addrs []string, opts ClientOptions) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no addresses")
	}
	if opts.Conns < 1 {
		opts.Conns = 1
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 10 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(500*time.Millisecond, opts.BackoffMin)
	}
	c := &Client{addrs: slices.Clone(addrs), opts: opts, errs: opts.Errors, endpoints: make(map[string]*endpoint)}
	if c.errs == nil {
		c.errs = &ErrorCounts{}
	}
	ep, err := c.endpoint(addrs[0])
	if err != nil {
		return nil, err
	}
	c.cur.Store(ep)
	return c, nil
}

// endpoint returns the connections to target, opening them the first time.
func (c *Client) endpoint(target string) (*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("client closed")
	}
	if ep, ok := c.endpoints[target]; ok {
		return ep, nil
	}
	dialTarget := target
	if !strings.Contains(target, "://") {
		dialTarget = "passthrough:///" + target
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, c.opts.DialOptions...)
	ep := &endpoint{target: target}
	for range c.opts.Conns {
		cc, err := grpc.NewClient(dialTarget, opts...)
		if err != nil {
			for _, cc := range ep.ccs {
				cc.Close()
			}
			return nil, fmt.Errorf("dial %s: %w", target, err)
		}
		ep.ccs = append(ep.ccs, cc)
		ep.stubs = append(ep.stubs, raftogramv1.NewMessengerClient(cc))
	}
	c.endpoints[target] = ep
	return ep, nil
}

// Close closes every connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, ep := range c.endpoints {
		for _, cc := range ep.ccs {
			cc.Close()
		}
	}
	return nil
}

// Leader is the address calls currently go to.
func (c *Client) Leader() string { return c.cur.Load().target }

// LeaderChanges is how many times the node answering calls changed (the
// first answer does not count).
func (c *Client) LeaderChanges() int64 { return c.changes.Load() }

// Moves is how many times calls moved to another address: following a
// hint, or moving on from a node that could not be reached. During an
// election there are usually many moves per leader change.
func (c *Client) Moves() int64 { return c.moves.Load() }

// answeredBy records that ep answered a call. Answers from a node calls
// have already moved away from (a call or stream still in flight there)
// are ignored, so they do not count as changes back and forth.
func (c *Client) answeredBy(ep *endpoint) {
	for c.cur.Load() == ep {
		prev := c.answered.Load()
		if prev == ep {
			return
		}
		if c.answered.CompareAndSwap(prev, ep) {
			if prev != nil {
				c.changes.Add(1)
			}
			return
		}
	}
}

// Errors is the client's failure count.
func (c *Client) Errors() *ErrorCounts { return c.errs }

// moveTo makes target current unless another caller already moved on from
// `from`. It returns the endpoint now current.
func (c *Client) moveTo(from *endpoint, target string) *endpoint {
	ep, err := c.endpoint(target)
	if err != nil {
		return c.cur.Load()
	}
	if ep != from && c.cur.CompareAndSwap(from, ep) {
		c.moves.Add(1)
	}
	return c.cur.Load()
}

// moveOn makes the address after from's current (round robin over addrs).
func (c *Client) moveOn(from *endpoint) *endpoint {
	i := slices.Index(c.addrs, from.target) // -1 for a hinted address: go to addrs[0]
	return c.moveTo(from, c.addrs[(i+1)%len(c.addrs)])
}

// handleFailure handles a failed attempt on ep: it counts the failure under
// prefix+class, moves to the hinted leader or the next address as the error
// calls for, and pauses unless it just followed a fresh hint. It reports
// whether the call may be retried.
func (c *Client) handleFailure(ctx context.Context, ep *endpoint, err error, attempt int, prefix string) bool {
	v := classify(err)
	c.errs.Add(prefix+v.class, err)
	if !v.retry {
		return false
	}
	switch {
	case v.hint != "":
		// A fresh hint is followed at once; one pointing back at the node
		// that refused (stale), or hints going round in circles, wait.
		if next := c.moveTo(ep, v.hint); next != ep && attempt < 4 {
			return ctx.Err() == nil
		}
	case v.class == ClassUnavailable || v.class == ClassTimeout || v.class == ClassStreamEnded:
		c.moveOn(ep)
	}
	return sleepCtx(ctx, c.backoff(attempt)) == nil
}

// backoff is BackoffMin doubled per attempt, capped at BackoffMax, with
// ±50 % jitter so clients do not retry in lockstep.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.BackoffMin << min(attempt, 20)
	if d > c.opts.BackoffMax || d <= 0 {
		d = c.opts.BackoffMax
	}
	return d/2 + rand.N(d)
}

// Call runs fn against the current leader until it succeeds, fails with an
// error that must not be retried, or ctx ends; each attempt gets its own
// AttemptTimeout. fn must be safe to repeat (SendMessage is, with a
// client_message_id). It returns how many attempts were retried and the
// last error.
func (c *Client) Call(ctx context.Context, slot int, fn func(context.Context, raftogramv1.MessengerClient) error) (retries int, err error) {
	for attempt := 0; ; attempt++ {
		ep := c.cur.Load()
		actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
		err = fn(actx, ep.stub(slot))
		cancel()
		if err == nil {
			c.answeredBy(ep)
			return attempt, nil
		}
		if ctx.Err() != nil {
			return attempt, err
		}
		if !c.handleFailure(ctx, ep, err, attempt, "") {
			return attempt, err
		}
	}
}

// FindLeader locates the leader by asking the current address and following
// hints, and returns its address.
func (c *Client) FindLeader(ctx context.Context) (string, error) {
	_, err := c.Call(ctx, 0, func(ctx context.Context, m raftogramv1.MessengerClient) error {
		_, err := m.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "bench-leader-probe", Limit: 1})
		if s, ok := status.FromError(err); ok && (s.Code() == codes.NotFound || s.Code() == codes.InvalidArgument) {
			return nil // only the leader gets that far
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("find leader among %s: %w", strings.Join(c.addrs, ","), err)
	}
	return c.Leader(), nil
}

// CreateChannel creates channelID (name = id); an existing one is fine.
func (c *Client) CreateChannel(ctx context.Context, channelID string) error {
	_, err := c.Call(ctx, 0, func(ctx context.Context, m raftogramv1.MessengerClient) error {
		_, err := m.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: channelID, Name: channelID})
		return err
	})
	return err
}

// Send sends req, retrying it unchanged (same client_message_id) after
// failures that leave the outcome unknown or name another leader.
func (c *Client) Send(ctx context.Context, slot int, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, int, error) {
	var resp *raftogramv1.SendMessageResponse
	retries, err := c.Call(ctx, slot, func(ctx context.Context, m raftogramv1.MessengerClient) error {
		r, err := m.SendMessage(ctx, req)
		resp = r
		return err
	})
	return resp, retries, err
}

// Read calls ReadHistory with retries.
func (c *Client) Read(ctx context.Context, slot int, req *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, int, error) {
	var resp *raftogramv1.ReadHistoryResponse
	retries, err := c.Call(ctx, slot, func(ctx context.Context, m raftogramv1.MessengerClient) error {
		r, err := m.ReadHistory(ctx, req)
		resp = r
		return err
	})
	return resp, retries, err
}

// Subscribe follows channelID from after: it calls deliver for every chunk,
// in order, and when the stream breaks it resubscribes after the last
// sequence deliver was given, on the leader the error points to. It returns
// when ctx ends (nil) or on an error that cannot be retried.
// resubscribed is called before each new stream after the first. The chunk
// passed to deliver is reused for the next one: copy what must outlive the
// call.
func (c *Client) Subscribe(ctx context.Context, slot int, channelID string, after uint64,
	deliver func(chunk *Chunk, at time.Time) uint64, resubscribed func()) error {
	failures := 0
	codec := grpc.ForceCodecV2(newChunkCodec())
	var chunk Chunk
	for {
		ep := c.cur.Load()
		sctx, cancel := context.WithCancel(ctx)
		stream, err := ep.conn(slot).NewStream(sctx, &subscribeDesc, raftogramv1.Messenger_Subscribe_FullMethodName, codec)
		if err == nil {
			err = stream.SendMsg(&raftogramv1.SubscribeRequest{ChannelId: channelID, AfterSequence: after})
		}
		if err == nil {
			err = stream.CloseSend()
		}
		if err == nil {
			for {
				if rerr := stream.RecvMsg(&chunk); rerr != nil {
					err = rerr
					break
				}
				failures = 0
				c.answeredBy(ep)
				after = deliver(&chunk, time.Now())
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if !c.handleFailure(ctx, ep, err, failures, "subscribe_") {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		failures++
		if resubscribed != nil {
			resubscribed()
		}
	}
}
