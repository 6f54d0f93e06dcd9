package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/testcluster"
)

// The status page in a real browser: headless Chromium loads it from one
// node of a running 3-node cluster and renders a row per node with the
// leader marked. Chromium's own command line does the work
// (--dump-dom, --screenshot), polled with a deadline until the rows are
// there; no driver library is needed.

// browserNames are the binaries tried, in order; RAFTOGRAM_CHROMIUM names
// another.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"}

// findBrowser returns the path of a Chromium or Chrome binary, or "".
func findBrowser() string {
	if p := os.Getenv("RAFTOGRAM_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range browserNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// headless runs the browser on url with extra flags and returns its
// stdout; each run has its own profile directory.
func headless(ctx context.Context, t *testing.T, browser, url string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--window-size=1500,380", "--virtual-time-budget=3000"}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, browser, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w; stderr:\n%s", browser, err, stderr.String())
	}
	return string(out), nil
}

var (
	nodeRow   = regexp.MustCompile(`<tr class="node[^"]*" data-node-id="([^"]+)" data-role="([^"]+)">`)
	leaderRow = regexp.MustCompile(`<tr class="node leader" data-node-id="([^"]+)" data-role="leader"><td>[^<]+</td><td>[^<]+</td><td><span class="badge">★ leader</span>`)
)

func TestStatusPageInABrowser(t *testing.T) {
	browser := findBrowser()
	if browser == "" {
		t.Skip("no Chromium or Chrome binary found (tried " + strings.Join(browserNames, ", ") +
			"; install Debian's chromium or set RAFTOGRAM_CHROMIUM): the status page is not tested in a browser")
	}
	c := testcluster.Start(t, 3)
	l := c.Leader()
	page := "http://" + c.Config((l+1)%3).HealthBindAddr + "/" // served by a follower, which gathers the others
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Some traffic, so the leader's row shows writes over the last minute.
	cl, err := client.New(ctx, client.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateChannel(ctx, "status", "Status"); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := cl.Send(ctx, client.SendRequest{ChannelID: "status", AuthorID: "page", Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}

	var dom string
	for {
		var err error
		dom, err = headless(ctx, t, browser, page, "--dump-dom")
		if err == nil {
			err = checkRows(c, dom)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the page never showed the cluster: %v\nlast DOM:\n%s", err, dom)
		}
		t.Logf("not yet: %v", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // between browser runs, not instead of a condition
		}
	}

	// A screenshot taken the same way, for a person to look at.
	shot := filepath.Join(t.TempDir(), "status.png")
	if dst := os.Getenv("RAFTOGRAM_STATUS_SCREENSHOT"); dst != "" {
		shot = dst
	}
	if _, err := headless(ctx, t, browser, page, "--screenshot="+shot, "--hide-scrollbars"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// checkRows returns nil when dom has one row per node of c in order, each
// with its role, and exactly the leader the cluster agrees on now marked.
func checkRows(c *testcluster.Cluster, dom string) error {
	rows := nodeRow.FindAllStringSubmatch(dom, -1)
	if len(rows) != c.Len() {
		return fmt.Errorf("%d node rows, want %d", len(rows), c.Len())
	}
	l, err := c.AgreedLeader()
	if err != nil {
		return err
	}
	for i, r := range rows {
		wantRole := "follower"
		if i == l {
			wantRole = "leader"
		}
		if r[1] != c.NodeID(i) || r[2] != wantRole {
			return fmt.Errorf("row %d is %s as %s, want %s as %s", i, r[1], r[2], c.NodeID(i), wantRole)
		}
	}
	if leaders := leaderRow.FindAllStringSubmatch(dom, -1); len(leaders) != 1 || leaders[0][1] != c.NodeID(l) {
		return fmt.Errorf("leader marks %q, want one on %s", leaders, c.NodeID(l))
	}
	if !strings.Contains(dom, "leader "+c.NodeID(l)+" ") {
		return fmt.Errorf("the summary does not name the leader %s", c.NodeID(l))
	}
	// The leader answered the sends: its writes/s over the last minute
	// (the 7th cell) is above zero once the window has two samples.
	row := leaderCells.FindStringSubmatch(dom)
	if row == nil {
		return fmt.Errorf("no leader row")
	}
	cells := cell.FindAllStringSubmatch(row[1], -1)
	if len(cells) < 7 {
		return fmt.Errorf("leader row has %d cells", len(cells))
	}
	if w, err := strconv.ParseFloat(strings.TrimSpace(tag.ReplaceAllString(cells[6][1], "")), 64); err != nil || w <= 0 {
		return fmt.Errorf("leader writes/s %q, want above 0 after the sends", cells[6][1])
	}
	return nil
}

var (
	leaderCells = regexp.MustCompile(`<tr class="node leader"[^>]*>(.*?)</tr>`)
	cell        = regexp.MustCompile(`<td[^>]*>(.*?)</td>`)
	tag         = regexp.MustCompile(`<[^>]+>`)
)
