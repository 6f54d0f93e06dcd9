package grpcapi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func seqs(msgs []*raftogramv1.Message) string {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.GetSequence()
	}
	return fmt.Sprint(out)
}

// fillChannel creates channel id with n messages, message i (from 1)
// created at base + i seconds.
func fillChannel(t *testing.T, lc *localCluster, id string, n int, base time.Time) {
	t.Helper()
	ctx := context.Background()
	events := []domain.Event{domain.ChannelCreated{ChannelID: id, Name: id, CreatedAt: base}}
	for i := 1; i <= n; i++ {
		events = append(events, domain.MessageSent{ChannelID: id, AuthorID: "a", Payload: []byte(fmt.Sprint(i)), CreatedAt: base.Add(time.Duration(i) * time.Second)})
	}
	rs, err := lc.Apply(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func TestReadHistoryNewestFirstAndScrollBack(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	fillChannel(t, lc, "c", 7, base)
	at := func(sec int) *timestamppb.Timestamp {
		return timestamppb.New(base.Add(time.Duration(sec) * time.Second))
	}
	for _, tc := range []struct {
		name string
		req  *raftogramv1.ReadHistoryRequest
		want string
		more bool
	}{
		{"open on the newest page", &raftogramv1.ReadHistoryRequest{NewestFirst: true, Limit: 3}, "[7 6 5]", true},
		{"scroll back", &raftogramv1.ReadHistoryRequest{NewestFirst: true, BeforeSequence: 5, Limit: 3}, "[4 3 2]", true},
		{"oldest page", &raftogramv1.ReadHistoryRequest{NewestFirst: true, BeforeSequence: 2, Limit: 3}, "[1]", false},
		{"exactly the rest", &raftogramv1.ReadHistoryRequest{NewestFirst: true, BeforeSequence: 4, Limit: 3}, "[3 2 1]", false},
		{"newest first above a floor", &raftogramv1.ReadHistoryRequest{NewestFirst: true, AfterSequence: 4, Limit: 10}, "[7 6 5]", false},
		{"forward below a ceiling", &raftogramv1.ReadHistoryRequest{AfterSequence: 1, BeforeSequence: 4}, "[2 3]", false},
		{"since a time", &raftogramv1.ReadHistoryRequest{AfterTime: at(5)}, "[5 6 7]", false},
		{"since between messages", &raftogramv1.ReadHistoryRequest{AfterTime: timestamppb.New(base.Add(4500 * time.Millisecond))}, "[5 6 7]", false},
		{"since: after_sequence later wins", &raftogramv1.ReadHistoryRequest{AfterTime: at(2), AfterSequence: 5}, "[6 7]", false},
		{"since: the time later wins", &raftogramv1.ReadHistoryRequest{AfterTime: at(6), AfterSequence: 2}, "[6 7]", false},
		{"since, paged", &raftogramv1.ReadHistoryRequest{AfterTime: at(2), Limit: 2}, "[2 3]", true},
		{"since, newest first", &raftogramv1.ReadHistoryRequest{AfterTime: at(4), NewestFirst: true, Limit: 2}, "[7 6]", true},
		{"since the epoch", &raftogramv1.ReadHistoryRequest{AfterTime: timestamppb.New(time.Unix(0, 0)), Limit: 2}, "[1 2]", true},
		{"since after the last", &raftogramv1.ReadHistoryRequest{AfterTime: at(8)}, "[]", false},
	} {
		tc.req.ChannelId = "c"
		resp, err := client.ReadHistory(ctx, tc.req)
		if err != nil || seqs(resp.GetMessages()) != tc.want || resp.GetHasMore() != tc.more || resp.HasMore == nil {
			t.Errorf("%s: %s has_more=%v %v; want %s has_more=%v", tc.name, seqs(resp.GetMessages()), resp.GetHasMore(), err, tc.want, tc.more)
		}
	}
	for _, tc := range []struct {
		name string
		req  *raftogramv1.ReadHistoryRequest
		code codes.Code
		msg  string
	}{
		{"bad after_time", &raftogramv1.ReadHistoryRequest{ChannelId: "c", AfterTime: &timestamppb.Timestamp{Nanos: -1}}, codes.InvalidArgument, "after_time"},
		{"unknown channel, since", &raftogramv1.ReadHistoryRequest{ChannelId: "nope", AfterTime: at(1)}, codes.NotFound, `channel "nope" not found`},
		{"unknown channel, newest first", &raftogramv1.ReadHistoryRequest{ChannelId: "nope", NewestFirst: true}, codes.NotFound, `channel "nope" not found`},
	} {
		_, err := client.ReadHistory(ctx, tc.req)
		if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: %v; want %v containing %q", tc.name, err, tc.code, tc.msg)
		}
	}
}

func TestSubscribeStartValidation(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	fillChannel(t, lc, "c", 1, time.Now())
	for _, tc := range []struct {
		req  *raftogramv1.SubscribeRequest
		code codes.Code
		msg  string
	}{
		{&raftogramv1.SubscribeRequest{ChannelId: "c", Start: 9}, codes.InvalidArgument, "unknown start 9"},
		{&raftogramv1.SubscribeRequest{ChannelId: "c", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW, AfterSequence: 1}, codes.InvalidArgument, "after_sequence applies only"},
		{&raftogramv1.SubscribeRequest{ChannelId: "c", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, AfterSequence: 1}, codes.InvalidArgument, "after_sequence applies only"},
		{&raftogramv1.SubscribeRequest{ChannelId: "c", LastN: 3}, codes.InvalidArgument, "last_n applies only"},
		{&raftogramv1.SubscribeRequest{ChannelId: "c", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW, LastN: 3}, codes.InvalidArgument, "last_n applies only"},
		{&raftogramv1.SubscribeRequest{ChannelId: "nope", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW}, codes.NotFound, `channel "nope" not found`},
		{&raftogramv1.SubscribeRequest{ChannelId: "nope", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST}, codes.NotFound, `channel "nope" not found`},
	} {
		stream, err := client.Subscribe(ctx, tc.req)
		if err == nil {
			_, err = stream.Recv()
		}
		if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%v: %v; want %v containing %q", tc.req, err, tc.code, tc.msg)
		}
	}
}

