package cluster

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer over a listener the caller bound,
// advertising the address peers dial (which differs from the listener's
// when it is bound to 0.0.0.0 or inside a container).
type streamLayer struct {
	net.Listener
	advertise net.Addr
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

func newTransport(ln net.Listener, advertise string, cfg *raft.NetworkTransportConfig) (*raft.NetworkTransport, error) {
	if _, _, err := net.SplitHostPort(advertise); err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
	}
	cfg.Stream = &streamLayer{Listener: ln, advertise: tcpAddr(advertise)}
	return raft.NewNetworkTransportWithConfig(cfg), nil
}
