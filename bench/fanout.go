package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// NodeDelivery is the part of a subscribe run's delivery that one node
// served: the subscribers whose first batch came from it.
type NodeDelivery struct {
	Subscribers int   `json:"subscribers"`
	Delivered   int64 `json:"delivered"` // messages received in order
	Missing     int64 `json:"missing"`   // acknowledged to the channel, never received
	// Receive time minus created_at (the leader's clock when it accepted
	// the message, before its Raft commit), over measured messages.
	AcceptP50Ms float64 `json:"accept_delivery_p50_ms"`
	AcceptP99Ms float64 `json:"accept_delivery_p99_ms"`
}

// deliveryByNode splits the stopped subscribers' deliveries by the node
// that served them; nil when no node was reported.
func deliveryByNode(subs []*subscriber) map[string]NodeDelivery {
	hists := map[string]*Histogram{}
	out := map[string]NodeDelivery{}
	for _, s := range subs {
		if s.node == "" {
			continue
		}
		nd := out[s.node]
		final := int64(s.ch.maxSeq.Load())
		nd.Subscribers++
		nd.Delivered += min(s.delivered, final)
		nd.Missing += max(final-s.delivered, 0)
		out[s.node] = nd
		if hists[s.node] == nil {
			hists[s.node] = &Histogram{}
		}
		hists[s.node].Merge(&s.accept)
	}
	if len(out) == 0 {
		return nil
	}
	for n, h := range hists {
		nd := out[n]
		nd.AcceptP50Ms = ms(h.Percentile(50))
		nd.AcceptP99Ms = ms(h.Percentile(99))
		out[n] = nd
	}
	return out
}

// writeByNode writes one summary line per node of byNode.
func writeByNode(b *strings.Builder, byNode map[string]NodeDelivery) {
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		nd := byNode[n]
		fmt.Fprintf(b, "  %-12s %d subscribers, delivered %d, missing %d; accept->recv p50 %s  p99 %s ms\n",
			n, nd.Subscribers, nd.Delivered, nd.Missing, fms(nd.AcceptP50Ms), fms(nd.AcceptP99Ms))
	}
}