func TestSubscribeStartNewAndLast(t *testing.T) {
	for _, level := range []raftogramv1.ReadConsistency{raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL} {
		t.Run(level.String(), func(t *testing.T) {
			client, _, lc, _ := newTestServer(t, true)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i := range 4 {
				fillChannel(t, lc, fmt.Sprint("c", i), 5, time.Now())
			}
			fillChannel(t, lc, "empty", 0, time.Now())
			fillChannel(t, lc, "empty2", 0, time.Now())
			// recvMessages skips heartbeats (level streams) and returns the
			// next chunk that carries messages or started_after.
			recv := func(stream interface {
				Recv() (*raftogramv1.SubscribeChunk, error)
			}) *raftogramv1.SubscribeChunk {
				for {
					chunk, err := stream.Recv()
					if err != nil {
						t.Fatal(err)
					}
					if len(chunk.GetMessages()) > 0 || chunk.StartedAfter != nil {
						return chunk
					}
				}
			}
			for _, tc := range []struct {
				req          *raftogramv1.SubscribeRequest
				startedAfter uint64
				backlog      string // messages before the live one ("" for none)
			}{
				{&raftogramv1.SubscribeRequest{ChannelId: "c0", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW}, 5, ""},
				{&raftogramv1.SubscribeRequest{ChannelId: "c1", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, LastN: 2}, 3, "[4 5]"},
				{&raftogramv1.SubscribeRequest{ChannelId: "c2", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST}, 4, "[5]"},
				{&raftogramv1.SubscribeRequest{ChannelId: "c3", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, LastN: 100}, 0, "[1 2 3 4 5]"},
				{&raftogramv1.SubscribeRequest{ChannelId: "empty", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, LastN: 3}, 0, ""},
				{&raftogramv1.SubscribeRequest{ChannelId: "empty2", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW}, 0, ""},
			} {
				tc.req.Consistency = level
				sctx, scancel := context.WithCancel(ctx)
				stream, err := client.Subscribe(sctx, tc.req)
				if err != nil {
					t.Fatal(err)
				}
				first := recv(stream)
				if first.StartedAfter == nil || first.GetStartedAfter() != tc.startedAfter || len(first.GetMessages()) != 0 {
					t.Fatalf("%v: first chunk %v; want started_after %d and no messages", tc.req, first, tc.startedAfter)
				}
				if tc.backlog != "" {
					if got := recv(stream); seqs(got.GetMessages()) != tc.backlog {
						t.Fatalf("%v: backlog %s, want %s", tc.req, seqs(got.GetMessages()), tc.backlog)
					}
				}
				// A message sent now arrives next, alone.
				resp, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: tc.req.ChannelId, AuthorId: "live"})
				if err != nil {
					t.Fatal(err)
				}
				if got := recv(stream); seqs(got.GetMessages()) != fmt.Sprintf("[%d]", resp.GetSequence()) {
					t.Fatalf("%v: live %s, want [%d]", tc.req, seqs(got.GetMessages()), resp.GetSequence())
				}
				scancel()
			}
		})
	}
}

