package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// exposition renders a stage histogram and the write duration the way
// client_golang does: buckets 1 ms, 2 ms, 4 ms, +Inf.
func exposition(stage string, b1, b2, b4, count, sum float64) string {
	var s strings.Builder
	for _, le := range []struct {
		le string
		c  float64
	}{{"0.001", b1}, {"0.002", b2}, {"0.004", b4}, {"+Inf", count}} {
		fmt.Fprintf(&s, "raftogram_write_stage_seconds_bucket{stage=%q,le=%q} %g\n", stage, le.le, le.c)
	}
	fmt.Fprintf(&s, "raftogram_write_stage_seconds_sum{stage=%q} %g\nraftogram_write_stage_seconds_count{stage=%q} %g\n", stage, sum, stage, count)
	fmt.Fprintf(&s, "raftogram_write_duration_seconds_bucket{le=\"0.004\"} %g\nraftogram_write_duration_seconds_bucket{le=\"+Inf\"} %g\n", count, count)
	fmt.Fprintf(&s, "raftogram_write_duration_seconds_sum %g\nraftogram_write_duration_seconds_count %g\n# HELP other\nraftogram_writes_total 7\n", sum*2, count)
	return s.String()
}

func TestWriteStagesDiffSumsNodesAndInterpolates(t *testing.T) {
	var round int
	page := func(node int) string {
		if round == 0 {
			return exposition("raft", 0, 0, 0, 0, 0)
		}
		if node == 0 { // the leader: 10 writes, 4 under 1 ms, 8 under 2 ms
			return exposition("raft", 4, 8, 10, 10, 0.015)
		}
		return exposition("follower_append", 1, 2, 2, 2, 0.002)
	}
	var srvs []string
	for i := range 2 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, page(i)) }))
		defer s.Close()
		srvs = append(srvs, s.URL)
	}
	ctx := context.Background()
	s := stageSampler{urls: srvs}
	s.start(ctx)
	round = 1
	var res Result
	s.finish(ctx, &res)
	if res.WriteStagesError != "" {
		t.Fatal(res.WriteStagesError)
	}
	got := map[string]StageStat{}
	for _, st := range res.WriteStages {
		got[st.Stage] = st
	}
	if r := got["raft"]; r.Count != 10 || r.MeanMs != 1.5 || r.P50Ms != 1.25 {
		t.Errorf("raft = %+v, want 10 observations, mean 1.5 ms, p50 1.25 ms (5th of 10, 1 of 4 into the 1-2 ms bucket)", r)
	}
	if f := got["follower_append"]; f.Count != 2 || f.MeanMs != 1 || f.P50Ms != 1 {
		t.Errorf("follower_append = %+v, want 2 observations, mean 1 ms, p50 1 ms", f)
	}
	// write_duration from both nodes: 10 + 2 observations, sums 0.030 + 0.004 s.
	if w := got[StageServer]; w.Count != 12 || w.MeanMs != 2.833 {
		t.Errorf("server = %+v, want 12 observations, mean 2.833 ms", w)
	}
	if len(res.WriteStages) != 3 || res.WriteStages[0].Stage != "raft" || res.WriteStages[2].Stage != StageServer {
		t.Errorf("stages %+v, want raft, follower_append, server in path order", res.WriteStages)
	}
}

func TestWriteStagesReportsAFailedScrape(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	defer s.Close()
	st := stageSampler{urls: []string{s.URL}}
	st.start(context.Background())
	var res Result
	st.finish(context.Background(), &res)
	if len(res.WriteStages) != 0 || !strings.Contains(res.WriteStagesError, "404") {
		t.Fatalf("stages %+v, error %q; want none and a 404 error", res.WriteStages, res.WriteStagesError)
	}
}

func TestWriteStagesSaysWhenNothingWasObserved(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, exposition("raft", 1, 2, 2, 2, 0.002)) // the same counts at both scrapes
	}))
	defer s.Close()
	st := stageSampler{urls: []string{s.URL}}
	st.start(context.Background())
	var res Result
	st.finish(context.Background(), &res)
	if len(res.WriteStages) != 0 || !strings.Contains(res.WriteStagesError, "observed no write stages") {
		t.Fatalf("stages %+v, error %q; want none and the no-observations error", res.WriteStages, res.WriteStagesError)
	}
}
