package grpcapi

import (
	"context"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUpdateDeleteRedact(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	fillChannel(t, lc, "c", 3, time.Now())

	up, err := client.UpdateChannel(ctx, &raftogramv1.UpdateChannelRequest{ChannelId: "c", Name: "Renamed"})
	if err != nil || up.GetChannel().GetName() != "Renamed" || up.GetIndex() == 0 {
		t.Fatalf("update: %v %v", up, err)
	}
	if ch, err := client.GetChannel(ctx, &raftogramv1.GetChannelRequest{ChannelId: "c"}); err != nil || ch.GetName() != "Renamed" || ch.GetMessageCount() != 3 {
		t.Fatalf("after update: %v %v", ch, err)
	}

	// A stream that has delivered message 2 sees its redaction on replay,
	// and the live window never serves the old payload again.
	stream, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if chunk, err := stream.Recv(); err != nil || len(chunk.GetMessages()) != 3 {
		t.Fatalf("history chunk: %v %v", chunk, err)
	}
	red, err := client.RedactMessage(ctx, &raftogramv1.RedactMessageRequest{ChannelId: "c", Sequence: 2, Reason: "spam"})
	if err != nil || !red.GetRedacted() {
		t.Fatalf("redact: %v %v", red, err)
	}
	again, err := client.RedactMessage(ctx, &raftogramv1.RedactMessageRequest{ChannelId: "c", Sequence: 2})
	if err != nil || again.Redacted == nil || again.GetRedacted() {
		t.Fatalf("redact again: %v %v", again, err)
	}
	hist, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c"})
	if err != nil || len(hist.GetMessages()) != 3 {
		t.Fatalf("history: %v %v", hist, err)
	}
	for _, m := range hist.GetMessages() {
		if (m.GetSequence() == 2) != m.GetRedacted() || (m.GetSequence() == 2) != (len(m.GetPayload()) == 0) {
			t.Fatalf("message %v", m)
		}
	}
	replay, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c", AfterSequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	if chunk, err := replay.Recv(); err != nil || !chunk.GetMessages()[0].GetRedacted() || len(chunk.GetMessages()[0].GetPayload()) != 0 {
		t.Fatalf("replay after redaction: %v %v", chunk, err)
	}

	// Deleting ends open streams with NotFound.
	del, err := client.DeleteChannel(ctx, &raftogramv1.DeleteChannelRequest{ChannelId: "c"})
	if err != nil || !del.GetDeleted() {
		t.Fatalf("delete: %v %v", del, err)
	}
	for _, st := range []interface {
		Recv() (*raftogramv1.SubscribeChunk, error)
	}{stream, replay} {
		_, err := st.Recv()
		if s, _ := status.FromError(err); s.Code() != codes.NotFound {
			t.Fatalf("stream after delete: %v", err)
		}
	}
	del, err = client.DeleteChannel(ctx, &raftogramv1.DeleteChannelRequest{ChannelId: "c"})
	if err != nil || del.Deleted == nil || del.GetDeleted() {
		t.Fatalf("delete again: %v %v", del, err)
	}
	// Created again, sequences continue.
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	sent, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a"})
	if err != nil || sent.GetSequence() != 4 {
		t.Fatalf("send after re-create: %v %v", sent, err)
	}
}

func TestManagementBadInput(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	fillChannel(t, lc, "c", 1, time.Now())
	before := digest(t, lc)
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"update: bad id", func() error {
			_, err := client.UpdateChannel(ctx, &raftogramv1.UpdateChannelRequest{ChannelId: "a b"})
			return err
		}, codes.InvalidArgument, "channel_id has a character"},
		{"update: bad name", func() error {
			_, err := client.UpdateChannel(ctx, &raftogramv1.UpdateChannelRequest{ChannelId: "c", Name: "a\tb"})
			return err
		}, codes.InvalidArgument, "name contains a control character"},
		{"update: unknown", func() error {
			_, err := client.UpdateChannel(ctx, &raftogramv1.UpdateChannelRequest{ChannelId: "nope", Name: "x"})
			return err
		}, codes.NotFound, `channel "nope" not found`},
		{"delete: no id", func() error {
			_, err := client.DeleteChannel(ctx, &raftogramv1.DeleteChannelRequest{})
			return err
		}, codes.InvalidArgument, "channel_id is required"},
		{"redact: no sequence", func() error {
			_, err := client.RedactMessage(ctx, &raftogramv1.RedactMessageRequest{ChannelId: "c"})
			return err
		}, codes.InvalidArgument, "sequence is required"},
		{"redact: reason too long", func() error {
			_, err := client.RedactMessage(ctx, &raftogramv1.RedactMessageRequest{ChannelId: "c", Sequence: 1, Reason: strings.Repeat("r", 513)})
			return err
		}, codes.InvalidArgument, "reason is 513 bytes"},
		{"redact: unknown message", func() error {
			_, err := client.RedactMessage(ctx, &raftogramv1.RedactMessageRequest{ChannelId: "c", Sequence: 7})
			return err
		}, codes.NotFound, `message 7 of channel "c" not found`},
		{"redact: unknown channel", func() error {
			_, err := client.RedactMessage(ctx, &raftogramv1.RedactMessageRequest{ChannelId: "nope", Sequence: 1})
			return err
		}, codes.NotFound, `channel "nope" not found`},
	} {
		err := tc.call()
		if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: %v; want %v containing %q", tc.name, err, tc.code, tc.msg)
		}
	}
	if digest(t, lc) != before {
		t.Fatal("a rejected request changed the projection")
	}
}
