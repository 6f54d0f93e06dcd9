package torture

import "github.com/raftogram/raftogram/internal/netproxy"

// LinkState is the state of one directed Raft link (netproxy.Up, Reset or
// Blackhole).
type LinkState = netproxy.State

// The link states the nemesis uses.
const (
	LinkUp        = netproxy.Up
	LinkReset     = netproxy.Reset
	LinkBlackhole = netproxy.Blackhole
)

// Link is the proxy of the directed link From->To: node From's
// configuration lists node To at the proxy's address, so every connection
// From opens to To (carrying From's RPCs to To and To's replies to them)
// goes through it. Cutting the link therefore blocks From's requests to
// To; To's requests to From travel on the link To->From.
type Link struct {
	From, To int
	*netproxy.Proxy
}

// newLink starts the proxy of the link from->to in front of target (To's
// real raft_bind_addr).
func newLink(from, to int, target string) (*Link, error) {
	p, err := netproxy.New(target)
	if err != nil {
		return nil, err
	}
	return &Link{From: from, To: to, Proxy: p}, nil
}
