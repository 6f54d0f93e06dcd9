package grpcapi

import (
	"context"
	"fmt"
	"google.golang.org/grpc"
	"io"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/fanout"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func pubReq(ch, id, payload string) *raftogramv1.PublishRequest {
	return &raftogramv1.PublishRequest{ChannelId: ch, AuthorId: "alice", Payload: []byte(payload), ClientMessageId: id}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// gatedPublish creates channels on a leader test server with opts, holds
// every Apply until the returned gate is closed, and opens a Publish
// stream (ending with ctx, which ends with the test).
func gatedPublish(t *testing.T, opts Options, channels ...string) (grpc.BidiStreamingClient[raftogramv1.PublishRequest, raftogramv1.PublishResponse], *Server, chan struct{}) {
	t.Helper()
	client, _, lc, api := newTestServerWithOptions(t, true, fanout.New(EncodeMessage), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	for _, ch := range channels {
		if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: ch, Name: ch}); err != nil {
			t.Fatal(err)
		}
	}
	gate := make(chan struct{})
	lc.mu.Lock()
	lc.gate = gate
	lc.mu.Unlock()
	stream, err := client.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream, api, gate
}

// The server reads at most the window ahead of its answers: with every
// Apply held, it reads exactly MaxPublishInflight requests, finds the
// window full and reads no more; released, it answers every request, per
// channel in stream order with contiguous sequences.
func TestPublishWindowBoundsReading(t *testing.T) {
	const window, total = 8, 40
	stream, api, gate := gatedPublish(t, Options{MaxPublishInflight: window}, "a", "b")
	for i := range total {
		ch := []string{"a", "b"}[i%2]
		if err := stream.Send(pubReq(ch, fmt.Sprintf("m%d", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the reader to find the window full", func() bool { return api.publishStalls.Load() > 0 })
	if got := api.publishRead.Load(); got != window {
		t.Fatalf("the server read %d requests with none answered; the window is %d", got, window)
	}
	close(gate)
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{"a": 1, "b": 1}
	nextID := map[string]int{"a": 0, "b": 1}
	for range total {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		ch := r.GetChannelId()
		if r.GetStatus() != nil || r.GetSequence() != next[ch] || r.GetClientMessageId() != fmt.Sprintf("m%d", nextID[ch]) {
			t.Fatalf("result %v; want %s sequence %d for m%d", r, ch, next[ch], nextID[ch])
		}
		next[ch]++
		nextID[ch] += 2
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after the last result: %v, want the stream's end", err)
	}
	if got := api.publishRead.Load(); got != total {
		t.Fatalf("read %d requests, want %d", got, total)
	}
	if peak := api.publishPeak.load(); peak != window {
		t.Fatalf("at most %d requests were unanswered; want the window, %d", peak, window)
	}
}

// The byte window stops reading too: requests of 600 bytes against a 1000
// byte window are read two at a time while Apply is held.
func TestPublishByteWindow(t *testing.T) {
	stream, api, gate := gatedPublish(t, Options{MaxPublishInflight: 100, MaxPublishInflightBytes: 1000}, "a")
	for i := range 5 {
		if err := stream.Send(pubReq("a", fmt.Sprint(i), strings.Repeat("x", 600))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the reader to find the window full", func() bool { return api.publishStalls.Load() > 0 })
	if got := api.publishRead.Load(); got != 2 {
		t.Fatalf("read %d requests of 600 bytes against a 1000 byte window; want 2", got)
	}
	close(gate)
	stream.CloseSend()
	for i := range 5 {
		if r, err := stream.Recv(); err != nil || r.GetSequence() != uint64(i+1) {
			t.Fatalf("result %d: %v, %v", i, r, err)
		}
	}
}

// Rejected requests get their own status, change nothing, and keep their
// place in their channel's order; the stream's other requests succeed.
func TestPublishPerItemErrors(t *testing.T) {
	client, _, _, _ := newTestServer(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "alice", Payload: []byte("orig"), ClientMessageId: "taken"}); err != nil {
		t.Fatal(err)
	}
	stream, err := client.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		req  *raftogramv1.PublishRequest
		code codes.Code
		seq  uint64
		msg  string
	}{
		{pubReq("c", "ok1", "x"), codes.OK, 2, ""},
		{pubReq("nope", "n1", "x"), codes.NotFound, 0, `channel "nope" not found`},
		{pubReq("c", "", "x"), codes.InvalidArgument, 0, "client_message_id is required on Publish"},
		{&raftogramv1.PublishRequest{ChannelId: "c", Payload: []byte("x"), ClientMessageId: "noauthor"}, codes.InvalidArgument, 0, "author_id is required"},
		{pubReq("c", "big", strings.Repeat("x", testMaxPayload+1)), codes.InvalidArgument, 0, "payload is 1025 bytes"},
		{pubReq("c", "taken", "changed"), codes.AlreadyExists, 0, `client_message_id "taken" of channel "c" is taken by message 1`},
		{pubReq("c", "ok2", "x"), codes.OK, 3, ""},
		{pubReq("c", "ok1", "x"), codes.OK, 2, ""}, // a repeat: deduplicated
	}
	for _, tc := range cases {
		if err := stream.Send(tc.req); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	var got []*raftogramv1.PublishResponse
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != len(cases) {
		t.Fatalf("%d results for %d requests", len(got), len(cases))
	}
	// Channel c's answers come in stream order; "nope"'s stands alone.
	var cAnswers []*raftogramv1.PublishResponse
	for _, r := range got {
		if r.GetChannelId() == "c" {
			cAnswers = append(cAnswers, r)
		}
	}
	i := 0
	for _, tc := range cases {
		var r *raftogramv1.PublishResponse
		if tc.req.GetChannelId() == "c" {
			r = cAnswers[i]
			i++
		} else {
			for _, g := range got {
				if g.GetChannelId() == tc.req.GetChannelId() {
					r = g
				}
			}
		}
		st := status.FromProto(r.GetStatus())
		if r.GetClientMessageId() != tc.req.GetClientMessageId() || st.Code() != tc.code || r.GetSequence() != tc.seq || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("request %q: got %v (%s %q), want %s %q sequence %d", tc.req.GetClientMessageId(), r, st.Code(), st.Message(), tc.code, tc.msg, tc.seq)
		}
	}
	if last := cAnswers[len(cAnswers)-1]; !last.GetDeduplicated() {
		t.Errorf("the repeat of ok1 = %v; want deduplicated", last)
	}
	h, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c"})
	if err != nil || len(h.GetMessages()) != 3 {
		t.Fatalf("history = %v, %v; want orig, ok1, ok2", h, err)
	}
}

// A follower ends a Publish stream at once with NotLeader naming the
// leader, like SendMessage without forward_writes.
func TestPublishOnFollowerIsNotLeader(t *testing.T) {
	client, _, _, _ := newTestServer(t, false)
	stream, err := client.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || !isNotLeader(st) {
		t.Fatalf("Publish on a follower: %v; want FailedPrecondition with a NotLeader detail", err)
	}
}

// A client_message_id repeated within one Apply call (queued together
// behind a running one) is stored once; the repeat answers the same
// sequence, deduplicated.
func TestPublishRepeatWithinOneCall(t *testing.T) {
	stream, api, gate := gatedPublish(t, Options{}, "c")
	for _, id := range []string{"first", "k", "k"} {
		if err := stream.Send(pubReq("c", id, "same")); err != nil {
			t.Fatal(err)
		}
	}
	// "first" is applying (held); both "k" wait in the channel's queue.
	waitFor(t, "three requests read", func() bool { return api.publishRead.Load() == 3 })
	close(gate)
	stream.CloseSend()
	var got []string
	for range 3 {
		r, err := stream.Recv()
		if err != nil || r.GetStatus() != nil {
			t.Fatalf("%v, %v", r, err)
		}
		got = append(got, fmt.Sprintf("%s:%d:%v", r.GetClientMessageId(), r.GetSequence(), r.GetDeduplicated()))
	}
	if want := "first:1:false k:2:false k:2:true"; strings.Join(got, " ") != want {
		t.Fatalf("answers %q, want %q", strings.Join(got, " "), want)
	}
}
