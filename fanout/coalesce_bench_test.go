package fanout

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFanoutPaced publishes b.N one-message commits to a channel at
// 1,000 commits/s (the issue 13 cell, one message per commit: the case
// coalescing is for) while 333 subscribers (a node's third of 1,000) follow
// it as streams do (doorbell, then Since until nothing is left). It reports
// the subscribers' wake-ups per message and the process CPU per message, with
// and without coalescing. Run with -benchtime=2000x (b.N commits take b.N ms).
func BenchmarkFanoutPaced(b *testing.B) {
	for _, d := range []time.Duration{0, 5 * time.Millisecond} {
		b.Run(fmt.Sprintf("coalesce=%s", d), func(b *testing.B) {
			const subs = 333
			h := New(nil, WithCoalesce(d))
			var wakeups atomic.Int64
			var wg sync.WaitGroup
			total := uint64(b.N)
			for range subs {
				s := h.Subscribe("a")
				wg.Go(func() {
					defer s.Close()
					var cursor uint64
					for cursor < total {
						<-s.C
						wakeups.Add(1)
						for {
							items, ok := s.Since(cursor, 1000, 1<<20)
							if !ok || len(items) == 0 {
								break
							}
							cursor = items[len(items)-1].Sequence
						}
					}
				})
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			tick := time.NewTicker(time.Millisecond)
			for seq := uint64(1); seq <= total; seq++ {
				<-tick.C
				h.Publish(msgs("a", seq, seq))
			}
			tick.Stop()
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(wakeups.Load())/float64(b.N)/subs, "wakeups/msg/sub")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/msg")
		})
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
