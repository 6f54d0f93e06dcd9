package client

import (
	"errors"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestSubscribeStartResumesFromWhereTheNodeStarted: a StartLast stream
// that fails, once before its start is known and once after, asks again
// for the start the first time, and resumes after the last delivered
// message (not from the start again) the second time.
func TestSubscribeStartResumesFromWhereTheNodeStarted(t *testing.T) {
	f := startFake(t, &fake{})
	f.subscribe = func(n int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		switch n {
		case 1:
			return status.Error(codes.Unavailable, "not yet")
		case 2:
			st.Send(&raftogramv1.SubscribeChunk{StartedAfter: proto.Uint64(7)})
			st.Send(chunk("", 0, 8, 9))
			return status.Error(codes.Unavailable, "node going down")
		}
		st.Send(chunk("", 0, 10))
		<-st.Context().Done()
		return nil
	}
	c := newTestClient(t, Config{Addrs: []string{f.addr}})
	sub, err := c.Subscribe(testCtx(t), "g", SubscribeOptions{Start: StartLast, LastN: 2, Consistency: LeaderOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []uint64
	for len(got) < 3 {
		b, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if len(got) == 0 && sub.LastSequence() < 7 {
			t.Fatalf("LastSequence %d after the start chunk", sub.LastSequence())
		}
		for _, m := range b.Messages {
			got = append(got, m.Sequence)
		}
	}
	if got[0] != 8 || got[1] != 9 || got[2] != 10 {
		t.Fatalf("delivered %v", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, want := range []struct {
		start raftogramv1.SubscribeStart
		lastN uint64
		after uint64
	}{
		{raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, 2, 0},
		{raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, 2, 0},
		{raftogramv1.SubscribeStart_SUBSCRIBE_START_UNSPECIFIED, 0, 9},
	} {
		req := f.subs[i]
		if req.GetStart() != want.start || req.GetLastN() != want.lastN || req.GetAfterSequence() != want.after {
			t.Fatalf("request %d: %v; want %+v", i+1, req, want)
		}
	}
}

// A node too old to know SubscribeRequest.start ignores it and streams
// from the first message without a started_after: the subscription ends
// with ErrUnimplemented instead of delivering old messages as new.
func TestSubscribeStartOnAnOldNodeIsUnimplemented(t *testing.T) {
	f := startFake(t, &fake{})
	f.subscribe = func(n int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		st.Send(chunk("", 0, 1, 2))
		<-st.Context().Done()
		return nil
	}
	c := newTestClient(t, Config{Addrs: []string{f.addr}})
	sub, err := c.Subscribe(testCtx(t), "g", SubscribeOptions{Start: StartNew, Consistency: LeaderOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Recv(); !errors.Is(err, ErrUnimplemented) {
		t.Fatalf("Recv: %v", err)
	}
}

func TestSubscribeStartOptionsAreChecked(t *testing.T) {
	c := newTestClient(t, Config{Addrs: []string{"127.0.0.1:1"}})
	for _, opts := range []SubscribeOptions{
		{Start: StartNew, After: 3},
		{Start: StartLast, After: 3},
		{Start: StartNew, LastN: 3},
		{LastN: 3},
		{Start: 7},
	} {
		if _, err := c.Subscribe(testCtx(t), "g", opts); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", opts, err)
		}
	}
}
