package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/raftogram/raftogram/cluster"
)

type fakeNode cluster.Status

func (f fakeNode) Status() cluster.Status { return cluster.Status(f) }

func TestHealthReportsRoleAndLeader(t *testing.T) {
	h := Handler(fakeNode{NodeID: "node2", Role: "follower", LeaderID: "node1",
		LeaderRaftAddr: "127.0.0.1:7000", LeaderGRPCAddr: "127.0.0.1:9000", Term: 3, AppliedIndex: 7, CommittedIndex: 6}, Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"node_id": "node2", "role": "follower", "is_leader": false, "leader_id": "node1",
		"leader_raft_addr": "127.0.0.1:7000", "leader_grpc_addr": "127.0.0.1:9000", "term": 3.0, "applied_index": 7.0, "committed_index": 6.0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// The body is a contract scripts and dashboards read: its fields, their
// order and its indentation stay as they are (committed_index was added
// beside applied_index).
func TestHealthBodyIsStable(t *testing.T) {
	h := Handler(fakeNode{NodeID: "node2", Role: "follower", LeaderID: "node1",
		LeaderRaftAddr: "127.0.0.1:7000", LeaderGRPCAddr: "127.0.0.1:9000", Term: 3, CommitIndex: 9,
		AppliedIndex: 8, CommittedIndex: 7, LastLogIndex: 10, SnapshotIndex: 4}, Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	const want = `{
  "node_id": "node2",
  "role": "follower",
  "is_leader": false,
  "leader_id": "node1",
  "leader_raft_addr": "127.0.0.1:7000",
  "leader_grpc_addr": "127.0.0.1:9000",
  "term": 3,
  "commit_index": 9,
  "applied_index": 8,
  "committed_index": 7,
  "last_log_index": 10,
  "snapshot_index": 4
}
`
	if got := rec.Body.String(); got != want {
		t.Fatalf("GET /health body:\n%s\nwant:\n%s", got, want)
	}
}

func TestHealthOmitsUnknownLeaderAndRejectsOtherMethods(t *testing.T) {
	h := Handler(fakeNode{NodeID: "node1", Role: "candidate"}, Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["leader_id"]; ok {
		t.Fatalf("leader_id present with no leader known: %v", got)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{{http.MethodPost, "/health", http.StatusMethodNotAllowed}, {http.MethodGet, "/nope", http.StatusNotFound}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.code)
		}
	}
}

func TestPprofServedOnlyWhenEnabled(t *testing.T) {
	for _, tc := range []struct {
		pprof bool
		code  int
	}{{false, http.StatusNotFound}, {true, http.StatusOK}} {
		h := Handler(fakeNode{NodeID: "node1", Role: "leader"}, Options{Pprof: tc.pprof})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/goroutine?debug=1", nil))
		if rec.Code != tc.code {
			t.Errorf("pprof=%v: GET /debug/pprof/goroutine = %d, want %d", tc.pprof, rec.Code, tc.code)
		}
		if tc.pprof && !strings.Contains(rec.Body.String(), "goroutine profile") {
			t.Errorf("pprof enabled but body is not a goroutine profile: %.200q", rec.Body.String())
		}
	}
}
