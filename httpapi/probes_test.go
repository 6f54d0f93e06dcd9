package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/internal/diskspace"
)

type fakeLive []cluster.Check

func (f fakeLive) Liveness(context.Context) []cluster.Check { return f }

type fakeProjection struct{ err error }

func (f fakeProjection) Err() error { return f.err }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

var readyFollower = fakeNode{NodeID: "node2", Role: "follower", LeaderID: "node1", Term: 3, CommitIndex: 120, AppliedIndex: 100, CommittedIndex: 100}

func TestReadyzOKAndVerbose(t *testing.T) {
	h := Handler(readyFollower, Options{Projection: fakeProjection{}, ReadyMaxLag: 20})
	if code, body := get(t, h, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /readyz = %d %q", code, body)
	}
	const verbose = "[+]leader ok\n[+]applied ok\n[+]projection ok\n[+]disk ok\n[+]space ok\nok\n"
	if code, body := get(t, h, "/readyz?verbose"); code != http.StatusOK || body != verbose {
		t.Fatalf("GET /readyz?verbose = %d\n%s\nwant\n%s", code, body, verbose)
	}
}

func TestReadyzFailsWithReasons(t *testing.T) {
	for _, tc := range []struct {
		name string
		node fakeNode
		opts Options
		want string
	}{
		{"no leader", fakeNode{NodeID: "node3", Role: "candidate", Term: 7}, Options{ReadyMaxLag: 100},
			"[-]leader failed: node3 is candidate in term 7 and knows no leader\nreadyz check failed\n"},
		{"behind", readyFollower, Options{ReadyMaxLag: 19},
			"[-]applied failed: applied index 100 is 20 entries behind the leader's commit index 120 (readyz_max_lag 19)\nreadyz check failed\n"},
		{"projection", readyFollower, Options{ReadyMaxLag: 100, Projection: fakeProjection{errors.New("projection unusable: disk I/O error")}},
			"[-]projection failed: projection unusable: disk I/O error\nreadyz check failed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, Handler(tc.node, tc.opts), "/readyz")
			if code != http.StatusServiceUnavailable || body != tc.want {
				t.Fatalf("GET /readyz = %d\n%s\nwant 503\n%s", code, body, tc.want)
			}
		})
	}
}

// A node short of space or unable to write its data_dir is not ready, and
// /health says why; with space back it is ready again.
func TestDiskChecksAndHealthFields(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	var probeErr atomic.Pointer[error]
	alarm := diskspace.New(diskspace.Options{NodeID: "node2", Dir: t.TempDir(), MinFree: 64 << 20, ProbeEvery: 1,
		Free: func(string) (uint64, error) { return free.Load(), nil },
		Probe: func(string) error {
			if p := probeErr.Load(); p != nil {
				return *p
			}
			return nil
		}})
	h := Handler(readyFollower, Options{Space: alarm, ReadyMaxLag: 100})
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("plenty of space: /readyz = %d", code)
	}
	free.Store(3 << 20)
	alarm.Measure()
	code, body := get(t, h, "/readyz?verbose")
	want := "[+]leader ok\n[+]applied ok\n[+]projection ok\n[+]disk ok\n[-]space failed: data_dir has 3.0 MiB free, below min_free_bytes 64.0 MiB\nreadyz check failed\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("short of space: /readyz?verbose = %d\n%s\nwant\n%s", code, body, want)
	}
	health := decodeHealth(t, h)
	if health["disk_problem"] != "node2 has 3.0 MiB free in its data_dir, below min_free_bytes 64.0 MiB" || health["writes_refused"] != health["disk_problem"] {
		t.Fatalf("/health while short: disk_problem %q, writes_refused %q", health["disk_problem"], health["writes_refused"])
	}
	if code, _ := get(t, h, "/readyz?exclude=space"); code != http.StatusOK {
		t.Errorf("/readyz?exclude=space = %d, want 200", code)
	}

	free.Store(1 << 30)
	perr := errors.New("read-only file system")
	probeErr.Store(&perr)
	alarm.Measure()
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || body != "[-]disk failed: data_dir is not writable: read-only file system\nreadyz check failed\n" {
		t.Fatalf("unwritable: /readyz = %d %q", code, body)
	}
	health = decodeHealth(t, h)
	if health["disk_problem"] != "node2 cannot write its data_dir: read-only file system" || health["writes_refused"] != nil {
		t.Fatalf("/health while unwritable: %v", health)
	}

	probeErr.Store(nil)
	alarm.Measure()
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("disk back: /readyz = %d", code)
	}
	if health := decodeHealth(t, h); health["disk_problem"] != nil {
		t.Fatalf("/health with the disk back still has disk_problem: %v", health)
	}
}

func TestLivezReportsTheNodesLoops(t *testing.T) {
	live := fakeLive{{Name: "loops"}, {Name: "raft"}, {Name: "apply"}}
	h := Handler(readyFollower, Options{Live: live})
	if code, body := get(t, h, "/livez?verbose"); code != http.StatusOK || body != "[+]loops ok\n[+]raft ok\n[+]apply ok\n[+]commit ok\nok\n" {
		t.Fatalf("GET /livez?verbose = %d %q", code, body)
	}
	live[1].Err = errors.New("raft's main loop has not answered for 5s (limit 5s)")
	if code, body := get(t, h, "/livez"); code != http.StatusServiceUnavailable || body != "[-]raft failed: raft's main loop has not answered for 5s (limit 5s)\nlivez check failed\n" {
		t.Fatalf("GET /livez = %d %q", code, body)
	}
}

// The commit watch fails once an applied index stays uncommitted past its
// bound, and clears when the projection commits it.
func TestCommitWatch(t *testing.T) {
	var w commitWatch
	st := cluster.Status{AppliedIndex: 10, CommittedIndex: 5}
	if err := w.stalled(st, time.Hour); err != nil {
		t.Fatalf("first sight of a gap: %v", err)
	}
	w.since = time.Now().Add(-2 * time.Hour)
	st.AppliedIndex = 12 // still applying, 10 not committed
	if err := w.stalled(st, time.Hour); err == nil {
		t.Fatal("index 10 uncommitted for 2h: no error")
	}
	st.CommittedIndex = 10
	if err := w.stalled(st, time.Hour); err != nil {
		t.Fatalf("10 committed: %v", err)
	}
	st.CommittedIndex = 12
	if err := w.stalled(st, 0); err != nil || w.target != 0 {
		t.Fatalf("caught up: %v, target %d", err, w.target)
	}
}

func decodeHealth(t *testing.T, h http.Handler) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	return got
}
