package bench

import (
	"sync"
	"sync/atomic"

	"github.com/raftogram/raftogram/client"
)

// observer counts what the client does behind a call, through
// client.Config.OnRetry: every retried attempt and every resumed
// subscription, and their errors by class, into the run's counters. It is
// safe for concurrent use.
type observer struct {
	errs         *ErrorCounts
	retries      atomic.Int64 // retried attempts of unary calls
	redirects    atomic.Int64 // of which answered not leader (the client moved to another node)
	resubscribes atomic.Int64 // subscription streams resumed by the client
}

// onRetry is the client's OnRetry hook.
func (o *observer) onRetry(r client.Retry) {
	prefix := ""
	if r.Op == "Subscribe" {
		o.resubscribes.Add(1)
		prefix = "subscribe_"
	} else {
		o.retries.Add(1)
	}
	class := "other"
	if r.Err != nil {
		class = classOf(r.Err)
	}
	if prefix == "" && (class == ClassNotLeader || class == ClassNoLeader) {
		o.redirects.Add(1)
	}
	o.errs.Add(prefix+class, r.Err)
}

// leaderWatch counts changes of the node that answers writes, as the
// client reports it after each successful call (client.Client.Leader).
type leaderWatch struct {
	last    atomic.Pointer[string] // read without the lock on the fast path
	mu      sync.Mutex
	changes int64
}

// saw records that leader answered a call ("" is ignored).
func (l *leaderWatch) saw(leader string) {
	if p := l.last.Load(); leader == "" || p != nil && *p == leader {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.last.Load(); p == nil || *p != leader {
		if p != nil {
			l.changes++
		}
		l.last.Store(&leader)
	}
}

// Leader is the last leader seen, or "".
func (l *leaderWatch) Leader() string {
	if p := l.last.Load(); p != nil {
		return *p
	}
	return ""
}

// Changes is how many times the leader changed so far.
func (l *leaderWatch) Changes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes
}
