package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// PeerTLS is the TLS material of the Raft transport (a *certs.Store). With
// it, peers speak mutual TLS: a connection whose certificate does not chain
// to the cluster CA or names no configured peer is refused at the
// handshake.
type PeerTLS interface {
	// PeerServerConfig returns the config of the Raft listener, accepting
	// only certificates that name one of peers.
	PeerServerConfig(peers []string) *tls.Config
	// PeerClientConfig returns the config to dial the peer peerID.
	PeerClientConfig(peerID string) *tls.Config
}

// handshakeTimeout bounds a Raft TLS handshake, so a client that connects
// and stays silent holds a goroutine for this long at most.
const handshakeTimeout = 10 * time.Second

// streamLayer is raft's TCP stream layer over a listener the caller bound,
// advertising the address peers dial (which differs from the listener's
// when it is bound to 0.0.0.0 or inside a container). With tls set, every
// connection in either direction is mutual TLS between configured peers.
type streamLayer struct {
	net.Listener
	advertise net.Addr

	tls    PeerTLS
	server *tls.Config
	ids    map[string]string // raft address -> node ID
	log    *slog.Logger

	silentWait time.Duration // how long a new plaintext connection may stay silent; handshakeTimeout when 0

	// The accepted connections whose raft handler has not returned yet.
	// raft's transport serves each on a goroutine it does not wait for on
	// Shutdown, and a heartbeat it is handling writes the term to the
	// stable store; drain lets those end before the stores close.
	mu       sync.Mutex
	accepted map[*trackedConn]struct{}
	handlers sync.WaitGroup
}

// trackedConn is an accepted connection; raft's handler closes it when it
// returns.
type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

// Close closes the connection and counts its handler as returned.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.accepted, c)
		c.s.mu.Unlock()
		c.s.handlers.Done()
	})
	return err
}

// track registers an accepted connection.
func (s *streamLayer) track(c net.Conn) net.Conn {
	t := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	if s.accepted == nil {
		s.accepted = map[*trackedConn]struct{}{}
	}
	s.accepted[t] = struct{}{}
	s.handlers.Add(1)
	s.mu.Unlock()
	return t
}

// drain closes every accepted connection (unblocking raft's handlers
// waiting to read) and waits, at most d, for the handlers to return. Call
// it after raft's Shutdown (which closes the listener), before closing the
// stores. It reports whether every handler returned.
func (s *streamLayer) drain(d time.Duration) bool {
	s.mu.Lock()
	for c := range s.accepted {
		c.Conn.Close() // not c.Close: the handler's own Close counts it done
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.tls == nil {
		return net.DialTimeout("tcp", string(address), timeout)
	}
	id, ok := s.ids[string(address)]
	if !ok {
		return nil, fmt.Errorf("raft tls: %s is no configured peer's raft address", address)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{Config: s.tls.PeerClientConfig(id)}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		s.log.Warn("raft: tls connection to peer failed", "peer", id, "addr", string(address), "err", err)
		return nil, fmt.Errorf("raft tls: dial %s (%s): %w", id, address, err)
	}
	return c, nil
}

// Accept returns the next connection; with TLS, one whose handshake runs
// on its first read or write (not here, so a silent client cannot stall
// the accept loop) and, when it fails, is logged with the remote address
// and closed.
//
// A plaintext connection that sends nothing within handshakeTimeout is
// closed too: a peer writes its RPC right after dialing, so only a client
// that is not raft holds a silent connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return c, err
	}
	if s.tls == nil {
		wait := s.silentWait
		if wait == 0 {
			wait = handshakeTimeout
		}
		return s.track(&firstByteConn{Conn: c, log: s.log, wait: wait}), nil
	}
	return s.track(&handshakeConn{Conn: tls.Server(c, s.server), log: s.log}), nil
}

// firstByteConn gives its first read handshakeTimeout to get data, then
// reads without a deadline (raft's pooled connections may rest between
// RPCs).
type firstByteConn struct {
	net.Conn
	log  *slog.Logger
	wait time.Duration
	once sync.Once
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	first := false
	c.once.Do(func() {
		first = true
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.wait))
	})
	n, err := c.Conn.Read(p)
	if first {
		if err != nil {
			c.log.Warn("raft: closed a connection that sent nothing", "remote", c.RemoteAddr().String(), "err", err)
			c.Conn.Close()
			return n, err
		}
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

// handshakeConn completes the server handshake before the first read or
// write and logs a refused peer.
type handshakeConn struct {
	*tls.Conn
	log  *slog.Logger
	once sync.Once
	err  error
}

func (c *handshakeConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("raft tls handshake: %w", err)
			c.log.Warn("raft: refused a connection", "remote", c.RemoteAddr().String(), "err", err)
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// newTransport returns raft's network transport over ln, and its stream
// layer (to drain on close). With pt set it speaks mutual TLS with the
// members of peers only.
func newTransport(ln net.Listener, advertise string, peers []Peer, pt PeerTLS, log *slog.Logger, cfg *raft.NetworkTransportConfig) (*raft.NetworkTransport, *streamLayer, error) {
	if _, _, err := net.SplitHostPort(advertise); err != nil {
		return nil, nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
	}
	sl := &streamLayer{Listener: ln, advertise: tcpAddr(advertise), log: log}
	if pt != nil {
		ids := make([]string, 0, len(peers))
		sl.ids = make(map[string]string, len(peers))
		for _, p := range peers {
			ids = append(ids, p.ID)
			sl.ids[p.RaftAddr] = p.ID
		}
		sl.tls, sl.server = pt, pt.PeerServerConfig(ids)
	}
	cfg.Stream = sl
	return raft.NewNetworkTransportWithConfig(cfg), sl, nil
}
