package bench

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// observer learns what the client does behind a call from its debug log:
// client.Client reports every retried attempt ("retrying", with the
// attempt's error) and every resumed subscription ("subscription lost;
// resuming") there, and has no other hook yet. It counts them, and their
// errors by class, into the run's counters. It is a slog.Handler, safe for
// concurrent use.
type observer struct {
	errs         *ErrorCounts
	retries      atomic.Int64 // retried attempts of unary calls
	redirects    atomic.Int64 // of which answered not leader (the client moved to another node)
	resubscribes atomic.Int64 // subscription streams resumed by the client
}

// Messages of the client's debug log that observer counts.
const (
	logRetrying    = "retrying"
	logResubscribe = "subscription lost; resuming"
)

// Enabled reports whether the client's debug records are wanted: they are.
func (o *observer) Enabled(context.Context, slog.Level) bool { return true }

// Handle counts a retry or a resumed subscription; other records are
// dropped. It never fails.
func (o *observer) Handle(_ context.Context, r slog.Record) error {
	prefix := ""
	switch r.Message {
	case logRetrying:
		o.retries.Add(1)
	case logResubscribe:
		o.resubscribes.Add(1)
		prefix = "subscribe_"
	default:
		return nil
	}
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			err, _ = a.Value.Any().(error)
			return false
		}
		return true
	})
	class := "other"
	if err != nil {
		class = classOf(err)
	}
	if r.Message == logRetrying && (class == ClassNotLeader || class == ClassNoLeader) {
		o.redirects.Add(1)
	}
	o.errs.Add(prefix+class, err)
	return nil
}

// WithAttrs returns o: the records it counts carry their own attributes.
func (o *observer) WithAttrs([]slog.Attr) slog.Handler { return o }

// WithGroup returns o.
func (o *observer) WithGroup(string) slog.Handler { return o }

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
