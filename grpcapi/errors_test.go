package grpcapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The errors cluster maps raft's errors to (cluster.mapRaftError) reach
// clients with these codes and messages; internal details stay in the log.
func TestToStatus(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, tc := range []struct {
		name    string
		err     error
		code    codes.Code
		message string
		leader  *raftogramv1.NotLeader // the NotLeader detail, nil for none
	}{
		{"not leader, leader known", fmt.Errorf("apply: %w", &domain.NotLeaderError{LeaderID: "node2", LeaderGRPCAddr: "127.0.0.1:9002"}),
			codes.FailedPrecondition, NotLeaderMessage, &raftogramv1.NotLeader{LeaderGrpcTarget: "127.0.0.1:9002", RaftLeaderId: "node2"}},
		{"not leader, none known", &domain.NotLeaderError{},
			codes.Unavailable, "not leader: no leader is known; retry shortly", &raftogramv1.NotLeader{}},
		{"outcome unknown", domain.Errorf(domain.EUNAVAILABLE, "write outcome unknown: leadership lost while committing log; retry with the same client_message_id"),
			codes.Unavailable, "write outcome unknown: leadership lost while committing log; retry with the same client_message_id", nil},
		{"overloaded", domain.Errorf(domain.EUNAVAILABLE, "write not accepted: the leader is overloaded; retry"),
			codes.Unavailable, "write not accepted: the leader is overloaded; retry", nil},
		{"internal", fmt.Errorf("cluster write: %w", fmt.Errorf("bolt: secret path /var/x")), codes.Internal, "internal error", nil},
		{"cancelled", fmt.Errorf("cluster apply: %w", context.Canceled), codes.Canceled, "request cancelled", nil},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded", nil},
		{"status passes through", status.Error(codes.ResourceExhausted, "too big"), codes.ResourceExhausted, "too big", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(toStatus(log, "/raftogram.v1.Messenger/SendMessage", tc.err))
			if st.Code() != tc.code || st.Message() != tc.message {
				t.Fatalf("toStatus(%v) = %v %q; want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.message)
			}
			var nl *raftogramv1.NotLeader
			for _, d := range st.Details() {
				if v, ok := d.(*raftogramv1.NotLeader); ok {
					nl = v
				}
			}
			if (nl == nil) != (tc.leader == nil) || (nl != nil && (nl.GetLeaderGrpcTarget() != tc.leader.GetLeaderGrpcTarget() || nl.GetRaftLeaderId() != tc.leader.GetRaftLeaderId())) {
				t.Fatalf("toStatus(%v): NotLeader detail %v, want %v", tc.err, nl, tc.leader)
			}
		})
	}
	if toStatus(log, "m", nil) != nil {
		t.Fatal("toStatus(nil) is not nil")
	}
	if !strings.Contains(logs.String(), "secret path") || strings.Count(logs.String(), "request failed") != 1 {
		t.Fatalf("only the internal error is logged, with its details; log:\n%s", logs.String())
	}
}
