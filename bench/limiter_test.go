package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimiterNilNeverWaits(t *testing.T) {
	var l *Limiter
	if NewLimiter(0, time.Now()) != nil || NewLimiter(-1, time.Now()) != nil {
		t.Fatal("a rate <= 0 should mean no limiter")
	}
	start := time.Now()
	for range 1000 {
		if _, err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if time.Since(start) > time.Second {
		t.Fatal("nil limiter waited")
	}
}

// fakeClock drives a Limiter without real sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return nil
}

func TestLimiterSchedulesEvenly(t *testing.T) {
	start := time.Unix(1000, 0)
	clock := &fakeClock{now: start}
	l := NewLimiter(250, start) // one slot every 4ms
	l.now, l.sleep = clock.Now, clock.Sleep
	for k := range 10 {
		at, err := l.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := start.Add(time.Duration(k) * 4 * time.Millisecond)
		if !at.Equal(want) || !clock.Now().Equal(want) {
			t.Fatalf("slot %d at %v (clock %v), want %v", k, at.Sub(start), clock.Now().Sub(start), want.Sub(start))
		}
	}
}

func TestLimiterCatchesUpAfterStall(t *testing.T) {
	start := time.Unix(1000, 0)
	clock := &fakeClock{now: start.Add(time.Second)} // one second late
	var slept atomic.Int64
	l := NewLimiter(100, start)
	l.now = clock.Now
	l.sleep = func(ctx context.Context, d time.Duration) error { slept.Add(1); return clock.Sleep(ctx, d) }
	// The 100 overdue slots go at once, with their scheduled times.
	for k := range 100 {
		at, _ := l.Wait(context.Background())
		if want := start.Add(time.Duration(k) * 10 * time.Millisecond); !at.Equal(want) {
			t.Fatalf("slot %d scheduled at %v, want %v", k, at.Sub(start), want.Sub(start))
		}
	}
	if slept.Load() != 0 {
		t.Fatalf("slept %d times while catching up", slept.Load())
	}
	l.Wait(context.Background()) // slot 100 is due now
	l.Wait(context.Background()) // slot 101 is 10ms away
	if slept.Load() != 1 {
		t.Fatalf("slept %d times, want 1 once caught up", slept.Load())
	}
}

func TestLimiterStopsWithContext(t *testing.T) {
	l := NewLimiter(1, time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Wait(ctx); err == nil {
		t.Fatal("Wait returned nil although ctx ended before the slot")
	}
}

func TestLimiterRateAcrossGoroutines(t *testing.T) {
	const rate, window = 2000.0, 300 * time.Millisecond
	start := time.Now()
	l := NewLimiter(rate, start)
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(window))
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				if _, err := l.Wait(ctx); err != nil {
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	want := rate * window.Seconds()
	if got := float64(n.Load()); got < want*0.8 || got > want*1.05+16 {
		t.Fatalf("%v ops in %v at %v ops/s, want about %v", got, window, rate, want)
	}
}
