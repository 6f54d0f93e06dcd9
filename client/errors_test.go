package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFromStatusMapsEveryCode checks the one mapping: every gRPC code
// but OK matches exactly one sentinel.
func TestFromStatusMapsEveryCode(t *testing.T) {
	want := map[codes.Code]error{
		codes.Canceled:           context.Canceled,
		codes.Unknown:            ErrInternal,
		codes.InvalidArgument:    ErrInvalidArgument,
		codes.DeadlineExceeded:   context.DeadlineExceeded,
		codes.NotFound:           ErrNotFound,
		codes.AlreadyExists:      ErrAlreadyExists,
		codes.PermissionDenied:   ErrPermissionDenied,
		codes.ResourceExhausted:  ErrResourceExhausted,
		codes.FailedPrecondition: ErrFailedPrecondition,
		codes.Aborted:            ErrUnavailable,
		codes.OutOfRange:         ErrOutOfRange,
		codes.Unimplemented:      ErrUnimplemented,
		codes.Internal:           ErrInternal,
		codes.Unavailable:        ErrUnavailable,
		codes.DataLoss:           ErrInternal,
		codes.Unauthenticated:    ErrUnauthenticated,
	}
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ { // OK is no error
		err := fromStatus(status.Error(c, "boom"))
		if err.Code != c || err.Message != "boom" {
			t.Errorf("%v: got code %v message %q", c, err.Code, err.Message)
		}
		matched := 0
		for _, s := range kinds {
			if errors.Is(err, s) {
				matched++
			}
		}
		if !errors.Is(err, want[c]) || matched != 1 {
			t.Errorf("%v: %v matches %d sentinels, want only %v", c, err, matched, want[c])
		}
		if k := Kind(fmt.Errorf("wrapped: %w", err)); k != want[c] {
			t.Errorf("%v: Kind = %v, want %v", c, k, want[c])
		}
		if status.Code(err) != c {
			t.Errorf("%v: status.Code of the *Error = %v", c, status.Code(err))
		}
	}
}

func TestFromStatusNotLeaderDetail(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "not leader").WithDetails(&raftogramv1.NotLeader{LeaderGrpcTarget: "10.0.0.2:9000", RaftLeaderId: "node2"})
	if err != nil {
		t.Fatal(err)
	}
	e := fromStatus(st.Err())
	if !errors.Is(e, ErrNotLeader) || errors.Is(e, ErrFailedPrecondition) || e.Leader != "10.0.0.2:9000" || e.LeaderID != "node2" || !e.NotLeaderDetail() {
		t.Fatalf("got %+v", e)
	}
	// Unavailable with an empty detail: no leader known yet.
	st, _ = status.New(codes.Unavailable, "no leader").WithDetails(&raftogramv1.NotLeader{})
	e = fromStatus(st.Err())
	if !errors.Is(e, ErrUnavailable) || errors.Is(e, ErrNotLeader) || e.Leader != "" || !e.NotLeaderDetail() {
		t.Fatalf("got %+v", e)
	}
	if e := fromStatus(status.Error(codes.Unavailable, "down")); e.NotLeaderDetail() {
		t.Fatal("a plain Unavailable claims a NotLeader detail")
	}
	// A wrapped *Error stays the same value.
	if fromStatus(errors.Join(errors.New("x"), e)) != e {
		t.Fatal("wrapped *Error not found")
	}
	// A plain error is Unknown: internal.
	if e := fromStatus(errors.New("plain")); !errors.Is(e, ErrInternal) || e.Code != codes.Unknown {
		t.Fatalf("plain error: %+v", e)
	}
}

func TestCtxErrorMatchesContextAndLastAttempt(t *testing.T) {
	c := &Client{ctx: context.Background()}
	last := fromStatus(status.Error(codes.Unavailable, "down"))
	err := c.ctxError("Send", context.DeadlineExceeded, last)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%v does not match both", err)
	}
	if k := Kind(err); k != ErrUnavailable {
		t.Fatalf("Kind of a deadline after a node's answer = %v, want the node's kind", k)
	}
	for _, tc := range []struct{ err, want error }{
		{nil, nil},
		{errors.New("plain"), nil},
		{fmt.Errorf("Subscribe: %w", ErrClosed), ErrClosed},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), context.DeadlineExceeded},
	} {
		if k := Kind(tc.err); k != tc.want {
			t.Errorf("Kind(%v) = %v, want %v", tc.err, k, tc.want)
		}
	}
}

// TestFullJitterBounds checks that pauses stay within [0, min(max, base·2ⁿ)]
// and actually spread over that range.
func TestFullJitterBounds(t *testing.T) {
	base, maxB := 10*time.Millisecond, 300*time.Millisecond
	for attempt := range 70 {
		ceil := maxB
		if attempt < 5 {
			ceil = base << attempt
		}
		var lo, hi time.Duration = ceil, 0
		for range 2000 {
			d := fullJitter(base, maxB, attempt)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > ceil/10 || hi < ceil*9/10 {
			t.Errorf("attempt %d: samples span only [%v, %v] of [0, %v]", attempt, lo, hi, ceil)
		}
	}
}

func TestParseConsistency(t *testing.T) {
	for c := ConsistencyDefault; c <= Local; c++ {
		got, err := ParseConsistency(c.String())
		if err != nil || got != c {
			t.Errorf("%v: %v, %v", c, got, err)
		}
	}
	if _, err := ParseConsistency("strong"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("strong: %v", err)
	}
}

// deadlineOnly is a context whose deadline is known but whose timer has
// not fired: Err is still nil, as it can be for an instant after the
// deadline, when gRPC has already ended the attempt.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (d deadlineOnly) Deadline() (time.Time, bool) { return d.at, true }

// An attempt gRPC ended at the deadline counts as cut by the context even
// before ctx.Err() says so (TestLeaderFollowing lost the last answer's kind
// to that race about one run in five).
func TestCtxEndedAtTheDeadline(t *testing.T) {
	if err := ctxEnded(deadlineOnly{context.Background(), time.Now().Add(-time.Millisecond)}); err != context.DeadlineExceeded {
		t.Fatalf("past deadline, timer not fired: %v, want DeadlineExceeded", err)
	}
	if err := ctxEnded(deadlineOnly{context.Background(), time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("future deadline: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ctxEnded(ctx); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}
