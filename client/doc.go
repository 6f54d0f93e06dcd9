// Package client is the Go client of a raftogram cluster. It hides the
// cluster: give it the addresses of any nodes and it finds the leader,
// follows leadership changes, spreads reads over the nodes and keeps
// subscriptions running across node loss.
//
//	c, err := client.New(ctx, client.Config{Addrs: []string{"127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"}})
//	if err != nil { ... }
//	defer c.Close()
//	res, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", Payload: []byte("hi")})
//
// # Writes
//
// CreateChannel and Send go to the leader. The Client learns the leader from
// the NotLeader answers of other nodes (dialling its address if it was not
// configured), remembers it, and moves on to another node when the one it
// asked is down. Every Send is exactly-once: it carries a client message id
// (a random one when the caller gives none, returned in the result), and an
// attempt whose outcome is unknown is repeated with the same id, which the
// cluster deduplicates.
//
// # Publishing
//
// [Client.NewPublisher] returns a [Publisher] that sends messages on one
// Publish stream to the leader without waiting for each answer:
// PublishAsync returns a [PublishFuture] at once (waiting only while
// PublisherOptions.MaxPending are unresolved), Flush waits for everything
// published so far. Per channel, messages are stored in publish order.
// When the stream breaks the Publisher follows the leader as Send does and
// sends the unresolved messages again with the same ids, so each is stored
// exactly once.
//
// # Reads
//
// ReadHistory, GetChannel, ListChannels and Subscribe take a [Consistency].
// The default, [Linearizable], lets any node answer while every read still
// sees every write acknowledged before it started; reads are spread
// round-robin over the nodes. [AtLeast] with a write's Index gives
// read-your-writes on any node, [Local] answers at once from whatever the
// node has, and [LeaderOnly] is the server's behaviour for callers that ask
// for no level. (A node that serves reads only on the leader answers
// NotLeader, and the read moves to the leader.)
//
// # Retries
//
// A call is retried, until its context ends, when a node says it is not the
// leader (the call did not run) or when its outcome is unknown
// (Unavailable, a lost connection, the per-attempt timeout): reads always,
// writes only when repeating them is harmless (Send with its id,
// CreateChannel with an explicit id). Pauses between attempts grow
// exponentially with full jitter between Config.BaseBackoff and
// Config.MaxBackoff. A definite answer (not found, invalid, permission
// denied...) is returned at once. Bound every call with a context deadline.
//
// # Errors
//
// Errors from nodes are [*Error] values that match one sentinel
// (ErrNotFound, ErrInvalidArgument, ErrUnavailable...) with errors.Is; the
// codes Canceled and DeadlineExceeded match context.Canceled and
// context.DeadlineExceeded. A call whose context ended matches the
// context's error and, when an attempt failed, that attempt's error too.
//
// # Subscriptions
//
// A [Subscription] resubscribes after any failure of its stream but a
// definite one, on another node when it can, after the last sequence it
// delivered; Recv hands out every message exactly once and in order.
package client
