package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
)

// promWait bounds how long Prometheus may take to start, scrape and answer
// with what the test expects (scrapes run every second).
const promWait = 60 * time.Second

// A real Prometheus (Debian's package; .ci/run installs it) scrapes the
// three nodes' /metrics; after sends its HTTP API reports the write
// counter moved and raft's own metrics (through the go-metrics sink).
func TestPrometheusScrapesCluster(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("SKIP: prometheus is not installed (apt-get install prometheus; .ci/run does): ", err)
	}
	c := newCluster(t, 3)
	c.start(c.ids()...)
	leader := c.waitStable(c.ids()...)

	dir := t.TempDir()
	promAddr := freePorts(t, 1)[0]
	var targets []string
	for _, nd := range c.Nodes {
		targets = append(targets, strconv.Quote(nd.HealthAddr))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: raftogram
    static_configs:
      - targets: [%s]
`, strings.Join(targets, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	dumpLogsOnFailure(t, logPath)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	type result struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	// run runs an instant query and returns Prometheus's answer.
	run := func(q string) (result, error) {
		var r result
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return r, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &r); err != nil {
			return r, fmt.Errorf("query %s: %s: %w", q, body, err)
		}
		if r.Status != "success" {
			return r, fmt.Errorf("query %s: %s %s", q, r.Status, r.Error)
		}
		return r, nil
	}
	// query returns the single value of an instant query's vector result.
	query := func(q string) (float64, error) {
		r, err := run(q)
		if err != nil {
			return 0, err
		}
		body, _ := json.Marshal(r.Data)
		if len(r.Data.Result) != 1 {
			return 0, fmt.Errorf("query %s: %d results, want 1: %s", q, len(r.Data.Result), body)
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		return strconv.ParseFloat(s, 64)
	}

	// Every node scraped, and the write counter's value before the sends.
	var before float64
	eventually(t, promWait, "prometheus scraping all three nodes", func() error {
		up, err := query(`sum(up{job="raftogram"})`)
		if err != nil {
			return err
		}
		if up != 3 {
			return fmt.Errorf("sum(up) = %v, want 3", up)
		}
		before, err = query(`sum(raftogram_writes_total)`)
		return err
	})

	const sends = 10
	lc := c.client(leader.ID)
	if _, err := lc.CreateChannel(rpcCtx(t), &raftogramv1.CreateChannelRequest{ChannelId: "prom", Name: "prom"}); err != nil {
		t.Fatalf("CreateChannel: %v", err)
	}
	for i := range sends {
		if _, err := lc.SendMessage(rpcCtx(t), &raftogramv1.SendMessageRequest{ChannelId: "prom", AuthorId: "a",
			Payload: []byte("x"), ClientMessageId: fmt.Sprint("m", i)}); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}

	eventually(t, promWait, "raftogram_writes_total to move by the sends", func() error {
		v, err := query(`sum(raftogram_writes_total)`)
		if err != nil {
			return err
		}
		if v < before+sends {
			return fmt.Errorf("sum(raftogram_writes_total) = %v, want >= %v", v, before+sends)
		}
		return nil
	})
	eventually(t, promWait, "raft metrics in prometheus", func() error {
		leaders, err := query(`sum(raftogram_raft_is_leader)`)
		if err != nil {
			return err
		}
		if leaders != 1 {
			return fmt.Errorf("sum(raftogram_raft_is_leader) = %v, want 1", leaders)
		}
		// raft's own go-metrics, bridged by the sink: the leader's commits.
		commits, err := query(fmt.Sprintf(`raftogram_raft_commitTime_count{instance=%q}`, leader.HealthAddr))
		if err != nil {
			return err
		}
		if commits < sends {
			return fmt.Errorf("raftogram_raft_commitTime_count on the leader = %v, want >= %d", commits, sends)
		}
		return nil
	})

	// Every query of the Grafana dashboard is valid PromQL to this
	// Prometheus (docs/grafana/raftogram.json; its metrics are checked to
	// exist by metrics.TestGrafanaDashboardMetricsExist).
	for _, e := range dashboardExprs(t) {
		if _, err := run(strings.ReplaceAll(e, "$instance", ".*")); err != nil {
			t.Errorf("dashboard query: %v", err)
		}
	}
}

// dashboardExprs returns the expr of every target in the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../docs/grafana/raftogram.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatal("dashboard has no queries")
	}
	return exprs
}
