package grpcapi

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Peers holds one gRPC client connection per peer address, created on first
// use and kept for the life of the node. A node has one, shared by
// everything that calls another node: followers forwarding writes and
// asking the leader for read indexes, Admin's cluster view, and the
// free-space polls. It is safe for concurrent use.
type Peers struct {
	creds  func(addr string) (credentials.TransportCredentials, error)
	route  map[string]string // gRPC address as configured -> address to dial, where they differ
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewPeers returns an empty pool whose connections use the credentials creds
// returns for a peer's gRPC address (plaintext when creds is nil) and dial
// the address route maps it to (config peer_grpc_addr), or the address
// itself when route has no entry for it.
func NewPeers(creds func(addr string) (credentials.TransportCredentials, error), route map[string]string) *Peers {
	if creds == nil {
		creds = func(string) (credentials.TransportCredentials, error) { return insecure.NewCredentials(), nil }
	}
	return &Peers{creds: creds, route: route, conns: map[string]*grpc.ClientConn{}}
}

// errPeersClosed is returned by Conn after Close.
var errPeersClosed = errors.New("peer connections closed: the node is shutting down")

// Conn returns the connection to the peer whose gRPC address is addr (as
// hints and the configuration name it; dialed at its route), creating it
// (it connects lazily, on the first call) if this is the first use. It
// returns an error after Close or when addr cannot be parsed as a target.
func (p *Peers) Conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPeersClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	tc, err := p.creds(addr)
	if err != nil {
		return nil, fmt.Errorf("connect to peer %s: %w", addr, err)
	}
	target := addr
	if r := p.route[addr]; r != "" {
		target = r
	}
	c, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(tc))
	if err != nil {
		return nil, fmt.Errorf("connect to peer %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection; later Conn calls fail. It is idempotent
// and returns the errors met, joined.
func (p *Peers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for addr, c := range p.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to peer %s: %w", addr, err))
		}
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}
