package grpcapi

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/internal/diskspace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// newFakeAlarm is an alarm over an injected free-space function that
// starts at free bytes, with a 64 MiB threshold.
func newFakeAlarm(t *testing.T, free *atomic.Uint64) *diskspace.Alarm {
	t.Helper()
	return diskspace.New(diskspace.Options{NodeID: "node1", Dir: t.TempDir(), MinFree: 64 << 20,
		Free: func(string) (uint64, error) { return free.Load(), nil }})
}

// Below min_free_bytes the leader refuses writes with ResourceExhausted and
// a message naming the node, writes nothing, keeps serving reads, and takes
// writes again once space returns.
func TestLowSpaceRefusesWritesAndResumes(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	alarm := newFakeAlarm(t, &free)
	c, _, lc, _ := newTestServerWithOptions(t, true, fanout.New(EncodeMessage), Options{Space: alarm})
	ctx := context.Background()
	if _, err := c.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "General"}); err != nil {
		t.Fatal(err)
	}
	send := func(cmid string) error {
		_, err := c.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "alice", Payload: []byte(cmid), ClientMessageId: cmid})
		return err
	}
	if err := send("m1"); err != nil {
		t.Fatal(err)
	}

	free.Store(10 << 20)
	alarm.Measure()
	before := digest(t, lc)
	for _, write := range []func() error{
		func() error { return send("m2") },
		func() error {
			_, err := c.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "other", Name: "Other"})
			return err
		},
	} {
		err := write()
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("write with 10 MiB free = %v, want ResourceExhausted", err)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "node1 has 10.0 MiB free in its data_dir, below min_free_bytes 64.0 MiB") {
			t.Errorf("message %q does not say which node and why", msg)
		}
	}
	if after := digest(t, lc); after != before {
		t.Fatal("a refused write changed the state")
	}
	h, err := c.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "general"})
	if err != nil || len(h.GetMessages()) != 1 {
		t.Fatalf("read during the alarm: %v, %d messages", err, len(h.GetMessages()))
	}

	free.Store(65 << 20)
	alarm.Measure()
	if err := send("m2"); err != nil {
		t.Fatalf("write after space returned: %v", err)
	}
}

func TestPeerDiskSpaceReportsTheLocalMeasurement(t *testing.T) {
	var free atomic.Uint64
	free.Store(5 << 20)
	p := NewPeer(nil, Options{Space: newFakeAlarm(t, &free)})
	resp, err := p.DiskSpace(context.Background(), &peerv1.DiskSpaceRequest{NodeId: "node2"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNodeId() != "node1" || resp.GetFreeBytes() != 5<<20 || resp.GetMinFreeBytes() != 64<<20 || resp.GetWriteError() != "" {
		t.Fatalf("DiskSpace = %v", resp)
	}
	empty, err := NewPeer(nil, Options{}).DiskSpace(context.Background(), &peerv1.DiskSpaceRequest{})
	if err != nil || empty.GetNodeId() != "" || empty.GetFreeBytes() != 0 {
		t.Fatalf("DiskSpace without an alarm = %v, %v", empty, err)
	}
}

// waitStatus polls the health service until service has want.
func waitStatus(t *testing.T, h *Health, service string, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := h.Check(context.Background(), healthReq(service))
		got := ""
		if err == nil {
			got = resp.GetStatus().String()
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %q = %s (%v), want %s", service, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
