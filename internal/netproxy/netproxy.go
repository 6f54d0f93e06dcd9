// Package netproxy is a loopback TCP proxy that tests put in front of a
// node's Raft port to partition it: Reset refuses and closes connections
// (peers see errors at once), Blackhole keeps them open but drops every
// byte (peers see timeouts). The torture harness and the in-process
// cluster tests share it.
package netproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// State is what a Proxy does with the bytes it carries.
type State int

const (
	// Up forwards bytes both ways.
	Up State = iota
	// Reset closes every connection and refuses new ones: the sender sees
	// connection errors at once.
	Reset
	// Blackhole keeps connections open but silently drops every byte, in
	// both directions: the sender sees timeouts. Leaving it closes the
	// connections that went through the hole (their streams lost bytes).
	Blackhole
)

// String returns "up", "reset" or "blackhole".
func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Reset:
		return "reset"
	case Blackhole:
		return "blackhole"
	}
	return "?"
}

// Proxy forwards every connection accepted on Addr to a target address,
// according to its State.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	state  State
	pairs  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup
}

type pair struct {
	client, server net.Conn // server is nil for a connection held in a blackhole
}

func (p *pair) close() {
	p.client.Close()
	if p.server != nil {
		p.server.Close()
	}
}

// New listens on a free loopback port and forwards to target, Up. It
// returns an error if it cannot listen.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, pairs: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// State returns the proxy's current state.
func (p *Proxy) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Set changes the proxy's state. Going to Reset closes every open
// connection; leaving Blackhole closes the connections that lost bytes.
func (p *Proxy) Set(s State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.state
	p.state = s
	if s == Reset || (old == Blackhole && s != Blackhole) {
		for c := range p.pairs {
			c.close()
			delete(p.pairs, c)
		}
	}
}

// Close stops the proxy, closes every connection and waits for its
// goroutines. It returns the listener's close error.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.pairs {
		c.close()
		delete(p.pairs, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *Proxy) serve(c net.Conn) {
	p.mu.Lock()
	st, closed := p.state, p.closed
	p.mu.Unlock()
	if closed || st == Reset {
		c.Close()
		return
	}
	pr := &pair{client: c}
	if st == Up {
		s, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			c.Close()
			return
		}
		pr.server = s
	}
	p.mu.Lock()
	if p.closed || p.state != st {
		// The state changed while dialing: start over on a clean slate.
		p.mu.Unlock()
		pr.close()
		return
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pairs, pr)
		p.mu.Unlock()
		pr.close()
	}()
	if pr.server == nil { // blackhole: swallow until healed or closed
		io.Copy(io.Discard, c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(pr.server, pr.client); done <- struct{}{} }()
	go func() { p.pipe(pr.client, pr.server); done <- struct{}{} }()
	<-done
	pr.close()
	<-done
}

// pipe copies src to dst, dropping the bytes while the proxy is a
// blackhole.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.State() == Up {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
