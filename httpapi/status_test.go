package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeSource answers GetClusterStatus with cs or err.
type fakeSource struct {
	cs  *raftogramv1.ClusterStatus
	err error
}

func (f fakeSource) GetClusterStatus(context.Context, *raftogramv1.GetClusterStatusRequest) (*raftogramv1.ClusterStatus, error) {
	return f.cs, f.err
}

func request(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// The page and its script and style come from the binary; no other origin
// is referenced.
func TestStatusPageIsServedFromTheBinary(t *testing.T) {
	h := Handler(fakeNode{}, Options{Cluster: fakeSource{}})
	page := request(t, h, http.MethodGet, "/")
	if page.Code != http.StatusOK || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(page.Body.String(), `<tbody id="nodes">`) || !strings.Contains(page.Body.String(), `src="/static/status.js"`) {
		t.Fatalf("GET / = %d %q:\n%s", page.Code, page.Header().Get("Content-Type"), page.Body)
	}
	for path, ctype := range map[string]string{"/static/status.js": "text/javascript", "/static/status.css": "text/css"} {
		rec := request(t, h, http.MethodGet, path)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) || rec.Body.Len() == 0 {
			t.Fatalf("GET %s = %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if strings.Contains(rec.Body.String(), "http://") || strings.Contains(rec.Body.String(), "https://") {
			t.Fatalf("%s references another origin", path)
		}
	}
	if strings.Contains(page.Body.String(), "http://") || strings.Contains(page.Body.String(), "https://") {
		t.Fatal("the page references another origin")
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{{http.MethodPost, "/", http.StatusMethodNotAllowed}, {http.MethodGet, "/static/nope.js", http.StatusNotFound},
		{http.MethodGet, "/nope", http.StatusNotFound}, {http.MethodPost, "/cluster", http.StatusMethodNotAllowed}} {
		if rec := request(t, h, c.method, c.path); rec.Code != c.code {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, rec.Code, c.code)
		}
	}
	// Without a cluster source there is no page.
	if rec := request(t, Handler(fakeNode{}, Options{}), http.MethodGet, "/"); rec.Code != http.StatusNotFound {
		t.Fatalf("GET / without a source = %d", rec.Code)
	}
}

func TestClusterJSON(t *testing.T) {
	cs := &raftogramv1.ClusterStatus{NodeId: "node2", LeaderId: "node1", LeaderCommitIndex: 40, Nodes: []*raftogramv1.NodeReport{
		{NodeId: "node1", GrpcAddr: "h1:9000", Reachable: true, Status: &raftogramv1.NodeStatus{NodeId: "node1", Role: "leader", Term: 3,
			CommitIndex: 40, AppliedIndex: 40, SnapshotIndex: 10, Version: "v1", WritesPerSecond: 12.5, WriteP99Ms: 4.2, Subscribers: 5, LeaderChanges: 1}},
		{NodeId: "node2", GrpcAddr: "h2:9000", Reachable: true, Lag: 2, Status: &raftogramv1.NodeStatus{NodeId: "node2", Role: "follower", Term: 3,
			CommitIndex: 40, AppliedIndex: 38, LogAppliedIndex: 38, LastContactMs: 12}},
		{NodeId: "node3", GrpcAddr: "h3:9000", ErrorCode: uint32(codes.Unavailable), Error: "no answer within 3s"},
	}}
	rec := request(t, Handler(fakeNode{}, Options{Cluster: fakeSource{cs: cs}}), http.MethodGet, "/cluster")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /cluster = %d %v", rec.Code, rec.Header())
	}
	var v ClusterView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	want := ClusterView{GatheredBy: "node2", LeaderID: "node1", LeaderCommitIndex: 40, Nodes: []NodeView{
		{NodeID: "node1", GRPCAddr: "h1:9000", Reachable: true, Role: "leader", IsLeader: true, Term: 3, CommitIndex: 40, AppliedIndex: 40,
			SnapshotIndex: 10, Version: "v1", WritesPerSecond: 12.5, WriteP99Ms: 4.2, Subscribers: 5, LeaderChanges: 1},
		{NodeID: "node2", GRPCAddr: "h2:9000", Reachable: true, Role: "follower", Term: 3, CommitIndex: 40, AppliedIndex: 38, LogAppliedIndex: 38, Lag: 2, LastContactMs: 12},
		{NodeID: "node3", GRPCAddr: "h3:9000", Error: "no answer within 3s"},
	}}
	if len(v.Nodes) != 3 || v.GatheredBy != want.GatheredBy || v.LeaderID != want.LeaderID || v.LeaderCommitIndex != want.LeaderCommitIndex {
		t.Fatalf("view %+v", v)
	}
	for i := range want.Nodes {
		if v.Nodes[i] != want.Nodes[i] {
			t.Errorf("node %d: %+v, want %+v", i, v.Nodes[i], want.Nodes[i])
		}
	}

	rec = request(t, Handler(fakeNode{}, Options{Cluster: fakeSource{err: status.Error(codes.Canceled, "request cancelled")}}), http.MethodGet, "/cluster")
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != "cluster status: request cancelled" {
		t.Fatalf("failed gathering = %d %q", rec.Code, rec.Body)
	}
}