// Streams that start NEW while messages keep committing get every message
// after their started_after, in order, none missing: the seam between the
// read of the last sequence and the live window has no gap.
func TestSubscribeStartNewHasNoGapUnderLoad(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fillChannel(t, lc, "c", 0, time.Now())
	const total = 400
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range total {
			if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "w"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 20 {
		stream, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c", Start: raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil || first.StartedAfter == nil {
			t.Fatalf("stream %d: first chunk %v, %v", i, first, err)
		}
		next := first.GetStartedAfter() + 1
		for next <= first.GetStartedAfter()+5 && next <= total {
			chunk, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range chunk.GetMessages() {
				if m.GetSequence() != next {
					t.Fatalf("stream %d from %d: got %d, want %d", i, first.GetStartedAfter(), m.GetSequence(), next)
				}
				next++
			}
		}
	}
	wg.Wait()
}

// Bad retention limits are InvalidArgument on create and update and change
// nothing; a good one is stored and shown by GetChannel; the node's default
// applies to a create without one.
func TestRetentionValidationAndDefaults(t *testing.T) {
	client, _, _, _ := newTestServerWithOptions(t, true, fanout.New(EncodeMessage),
		Options{DefaultRetention: domain.Retention{MaxMessages: 50}})
	ctx := context.Background()
	for _, r := range []*raftogramv1.Retention{
		{MaxAge: durationpb.New(10 * time.Millisecond)},
		{MaxAge: durationpb.New(-time.Hour)},
		{MaxAge: &durationpb.Duration{Seconds: 1, Nanos: -5}},
		{MaxMessages: 1 << 63},
		{MaxBytes: 1 << 63},
	} {
		_, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "bad", Name: "bad", Retention: r})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "retention") {
			t.Errorf("create with %v: %v, want InvalidArgument naming the retention", r, err)
		}
		if _, err := client.GetChannel(ctx, &raftogramv1.GetChannelRequest{ChannelId: "bad"}); status.Code(err) != codes.NotFound {
			t.Fatalf("a refused create left channel bad: %v", err)
		}
	}
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "dflt", Name: "dflt"}); err != nil {
		t.Fatal(err)
	}
	week := &raftogramv1.Retention{MaxAge: durationpb.New(7 * 24 * time.Hour), MaxBytes: 1 << 30}
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "own", Name: "own", Retention: week}); err != nil {
		t.Fatal(err)
	}
	_, err := client.UpdateChannel(ctx, &raftogramv1.UpdateChannelRequest{ChannelId: "own", Retention: &raftogramv1.Retention{MaxAge: durationpb.New(time.Millisecond)}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("update to a 1ms max_age: %v", err)
	}
	for id, want := range map[string]string{"dflt": "max_messages:50", "own": "max_age:{seconds:604800} max_bytes:1073741824"} {
		ch, err := client.GetChannel(ctx, &raftogramv1.GetChannelRequest{ChannelId: id})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(strings.Fields(ch.GetRetention().String()), " "); got != want {
			t.Errorf("channel %s retention %q, want %q", id, got, want)
		}
	}
	// Clearing: an explicit zero retention keeps everything, defaults or not.
	resp, err := client.UpdateChannel(ctx, &raftogramv1.UpdateChannelRequest{ChannelId: "dflt", Retention: &raftogramv1.Retention{}})
	if err != nil || resp.GetChannel().GetRetention().GetMaxMessages() != 0 {
		t.Fatalf("clearing the retention: %v %v", resp, err)
	}
}
