package testbin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/httpapi"
)

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "module github.com/raftogram/raftogram\n") {
		t.Fatalf("%s/go.mod is not raftogram's:\n%s", root, b)
	}
}

func TestBuildBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("go build ./cmd/raftogram; skipped with -short")
	}
	dir := t.TempDir()
	bin, err := BuildBinary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "raftogram"); bin != want {
		t.Fatalf("BuildBinary = %q, want %q", bin, want)
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("binary %s: %v, %v", bin, fi, err)
	}
}

func TestFreePorts(t *testing.T) {
	addrs, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 20 {
		t.Fatalf("%d addresses, want 20", len(addrs))
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q is not on 127.0.0.1 (%v)", a, err)
		}
		if seen[a] {
			t.Fatalf("address %s returned twice: %v", a, addrs)
		}
		seen[a] = true
	}
	// Every listener is closed again: each port can be bound.
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("bind %s after FreePorts: %v", a, err)
		}
		l.Close()
	}
	if addrs, err := FreePorts(0); err != nil || len(addrs) != 0 {
		t.Fatalf("FreePorts(0) = %v, %v; want none", addrs, err)
	}
}

func TestBaseEnv(t *testing.T) {
	t.Setenv("RAFTOGRAM_TESTBIN_PROBE", "x")
	t.Setenv("TESTBIN_KEPT", "y")
	env := BaseEnv()
	kept := false
	for _, kv := range env {
		if strings.HasPrefix(kv, "RAFTOGRAM_") {
			t.Fatalf("BaseEnv holds %q", kv)
		}
		kept = kept || kv == "TESTBIN_KEPT=y"
	}
	if !kept {
		t.Fatal("BaseEnv dropped TESTBIN_KEPT")
	}
}

func TestPoll(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := Poll(ctx, time.Second, time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls; want nil after 3", err, calls)
	}

	errLast := errors.New("still not")
	err = Poll(ctx, 20*time.Millisecond, time.Millisecond, func() error { return errLast })
	if !errors.Is(err, errLast) || !strings.HasPrefix(err.Error(), "not within 20ms: ") {
		t.Fatalf("Poll after the timeout = %v; want not within 20ms wrapping %v", err, errLast)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = Poll(cctx, time.Minute, time.Millisecond, func() error { return errLast })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), errLast.Error()) {
		t.Fatalf("Poll with a cancelled context = %v; want context.Canceled naming %v", err, errLast)
	}
}

type fakeNode cluster.Status

func (n fakeNode) Status() cluster.Status { return cluster.Status(n) }

// TestGetHealth reads the body the product's own handler writes.
func TestGetHealth(t *testing.T) {
	want := httpapi.Health{
		NodeID: "node2", Role: "follower", LeaderID: "node1",
		LeaderRaftAddr: "127.0.0.1:7000", LeaderGRPCAddr: "127.0.0.1:9000",
		Term: 3, CommitIndex: 40, AppliedIndex: 39, CommittedIndex: 38, LastLogIndex: 41, SnapshotIndex: 20,
	}
	srv := httptest.NewServer(httpapi.Handler(fakeNode{
		NodeID: want.NodeID, Role: want.Role, LeaderID: want.LeaderID,
		LeaderRaftAddr: want.LeaderRaftAddr, LeaderGRPCAddr: want.LeaderGRPCAddr,
		Term: want.Term, CommitIndex: want.CommitIndex, AppliedIndex: want.AppliedIndex,
		CommittedIndex: want.CommittedIndex, LastLogIndex: want.LastLogIndex, SnapshotIndex: want.SnapshotIndex,
	}, httpapi.Options{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, client := range []*http.Client{nil, {Timeout: 2 * time.Second}} {
		got, err := GetHealth(client, addr)
		if err != nil || got != want {
			t.Fatalf("GetHealth = %+v, %v; want %+v", got, err, want)
		}
	}
}

func TestGetHealthErrors(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		wantErr                 string
	}{
		{"status", "application/json", `{}`, http.StatusServiceUnavailable, "status 503"},
		{"content type", "text/plain", `{}`, http.StatusOK, `content type "text/plain"`},
		{"body", "application/json", `{"node_id":`, http.StatusOK, "decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := GetHealth(nil, strings.TrimPrefix(srv.URL, "http://"))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("GetHealth = %v; want an error naming %s", err, tc.wantErr)
			}
		})
	}

	addrs, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GetHealth(nil, addrs[0]); err == nil {
		t.Fatalf("GetHealth of %s where nothing listens: no error", addrs[0])
	}
}
