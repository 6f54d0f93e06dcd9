package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted values.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[nearestRank(p, uint64(len(sorted)))-1]
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Percentile(50) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatalf("empty histogram answers non-zero: count %d p50 %v max %v", h.Count(), h.Percentile(50), h.Max())
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := range 300 {
		h.Record(time.Duration(v))
	}
	for _, p := range []float64{1, 50, 90, 99, 100} {
		want := time.Duration(nearestRank(p, 300) - 1)
		if got := h.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func TestHistogramPercentilesWithinResolution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-50ms": func() time.Duration { return time.Duration(rng.Int64N(int64(50 * time.Millisecond))) },
		"lognormal ~1ms": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(time.Millisecond))
		},
		"bimodal": func() time.Duration {
			if rng.IntN(100) == 0 {
				return 2*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
			}
			return 300*time.Microsecond + time.Duration(rng.Int64N(int64(200*time.Microsecond)))
		},
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 100_000)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, p := range []float64{0.1, 1, 10, 50, 90, 99, 99.9, 99.99, 100} {
				want, got := exactPercentile(vals, p), h.Percentile(p)
				// The answer is the top of the true value's bucket: at or
				// above it, by at most 1/256.
				if got < want || float64(got-want) > float64(want)/subCount+1 {
					t.Errorf("p%v = %v, exact %v (off by %.3f%%)", p, got, want, 100*float64(got-want)/float64(want))
				}
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := time.Duration(sum / float64(len(vals))); absDur(h.Mean()-mean) > time.Microsecond {
				t.Errorf("mean = %v, want %v", h.Mean(), mean)
			}
		})
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestHistogramNearestRank(t *testing.T) {
	// 1000 values 1..1000 ms: p99.9 is the 999th, not the 1000th (float
	// rounding of 99.9/100*1000 must not push the rank up).
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Millisecond}, {90, 900 * time.Millisecond}, {99, 990 * time.Millisecond}, {99.9, 999 * time.Millisecond}, {100, time.Second}} {
		got := h.Percentile(tt.p)
		if got < tt.want || float64(got-tt.want) > float64(tt.want)/subCount {
			t.Errorf("p%v = %v, want %v (within 1/256 above)", tt.p, got, tt.want)
		}
	}
	if r := nearestRank(99.9, 1000); r != 999 {
		t.Errorf("nearestRank(99.9, 1000) = %d, want 999", r)
	}
	if r := nearestRank(50, 1); r != 1 {
		t.Errorf("nearestRank(50, 1) = %d, want 1", r)
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		v := time.Duration(rng.Int64N(int64(time.Second)))
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Histogram{})
	if m.Count() != all.Count() || m.Max() != all.Max() || m.Min() != all.Min() || m.Mean() != all.Mean() {
		t.Fatalf("merged count/min/max/mean %d/%v/%v/%v, want %d/%v/%v/%v",
			m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, p := range []float64{1, 50, 99, 99.9} {
		if m.Percentile(p) != all.Percentile(p) {
			t.Errorf("merged p%v = %v, want %v", p, m.Percentile(p), all.Percentile(p))
		}
	}
}

func TestHistogramExtremes(t *testing.T) {
	var h Histogram
	h.Record(-time.Second) // counts as 0
	h.Record(time.Duration(math.MaxInt64))
	if h.Min() != 0 || h.Max() != time.Duration(math.MaxInt64) {
		t.Fatalf("min/max = %v/%v", h.Min(), h.Max())
	}
	if h.Percentile(100) != time.Duration(math.MaxInt64) || h.Percentile(50) != 0 {
		t.Fatalf("p50/p100 = %v/%v", h.Percentile(50), h.Percentile(100))
	}
}

func TestBucketBoundaries(t *testing.T) {
	// Every value lies within its bucket, and bucket tops are increasing.
	var prevHigh uint64
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 513, 1023, 1024, 1 << 20, 1<<20 + 4095, 1<<40 + 12345, math.MaxInt64} {
		o, s := bucketOf(v)
		high := bucketHigh(o, s)
		if v > high || (v > 0 && high < prevHigh) {
			t.Errorf("value %d: bucket (%d,%d) top %d", v, o, s, high)
		}
		if o > 0 && float64(high-v) > float64(v)/subCount {
			t.Errorf("value %d: bucket top %d is more than 1/256 above", v, high)
		}
		prevHigh = high
	}
}
