package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/raftogram/raftogram/internal/testcluster"
)

// dashboardPath is the Grafana dashboard docs/metrics.md points to.
const dashboardPath = "../docs/grafana/raftogram.json"

// dashboardExprs returns every PromQL expression of the dashboard at path
// (each panel target's expr and each templating query), failing the test
// when the file does not parse as JSON.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return exprs
}

var metricNameRe = regexp.MustCompile(`\b(?:raftogram|go|process)_[A-Za-z0-9_]+\b`)

// seriesNames returns the metric names of the sample lines of a text
// exposition (histogram and summary series included: _bucket, _sum, ...).
func seriesNames(text string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// Every metric the Grafana dashboard queries exists on a running node's
// /metrics (TestRunningNode).
func checkGrafanaDashboard(t *testing.T, c *testcluster.Cluster) {
	exprs := dashboardExprs(t, dashboardPath)
	if len(exprs) < 20 {
		t.Fatalf("%s has %d queries; want the full dashboard", dashboardPath, len(exprs))
	}
	body, _ := scrape(t, c.Config(c.Leader()).HealthBindAddr)
	have := seriesNames(body)
	checked := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricNameRe.FindAllString(e, -1) {
			if checked[name] {
				continue
			}
			checked[name] = true
			if !have[name] {
				t.Errorf("dashboard queries %s (in %q); the node's /metrics has no such series", name, e)
			}
		}
	}
	for _, want := range []string{"raftogram_writes_total", "raftogram_write_duration_seconds_bucket", "raftogram_raft_leader_changes_total",
		"raftogram_fanout_delivery_lag_seconds_bucket", "raftogram_data_dir_free_bytes"} {
		if !checked[want] {
			t.Errorf("dashboard does not chart %s", want)
		}
	}
}

// docs/metrics.md names every metric family raftogram registers itself
// (raft's go-metrics ones, named by raft, are listed there by example)
// (TestRunningNode).
func checkDocumented(t *testing.T, c *testcluster.Cluster) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, fams := scrape(t, c.Config(c.Leader()).HealthBindAddr)
	own := regexp.MustCompile(`^raftogram_[a-z0-9_]+$`) // go-metrics keys are camelCase
	var missing []string
	for name := range fams {
		if !own.MatchString(name) || strings.HasPrefix(name, "raftogram_raft_") && !strings.Contains(name, "_index") &&
			!slices.Contains([]string{"raftogram_raft_term", "raftogram_raft_is_leader", "raftogram_raft_last_contact_seconds", "raftogram_raft_leader_changes_total"}, name) {
			continue
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/metrics.md does not document %v", missing)
	}
}
