package client_test

import (
	"errors"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorFromStatus(t *testing.T) {
	if client.ErrorFromStatus(nil) != nil {
		t.Fatal("nil error: not nil")
	}
	st, err := status.New(codes.FailedPrecondition, "not leader: retry on suggested leader client endpoint").
		WithDetails(&raftogramv1.NotLeader{LeaderGrpcTarget: "127.0.0.1:9002", RaftLeaderId: "node2"})
	if err != nil {
		t.Fatal(err)
	}
	e := client.ErrorFromStatus(st.Err())
	if !errors.Is(e, client.ErrNotLeader) || !e.NotLeaderDetail() || e.Code != codes.FailedPrecondition ||
		e.Message != st.Message() || e.Leader != "127.0.0.1:9002" || e.LeaderID != "node2" {
		t.Fatalf("ErrorFromStatus(not leader) = %+v", e)
	}
	if e := client.ErrorFromStatus(status.Error(codes.NotFound, "channel x not found")); !errors.Is(e, client.ErrNotFound) || e.NotLeaderDetail() {
		t.Fatalf("ErrorFromStatus(NotFound) = %+v", e)
	}
	if e := client.ErrorFromStatus(errors.New("no status")); !errors.Is(e, client.ErrInternal) {
		t.Fatalf("ErrorFromStatus(plain error) = %+v", e)
	}
}
