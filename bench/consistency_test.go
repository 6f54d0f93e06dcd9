package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/testcluster"
)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("Send: %w", context.DeadlineExceeded), ClassTimeout},
		{fmt.Errorf("Send: %w", client.ErrUnavailable), ClassUnavailable},
		{fmt.Errorf("Send: %w", client.ErrNotFound), "not_found"},
		{fmt.Errorf("Send: %w (last attempt: %w)", context.DeadlineExceeded, client.ErrUnavailable), ClassUnavailable},
		{fmt.Errorf("x"), "other"},
	} {
		if got := classOf(tc.err); got != tc.want {
			t.Errorf("classOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// Against the fake, whose followers answer every read NotLeader, reads at
// every level end on the leader and pass their checks.
func TestRunReadAtEveryLevel(t *testing.T) {
	for _, level := range []string{"leader", "linearizable", "at-least", "local"} {
		t.Run(level, func(t *testing.T) {
			c := newFakeCluster(t, "n2", "n1", "n2", "n3")
			cfg := fakeConfig(c, WorkloadRead)
			cfg.Consistency = level
			res, _ := runFake(t, cfg)
			checkCommon(t, res, cfg)
			if res.Consistency != level {
				t.Errorf("consistency %q, want %q", res.Consistency, level)
			}
		})
	}
}

// On a real cluster, subscribers at a level other than leader are spread
// over every node, and each still gets every message in order; reads at
// every level succeed.
func TestRunSpreadsOverRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-process cluster")
	}
	tc := testcluster.Start(t, 3)
	for _, level := range []string{"linearizable", "at-least", "local"} {
		t.Run(level, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Addrs = tc.Addrs()
			cfg.Workload = WorkloadMixed
			cfg.Consistency = level
			cfg.Clients, cfg.Channels, cfg.Subscribers, cfg.History = 4, 2, 9, 20
			cfg.Rate = 200
			cfg.Warmup, cfg.Duration = 100*time.Millisecond, 500*time.Millisecond
			res, _ := runFake(t, cfg)
			if res.Errors != 0 || res.ErrorClasses[ClassBadRead] != 0 {
				t.Errorf("errors %d: %v (first %s)", res.Errors, res.ErrorClasses, res.FirstError)
			}
			d := res.DeliveryStats
			if d.SubscribersComplete != d.Subscribers || d.Delivered != d.Expected {
				t.Errorf("delivery = %+v", d)
			}
			if len(d.SubscribersByNode) != 3 {
				t.Errorf("subscribers by node = %v, want all three nodes", d.SubscribersByNode)
			}
			if d.Missing != 0 || len(d.ByNode) != 3 {
				t.Errorf("missing %d, delivery by node %v; want 0 missing and all three nodes", d.Missing, d.ByNode)
			}
			var subs int
			var delivered int64
			for n, nd := range d.ByNode {
				if nd.Subscribers != d.SubscribersByNode[n] || nd.Missing != 0 {
					t.Errorf("node %s: %+v, %d subscribers by node", n, nd, d.SubscribersByNode[n])
				}
				subs += nd.Subscribers
				delivered += nd.Delivered
			}
			if subs != d.Subscribers || delivered != d.Delivered {
				t.Errorf("by node: %d subscribers, %d delivered; want %d, %d", subs, delivered, d.Subscribers, d.Delivered)
			}
		})
	}
}
