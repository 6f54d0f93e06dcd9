package torture

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// LinkState is the state of one directed Raft link.
type LinkState int

const (
	// LinkUp forwards bytes both ways.
	LinkUp LinkState = iota
	// LinkReset closes every connection on the link and refuses new ones:
	// the sender sees connection errors at once.
	LinkReset
	// LinkBlackhole keeps connections open but silently drops every byte,
	// in both directions: the sender sees timeouts. Healing closes the
	// connections that went through the hole (their streams lost bytes).
	LinkBlackhole
)

func (s LinkState) String() string {
	switch s {
	case LinkUp:
		return "up"
	case LinkReset:
		return "reset"
	case LinkBlackhole:
		return "blackhole"
	}
	return "?"
}

// Link is a TCP proxy for the directed link From->To: node From's
// configuration lists node To at the link's address, so every connection
// From opens to To (carrying From's RPCs to To and To's replies to them)
// goes through it. Cutting the link therefore blocks From's requests to
// To; To's requests to From travel on the link To->From.
type Link struct {
	From, To int
	Addr     string // the address From dials
	target   string // To's real raft_bind_addr

	ln net.Listener

	mu     sync.Mutex
	state  LinkState
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

// newLink listens on a free loopback port and forwards to target.
func newLink(from, to int, target string) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &Link{From: from, To: to, Addr: ln.Addr().String(), target: target, ln: ln, pairs: map[*pair]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// State returns the link's current state.
func (l *Link) State() LinkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Set changes the link's state. Going to LinkReset closes every open
// connection; leaving LinkBlackhole closes the connections that lost bytes.
func (l *Link) Set(s LinkState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.state
	l.state = s
	if s == LinkReset || (old == LinkBlackhole && s != LinkBlackhole) {
		for p := range l.pairs {
			p.close()
			delete(l.pairs, p)
		}
	}
}

// Close stops the proxy and closes every connection.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	for p := range l.pairs {
		p.close()
		delete(l.pairs, p)
	}
	l.mu.Unlock()
	l.ln.Close()
	l.wg.Wait()
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(c)
		}()
	}
}

func (l *Link) serve(c net.Conn) {
	l.mu.Lock()
	st, closed := l.state, l.closed
	l.mu.Unlock()
	if closed || st == LinkReset {
		c.Close()
		return
	}
	p := &pair{client: c}
	if st == LinkUp {
		s, err := net.DialTimeout("tcp", l.target, time.Second)
		if err != nil {
			c.Close()
			return
		}
		p.server = s
	}
	l.mu.Lock()
	if l.closed || l.state != st {
		// The state changed while dialing: start over on a clean slate.
		l.mu.Unlock()
		p.close()
		return
	}
	l.pairs[p] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.pairs, p)
		l.mu.Unlock()
		p.close()
	}()
	if p.server == nil { // blackhole: swallow until healed or closed
		io.Copy(io.Discard, c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { l.pipe(p.server, p.client); done <- struct{}{} }()
	go func() { l.pipe(p.client, p.server); done <- struct{}{} }()
	<-done
	p.close()
	<-done
}

// pipe copies src to dst, dropping the bytes while the link is a
// blackhole.
func (l *Link) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && l.State() == LinkUp {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
