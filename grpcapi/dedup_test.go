package grpcapi

import (
	"context"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A send that reuses a client_message_id with another author or payload
// is answered AlreadyExists naming the conflict, never deduplicated, and
// changes nothing; the identical repeat still answers the original.
func TestIdempotencyConflictIsAlreadyExists(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	orig := &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "alice", Payload: []byte("hi"), ClientMessageId: "k"}
	if r, err := client.SendMessage(ctx, orig); err != nil || r.GetSequence() != 1 || r.GetDeduplicated() {
		t.Fatalf("send = %v, %v", r, err)
	}
	before := digest(t, lc)
	for _, tc := range []struct {
		req  *raftogramv1.SendMessageRequest
		what string
	}{
		{&raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "mallory", Payload: []byte("hi"), ClientMessageId: "k"}, "another author"},
		{&raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "alice", Payload: []byte("changed"), ClientMessageId: "k"}, "another payload"},
	} {
		r, err := client.SendMessage(ctx, tc.req)
		st := status.Convert(err)
		if st.Code() != codes.AlreadyExists || r != nil ||
			st.Message() != `client_message_id "k" of channel "c" is taken by message 1, sent with `+tc.what+`; use a new client_message_id` {
			t.Fatalf("%s: %v, %v; want AlreadyExists naming the conflict", tc.what, r, err)
		}
		if after := digest(t, lc); after != before {
			t.Fatalf("%s changed the state", tc.what)
		}
	}
	r, err := client.SendMessage(ctx, orig)
	if err != nil || r.GetSequence() != 1 || !r.GetDeduplicated() {
		t.Fatalf("identical repeat = %v, %v; want sequence 1 deduplicated", r, err)
	}
	h, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c"})
	if err != nil || len(h.GetMessages()) != 1 || string(h.GetMessages()[0].GetPayload()) != "hi" {
		t.Fatalf("history = %v, %v; want only the original", h, err)
	}
}
