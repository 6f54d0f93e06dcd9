package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// Limiter spreads operations evenly over time at a fixed total rate shared by
// every caller: the k-th call to Wait (counting from 0) is scheduled at
// start + k/rate. It is an open-loop schedule, not a token bucket: a caller
// that falls behind (all clients busy, a server stall) finds its slot already
// due and goes at once, so the backlog is worked off rather than forgotten,
// and the latency measured from the scheduled start shows the stall.
//
// A nil *Limiter never waits. Limiter is safe for concurrent use.
type Limiter struct {
	start    time.Time
	interval float64 // nanoseconds between slots
	next     atomic.Int64
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
}

// NewLimiter returns a limiter for rate operations per second whose first
// slot is at start, or nil when rate <= 0 (no limit).
func NewLimiter(rate float64, start time.Time) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{start: start, interval: float64(time.Second) / rate, now: time.Now, sleep: sleepCtx}
}

// Wait claims the next slot, sleeps until it is due and returns its scheduled
// time. Without a limit it returns the current time at once. It returns the
// context's error, with the slot's time, when ctx ends first.
func (l *Limiter) Wait(ctx context.Context) (time.Time, error) {
	if l == nil {
		return time.Now(), ctx.Err()
	}
	k := l.next.Add(1) - 1
	at := l.start.Add(time.Duration(float64(k) * l.interval))
	if d := at.Sub(l.now()); d > 0 {
		if err := l.sleep(ctx, d); err != nil {
			return at, err
		}
	}
	return at, nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
