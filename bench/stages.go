package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The write-path breakdown: with Config.MetricsURLs set, the run scrapes
// every node's /metrics at the start and the end of the measured window
// and reports, per stage of raftogram_write_stage_seconds (and the
// server-side whole, raftogram_write_duration_seconds), how many
// observations fell in the window, their mean and their median. Each stage
// is observed on the node where it happens (follower_append on the
// followers, the rest on the leader), so the nodes' histograms are summed.
// Means add up along a write's path; medians come from the histogram's
// buckets (linear within a bucket), so they are as fine as the buckets.

const (
	stageMetric    = "raftogram_write_stage_seconds"
	durationMetric = "raftogram_write_duration_seconds"
	// StageServer names the server-side whole of a write
	// (raftogram_write_duration_seconds) in Result.WriteStages.
	StageServer = "server"
)

// StageStat is one stage of the write path over the measured window.
type StageStat struct {
	Stage  string  `json:"stage"`
	Count  float64 `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
}

// histo is one Prometheus histogram: cumulative bucket counts by upper
// bound, sum and count.
type histo struct {
	buckets map[float64]float64
	sum     float64
	count   float64
}

// stageScrape maps a stage (StageServer for the whole) to its histogram,
// summed over the nodes.
type stageScrape map[string]*histo

// scrapeStages fetches and sums the write-stage histograms of every url.
// It returns an error naming the url that failed.
func scrapeStages(ctx context.Context, urls []string) (stageScrape, error) {
	out := stageScrape{}
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("metrics %s: %w", u, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("metrics %s: %w", u, err)
		}
		err = parseStages(resp.Body, out)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
		if err != nil {
			return nil, fmt.Errorf("metrics %s: %w", u, err)
		}
	}
	return out, nil
}

// parseStages adds the write-stage histograms of one Prometheus text
// exposition to into.
func parseStages(r io.Reader, into stageScrape) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var name string
		switch {
		case strings.HasPrefix(line, stageMetric+"_"):
			name = stageMetric
		case strings.HasPrefix(line, durationMetric+"_"):
			name = durationMetric
		default:
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return fmt.Errorf("bad sample %q: %w", line, err)
		}
		series, labels, _ := strings.Cut(line[len(name)+1:sp], "{")
		stage := StageServer
		if name == stageMetric {
			stage = label(labels, "stage")
		}
		h := into[stage]
		if h == nil {
			h = &histo{buckets: map[float64]float64{}}
			into[stage] = h
		}
		switch series {
		case "sum":
			h.sum += v
		case "count":
			h.count += v
		case "bucket":
			le, err := strconv.ParseFloat(label(labels, "le"), 64)
			if err != nil {
				return fmt.Errorf("bad bucket %q: %w", line, err)
			}
			h.buckets[le] += v
		}
	}
	return sc.Err()
}

// label returns the value of key in a Prometheus label list (`a="x",b="y"}`).
func label(labels, key string) string {
	i := strings.Index(labels, key+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(key)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// stageOrder is the order stages are reported in: a write's path, then
// the server-side whole.
var stageOrder = []string{"queue", "raft", "log_append", "replicate", "follower_append", "commit", "fsm_apply", "cluster", StageServer}

// diffStages returns the stages observed between two scrapes, in
// stageOrder (unknown stages after, by name).
func diffStages(before, after stageScrape) []StageStat {
	names := make([]string, 0, len(after))
	for s := range after {
		names = append(names, s)
	}
	rank := func(s string) int {
		if i := slices.Index(stageOrder, s); i >= 0 {
			return i
		}
		return len(stageOrder)
	}
	sort.Slice(names, func(i, j int) bool {
		if ri, rj := rank(names[i]), rank(names[j]); ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	var out []StageStat
	for _, s := range names {
		a, b := after[s], before[s]
		if b == nil {
			b = &histo{buckets: map[float64]float64{}}
		}
		n := a.count - b.count
		if n <= 0 {
			continue
		}
		d := map[float64]float64{}
		for le, c := range a.buckets {
			d[le] = c - b.buckets[le]
		}
		out = append(out, StageStat{Stage: s, Count: n, MeanMs: round((a.sum-b.sum)/n*1e3, 3), P50Ms: round(quantile(d, n, 0.5)*1e3, 3)})
	}
	return out
}

// quantile estimates quantile q of a cumulative histogram of n
// observations, interpolating linearly within the bucket it falls in (as
// Prometheus' histogram_quantile does).
func quantile(cum map[float64]float64, n, q float64) float64 {
	les := make([]float64, 0, len(cum))
	for le := range cum {
		les = append(les, le)
	}
	slices.Sort(les)
	rank := q * n
	lower, below := 0.0, 0.0
	for _, le := range les {
		c := cum[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if c == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(c-below)
		}
		lower, below = le, c
	}
	return lower
}

// stageSampler scrapes at the start of the measured window and reports
// the difference at its end; a failed scrape is reported once, as
// Result.WriteStagesError, and leaves WriteStages empty.
type stageSampler struct {
	urls   []string
	before stageScrape
	err    error
}

const scrapeTimeout = 5 * time.Second

func (s *stageSampler) start(ctx context.Context) {
	if len(s.urls) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	s.before, s.err = scrapeStages(ctx, s.urls)
}

func (s *stageSampler) finish(ctx context.Context, res *Result) {
	if len(s.urls) == 0 {
		return
	}
	if s.err == nil && s.before != nil {
		ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
		defer cancel()
		var after stageScrape
		if after, s.err = scrapeStages(ctx, s.urls); s.err == nil {
			res.WriteStages = diffStages(s.before, after)
			if len(res.WriteStages) == 0 {
				res.WriteStagesError = "the nodes scraped observed no write stages in the measured window"
			}
			return
		}
	}
	if s.err != nil {
		res.WriteStagesError = s.err.Error()
	}
}

// writeStagesSummary formats the stages for WriteSummary.
func writeStagesSummary(b *strings.Builder, stages []StageStat) {
	if len(stages) == 0 {
		return
	}
	b.WriteString("  write stages (server side, mean / p50 ms, observations):\n")
	for _, s := range stages {
		fmt.Fprintf(b, "               %-16s %s / %s  (%.0f)\n", s.Stage, fms(s.MeanMs), fms(s.P50Ms), s.Count)
	}
}
