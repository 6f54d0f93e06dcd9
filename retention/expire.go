// Package retention runs the leader's side of message expiry: the state
// machine never reads a clock, so age limits are enforced by
// MessagesExpired events that the leader proposes with its own clock (count
// and byte limits need none: the projection enforces them as it applies
// sends).
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// Cluster is the node the Expirer proposes through.
type Cluster interface {
	// Term and IsLeader tell whether this node leads now.
	Term() uint64
	IsLeader(term uint64) bool
	// Apply commits events through the log (on the leader only).
	Apply(ctx context.Context, events []domain.Event) ([]domain.Result, error)
}

// Store is the node's projection, asked whether anything is due.
type Store interface {
	// ExpiryDue reports whether a MessagesExpired at now with this dedup
	// horizon would remove anything or change the recorded horizon.
	ExpiryDue(ctx context.Context, now time.Time, dedupHorizon time.Duration) (bool, error)
}

// Options configure an Expirer.
type Options struct {
	// Interval between checks (config retention.expire_interval).
	Interval time.Duration
	// DedupHorizon is carried in every MessagesExpired
	// (config retention.dedup_horizon; 0 keeps dedup rows forever).
	DedupHorizon time.Duration
	// Now is the leader's clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Expirer proposes MessagesExpired while its node leads and something is
// due.
type Expirer struct {
	cluster Cluster
	store   Store
	opts    Options
}

// New returns an Expirer; start it with Run.
func New(c Cluster, s Store, opts Options) *Expirer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Expirer{cluster: c, store: s, opts: opts}
}

// Run checks every Interval until ctx ends. A failed check or proposal is
// logged and retried at the next tick: expiry is never urgent, and losing
// leadership between the check and the proposal is normal.
func (e *Expirer) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				e.opts.Logger.Warn("message expiry failed; retrying at the next tick", "error", err)
			}
		}
	}
}

// Tick proposes one MessagesExpired if this node leads and the projection
// says one is due, and returns how many messages it removed (0 when
// nothing was proposed). Errors come from the projection or the proposal.
func (e *Expirer) Tick(ctx context.Context) (uint64, error) {
	if !e.cluster.IsLeader(e.cluster.Term()) {
		return 0, nil
	}
	now := e.opts.Now()
	due, err := e.store.ExpiryDue(ctx, now, e.opts.DedupHorizon)
	if err != nil || !due {
		return 0, err
	}
	rs, err := e.cluster.Apply(ctx, []domain.Event{domain.MessagesExpired{Now: now, DedupHorizon: e.opts.DedupHorizon}})
	if err != nil {
		return 0, err
	}
	if err := rs[0].Err; err != nil {
		return 0, err
	}
	if n := rs[0].Trimmed; n > 0 {
		e.opts.Logger.Debug("expired messages", "removed", n)
	}
	return rs[0].Trimmed, nil
}
