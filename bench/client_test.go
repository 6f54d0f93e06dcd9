package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func mustClient(t *testing.T, c *fakeCluster, addrs ...string) *Client {
	t.Helper()
	cl, err := NewClient(addrs, ClientOptions{
		DialOptions:    c.dialOptions(),
		AttemptTimeout: 2 * time.Second,
		BackoffMin:     time.Millisecond,
		BackoffMax:     20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func counts(cl *Client) map[string]int64 {
	m, _ := cl.Errors().Snapshot()
	return m
}

func TestClassify(t *testing.T) {
	withDetail := func(code codes.Code, target string) error {
		st, err := status.New(code, "x").WithDetails(&raftogramv1.NotLeader{LeaderGrpcTarget: target})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	tests := []struct {
		err   error
		class string
		hint  string
		retry bool
	}{
		{withDetail(codes.FailedPrecondition, "n3:9000"), ClassNotLeader, "n3:9000", true},
		{withDetail(codes.Unavailable, ""), ClassNoLeader, "", true},
		{status.Error(codes.Unavailable, "connection refused"), ClassUnavailable, "", true},
		{status.Error(codes.DeadlineExceeded, "slow"), ClassTimeout, "", true},
		{context.DeadlineExceeded, ClassTimeout, "", true},
		{status.Error(codes.InvalidArgument, "bad"), "invalid_argument", "", false},
		{status.Error(codes.FailedPrecondition, "no detail"), "failed_precondition", "", false},
		{status.Error(codes.NotFound, "x"), "not_found", "", false},
		{status.Error(codes.Canceled, "x"), "canceled", "", false},
		{errors.New("plain"), "other", "", false},
	}
	for _, tt := range tests {
		v := classify(tt.err)
		if v.class != tt.class || v.hint != tt.hint || v.retry != tt.retry {
			t.Errorf("classify(%v) = %+v, want class %q hint %q retry %v", tt.err, v, tt.class, tt.hint, tt.retry)
		}
	}
}

func TestClientFollowsNotLeaderHint(t *testing.T) {
	c := newFakeCluster(t, "n3", "n1", "n2", "n3")
	cl := mustClient(t, c, "n1", "n2", "n3")
	leader, err := cl.FindLeader(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if leader != "n3" {
		t.Fatalf("leader = %q, want n3", leader)
	}
	if got := counts(cl); got[ClassNotLeader] != 1 || len(got) != 1 {
		t.Errorf("error classes = %v, want one not_leader", got)
	}
	if cl.Moves() != 1 || cl.LeaderChanges() != 0 {
		t.Errorf("moves %d, leader changes %d; want 1 move and no change (only n3 answered)", cl.Moves(), cl.LeaderChanges())
	}
}

func TestClientFollowsHintToAddressNotListed(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2")
	cl := mustClient(t, c, "n1") // n2 is only known from the hint
	if leader, err := cl.FindLeader(testCtx(t)); err != nil || leader != "n2" {
		t.Fatalf("FindLeader = %q, %v; want n2", leader, err)
	}
}

func TestClientMovesOnFromDeadNode(t *testing.T) {
	c := newFakeCluster(t, "n3", "n1", "n2", "n3")
	c.setDown("n1", true)
	cl := mustClient(t, c, "n1", "n2", "n3")
	leader, err := cl.FindLeader(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if leader != "n3" {
		t.Fatalf("leader = %q, want n3", leader)
	}
	if got := counts(cl); got[ClassUnavailable] < 1 || got[ClassNotLeader] != 1 {
		t.Errorf("error classes = %v, want unavailable then not_leader", got)
	}
}

func TestClientWaitsOutElection(t *testing.T) {
	c := newFakeCluster(t, "", "n1", "n2", "n3")
	c.addChannel("ch")
	cl := mustClient(t, c, "n1", "n2", "n3")
	time.AfterFunc(100*time.Millisecond, func() { c.setLeader("n2") })
	resp, retries, err := cl.Send(testCtx(t), 0, &raftogramv1.SendMessageRequest{ChannelId: "ch", AuthorId: "a", ClientMessageId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSequence() != 1 || retries < 2 {
		t.Errorf("sequence %d after %d retries; want 1 after several", resp.GetSequence(), retries)
	}
	if got := counts(cl); got[ClassNoLeader] < 1 || got[ClassNotLeader] > 1 {
		t.Errorf("error classes = %v, want no_leader retries and at most one not_leader", got)
	}
	if cl.Leader() != "n2" {
		t.Errorf("leader = %q, want n2", cl.Leader())
	}
}

// A send whose outcome is unknown (committed, then the leader changed before
// answering) is retried with the same client_message_id: the client moves on
// to the next address (n2), which names the new leader (n3), which answers
// with the original sequence and deduplicated=true.
func TestClientRetriesSameClientMessageIDAcrossFailover(t *testing.T) {
	c := newFakeCluster(t, "n1", "n1", "n2", "n3")
	c.addChannel("ch")
	var once sync.Once
	var ids []string
	var mu sync.Mutex
	c.beforeSend = func(node string, req *raftogramv1.SendMessageRequest) error {
		mu.Lock()
		ids = append(ids, node+":"+req.GetClientMessageId())
		mu.Unlock()
		return nil
	}
	c.afterSend = func(node string, req *raftogramv1.SendMessageRequest) (err error) {
		once.Do(func() {
			c.setLeader("n3")
			err = errInjected
		})
		return err
	}
	cl := mustClient(t, c, "n1", "n2", "n3")
	resp, retries, err := cl.Send(testCtx(t), 0, &raftogramv1.SendMessageRequest{ChannelId: "ch", AuthorId: "a", ClientMessageId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSequence() != 1 || !resp.GetDeduplicated() {
		t.Errorf("answer = seq %d dedup %v, want the original sequence 1, deduplicated", resp.GetSequence(), resp.GetDeduplicated())
	}
	if msgs := c.messages("ch"); len(msgs) != 1 {
		t.Errorf("channel holds %d messages, want 1", len(msgs))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != "n1:m1" || ids[1] != "n3:m1" {
		t.Errorf("sends reaching a leader = %v, want n1:m1 then n3:m1", ids)
	}
	if got := counts(cl); got[ClassUnavailable] != 1 || got[ClassNotLeader] != 1 || retries != 2 {
		t.Errorf("error classes = %v after %d retries; want one unavailable, one not_leader, 2 retries", got, retries)
	}
}

func TestClientDoesNotRetryRejections(t *testing.T) {
	c := newFakeCluster(t, "n1", "n1")
	cl := mustClient(t, c, "n1")
	_, retries, err := cl.Send(testCtx(t), 0, &raftogramv1.SendMessageRequest{ChannelId: "missing", AuthorId: "a"})
	if status.Code(err) != codes.NotFound || retries != 0 {
		t.Fatalf("Send = %v after %d retries, want NotFound at once", err, retries)
	}
	if got := counts(cl); got["not_found"] != 1 {
		t.Errorf("error classes = %v, want not_found 1", got)
	}
}

func TestClientGivesUpWhenContextEnds(t *testing.T) {
	c := newFakeCluster(t, "", "n1")
	c.addChannel("ch")
	cl := mustClient(t, c, "n1")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := cl.Send(ctx, 0, &raftogramv1.SendMessageRequest{ChannelId: "ch", AuthorId: "a", ClientMessageId: "m"})
	if err == nil {
		t.Fatal("Send succeeded without a leader")
	}
}

// A subscription survives a leader change: it resubscribes on the new
// leader after the last sequence it got and sees every message once.
func TestClientResubscribesAfterFailover(t *testing.T) {
	c := newFakeCluster(t, "n1", "n1", "n2")
	c.addChannel("ch")
	cl := mustClient(t, c, "n1", "n2")
	sendCtx := testCtx(t)
	ctx, cancel := context.WithCancel(sendCtx) // ends the subscription
	defer cancel()

	const total = 200
	var got []uint64
	var resubs atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- cl.Subscribe(ctx, 0, "ch", 0, func(chunk *Chunk, _ time.Time) uint64 {
			for _, m := range chunk.Messages {
				got = append(got, m.Sequence)
			}
			if len(got) >= total {
				cancel()
			}
			return got[len(got)-1]
		}, func() { resubs.Add(1) })
	}()
	for i := range total {
		if i == total/2 {
			c.setLeader("n2")
		}
		if _, _, err := cl.Send(sendCtx, 0, &raftogramv1.SendMessageRequest{ChannelId: "ch", AuthorId: "a", ClientMessageId: fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("received %d messages, want %d", len(got), total)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("message %d has sequence %d", i, s)
		}
	}
	if resubs.Load() < 1 {
		t.Error("no resubscription recorded")
	}
	if cl.LeaderChanges() != 1 {
		t.Errorf("leader changes = %d, want 1 (n1 answered, then n2)", cl.LeaderChanges())
	}
	if m := counts(cl); m["subscribe_"+ClassNotLeader] < 1 {
		t.Errorf("error classes = %v, want subscribe_not_leader", m)
	}
}
