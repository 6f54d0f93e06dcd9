package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits is the number of linear sub-buckets per power of two, as a power
// of two: 2^8 = 256 sub-buckets, so a recorded value is known to within
// 1/256 (0.4 %) of itself, as in an HDR histogram with between two and
// three significant digits.
const subBits = 8

const (
	subCount = 1 << subBits
	octaves  = 64 - subBits + 1
)

// Histogram records durations in log-linear buckets: values below 256 ns
// exactly, larger ones in 256 equal buckets per power of two. It keeps the
// exact count, sum, minimum and maximum. Buckets are allocated one octave at
// a time on first use, so a histogram whose values span a few powers of two
// costs a few kilobytes.
//
// A Histogram is not safe for concurrent use; give each goroutine its own and
// Merge them.
type Histogram struct {
	counts [octaves][]uint64
	n      uint64
	sum    float64 // nanoseconds; float so it cannot overflow
	min    int64
	max    int64
}

// bucketOf returns the octave and sub-bucket of v (v >= 0).
func bucketOf(v uint64) (octave, sub int) {
	if v < subCount {
		return 0, int(v)
	}
	o := bits.Len64(v) - subBits // v in [2^(subBits+o-1), 2^(subBits+o))
	return o, int(v>>(o-1)) - subCount
}

// bucketHigh is the largest value that falls in the bucket.
func bucketHigh(octave, sub int) uint64 {
	if octave == 0 {
		return uint64(sub)
	}
	return (uint64(subCount+sub+1) << (octave - 1)) - 1
}

// Record adds one value; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	o, s := bucketOf(uint64(v))
	if h.counts[o] == nil {
		h.counts[o] = make([]uint64, subCount)
	}
	h.counts[o][s]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		if c == nil {
			continue
		}
		if h.counts[i] == nil {
			h.counts[i] = make([]uint64, subCount)
		}
		for j, x := range c {
			h.counts[i][j] += x
		}
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded value (exact), 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest recorded value (exact), 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the exact mean, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest recorded value such that at least p % of the values are at or
// below it. Like an HDR histogram it answers with the highest value of that
// value's bucket (so within 0.4 % above the true value), clamped to the exact
// minimum and maximum. It returns 0 when empty.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := nearestRank(p, h.n)
	var seen uint64
	for o, c := range h.counts {
		if c == nil {
			continue
		}
		for s, x := range c {
			seen += x
			if seen >= rank {
				v := int64(bucketHigh(o, s))
				return time.Duration(min(max(v, h.min), h.max))
			}
		}
	}
	return time.Duration(h.max)
}

// nearestRank is ceil(p/100 * n) clamped to [1, n], computed so that
// 99.9 % of 1000 is 999 and not 1000 through rounding.
func nearestRank(p float64, n uint64) uint64 {
	r := math.Ceil(p*float64(n)/100 - 1e-9)
	if r < 1 {
		return 1
	}
	if r > float64(n) {
		return n
	}
	return uint64(r)
}
