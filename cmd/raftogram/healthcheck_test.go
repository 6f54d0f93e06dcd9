package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/internal/certs/certgen"
)

// runHealthcheck runs `raftogram healthcheck args...` through the subcommand
// registry and returns the exit code, stdout and stderr.
func runHealthcheck(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"healthcheck"}, args...), env, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// healthServer serves body with status code on /health, a ready node's
// "ok" on /readyz and 404 elsewhere.
func healthServer(t *testing.T, code int, body string) string {
	t.Helper()
	return probedServer(t, code, body, http.StatusOK, "ok\n")
}

// probedServer serves body with status code on /health, readyBody with
// readyCode on /readyz, and 404 elsewhere.
func probedServer(t *testing.T, code int, body string, readyCode int, readyBody string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodGet:
			http.NotFound(w, r)
		case r.URL.Path == "/health":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		case r.URL.Path == "/readyz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(readyCode)
			_, _ = w.Write([]byte(readyBody))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestHealthcheckIsRegistered(t *testing.T) {
	if subcommands["healthcheck"] == nil {
		t.Fatal(`subcommand "healthcheck" is not registered`)
	}
}

func TestHealthcheckLeaderKnown(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"follower", `{"node_id":"node2","role":"follower","is_leader":false,"leader_id":"node1",
			"leader_raft_addr":"node1:7000","leader_grpc_addr":"127.0.0.1:9000","term":3,
			"commit_index":12,"applied_index":12,"last_log_index":12}`,
			"healthy: node2 is follower in term 3, leader node1 at 127.0.0.1:9000 (applied 12, commit 12)\n"},
		{"leader", `{"node_id":"node1","role":"leader","is_leader":true,"leader_id":"node1",
			"leader_raft_addr":"node1:7000","leader_grpc_addr":"127.0.0.1:9000","term":3,
			"commit_index":12,"applied_index":11,"last_log_index":12}`,
			"healthy: node1 is leader in term 3, leader node1 at 127.0.0.1:9000 (applied 11, commit 12)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := healthServer(t, http.StatusOK, tc.body)
			code, out, errOut := runHealthcheck(t, nil, "-addr", addr)
			if code != 0 || out != tc.want || errOut != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0, %q, empty", code, out, errOut, tc.want)
			}
		})
	}
}

func TestHealthcheckNoLeader(t *testing.T) {
	addr := healthServer(t, http.StatusOK,
		`{"node_id":"node3","role":"candidate","is_leader":false,"term":7,"commit_index":4,"applied_index":4,"last_log_index":5}`)
	code, out, errOut := runHealthcheck(t, nil, "-addr", addr)
	want := "unhealthy: node3 is candidate in term 7 and knows no leader (applied 4, commit 4)\n"
	if code != 1 || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1, empty, %q", code, out, errOut, want)
	}
}

// The check means ready, not merely up: a node that knows a leader but
// whose /readyz fails is unhealthy, with the failed checks on one line.
func TestHealthcheckNotReady(t *testing.T) {
	const follower = `{"node_id":"node2","role":"follower","is_leader":false,"leader_id":"node1","leader_grpc_addr":"127.0.0.1:9000","term":3,"commit_index":900,"applied_index":12}`
	for _, tc := range []struct {
		name      string
		readyCode int
		readyBody string
		want      string
	}{
		{"behind and short of space", http.StatusServiceUnavailable,
			"[-]applied failed: applied index 12 is 888 entries behind the leader's commit index 900 (readyz_max_lag 100)\n[-]space failed: data_dir has 3.0 MiB free, below min_free_bytes 128.0 MiB\nreadyz check failed\n",
			"unhealthy: node2 is follower in term 3, leader node1, but not ready: applied failed: applied index 12 is 888 entries behind the leader's commit index 900 (readyz_max_lag 100); space failed: data_dir has 3.0 MiB free, below min_free_bytes 128.0 MiB\n"},
		{"no readyz", http.StatusNotFound, "404 page not found\n", "/readyz: HTTP 404 Not Found: 404 page not found\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := probedServer(t, http.StatusOK, follower, tc.readyCode, tc.readyBody)
			code, out, errOut := runHealthcheck(t, nil, "-addr", addr)
			if code != 1 || out != "" || !strings.HasSuffix(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1, empty, one line ending %q", code, out, errOut, tc.want)
			}
		})
	}
}

func TestHealthcheckFailures(t *testing.T) {
	// An address nothing listens on: bind a port, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name, addr string
		want       []string // substrings of stderr
	}{
		{"non-200", healthServer(t, http.StatusServiceUnavailable, `{"error":"starting"}`),
			[]string{"unhealthy: http://", "/health: HTTP 503 Service Unavailable", `{"error":"starting"}`}},
		{"not found", healthServer(t, http.StatusNotFound, "404 page not found\n"), []string{"HTTP 404 Not Found", "404 page not found"}},
		{"unreachable", unreachable, []string{"unhealthy: http://" + unreachable + "/health:", "connection refused"}},
		{"bad JSON", healthServer(t, http.StatusOK, `<html>hello</html>`),
			[]string{"answer is not health JSON", "<html>hello</html>"}},
		{"truncated JSON", healthServer(t, http.StatusOK, `{"node_id":"node1","role":`), []string{"answer is not health JSON"}},
		{"JSON without node", healthServer(t, http.StatusOK, `{}`), []string{"answer lacks node_id or role"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runHealthcheck(t, nil, "-addr", tc.addr)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and empty stdout", code, out, errOut)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
				t.Errorf("stderr %q is not one line", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if strings.Count(errOut, "/health") != 1 {
				t.Errorf("stderr %q repeats the URL", errOut)
			}
		})
	}
}

func TestHealthcheckTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	start := time.Now()
	code, _, errOut := runHealthcheck(t, nil, "-addr", srv.URL, "-timeout", "200ms")
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %v with -timeout 200ms", elapsed)
	}
	if code != 1 || !strings.Contains(errOut, "no answer within 200ms") {
		t.Fatalf("exit %d, stderr %q; want 1 and a timeout message", code, errOut)
	}
}

func TestHealthcheckDefaultAddrFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "127.0.0.1:8080"},
		{map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": ""}, "127.0.0.1:8080"},
		{map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": "0.0.0.0:8081"}, "127.0.0.1:8081"},
		{map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": ":8082"}, "127.0.0.1:8082"},
		{map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": "[::]:8083"}, "127.0.0.1:8083"},
		{map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": "10.1.2.3:8084"}, "10.1.2.3:8084"},
		{map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": "[::1]:8085"}, "[::1]:8085"},
	} {
		if got := healthcheckAddrFromEnv(tc.env); got != tc.want {
			t.Errorf("healthcheckAddrFromEnv(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

// TestHealthcheckUsesEnvAddr checks the default -addr end to end: a node
// bound on 0.0.0.0:PORT is probed on 127.0.0.1:PORT.
func TestHealthcheckUsesEnvAddr(t *testing.T) {
	addr := healthServer(t, http.StatusOK, `{"node_id":"node1","role":"leader","is_leader":true,"leader_id":"node1","leader_grpc_addr":"127.0.0.1:9000","term":2}`)
	_, port, _ := net.SplitHostPort(addr)
	code, out, errOut := runHealthcheck(t, map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": "0.0.0.0:" + port})
	if code != 0 || !strings.HasPrefix(out, "healthy: node1 is leader") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestHealthcheckAddrForms(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/health"},
		{"0.0.0.0:8081", "http://127.0.0.1:8081/health"},
		{"node1:8080", "http://node1:8080/health"},
		{"[::1]:8080", "http://[::1]:8080/health"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/health"},
		{"http://127.0.0.1:8080/health", "http://127.0.0.1:8080/health"},
	} {
		got, err := healthcheckURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("healthcheckURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "8080", "127.0.0.1", "127.0.0.1:"} {
		if got, err := healthcheckURL(bad); err == nil {
			t.Errorf("healthcheckURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHealthcheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"extra"},
		{"-timeout", "0s"},
		{"-addr", "no-port"},
	} {
		code, out, errOut := runHealthcheck(t, nil, args...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("healthcheck %q: exit %d, stdout %q, stderr %q; want 2 with a message", args, code, out, errOut)
		}
	}
	code, _, errOut := runHealthcheck(t, nil, "-h")
	if code != 0 || !strings.Contains(errOut, "Usage: raftogram healthcheck") {
		t.Errorf("-h: exit %d, stderr %q", code, errOut)
	}
}

// TestHealthcheckTLS: with tls.health on, the check speaks HTTPS from the
// node's own environment (RAFTOGRAM_TLS_HEALTH, _TLS_CA_FILE, _NODE_ID)
// and accepts only a certificate from that CA naming that node.
func TestHealthcheckTLS(t *testing.T) {
	dir := t.TempDir()
	newCA := func(name string) (*certgen.CA, string) {
		ca, err := certgen.NewCA(name)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(file, ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
		return ca, file
	}
	ca, caFile := newCA("ca")
	_, otherFile := newCA("other")
	pair, err := ca.Node("node1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			_, _ = w.Write([]byte(`{"node_id":"node1","role":"leader","is_leader":true,"leader_id":"node1","leader_grpc_addr":"127.0.0.1:9000","term":2}`))
		case "/readyz":
			_, _ = w.Write([]byte("ok\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	env := map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": addr, "RAFTOGRAM_TLS_HEALTH": "true",
		"RAFTOGRAM_TLS_CA_FILE": caFile, "RAFTOGRAM_NODE_ID": "node1"}

	if code, out, errOut := runHealthcheck(t, env); code != 0 || !strings.HasPrefix(out, "healthy: node1 is leader") {
		t.Fatalf("from the node's environment: exit %d, %q %q", code, out, errOut)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"another node's name", env, []string{"-server-name", "node2"}, `not "node2"`},
		{"another CA", env, []string{"-ca-file", otherFile}, "certificate"},
		{"plain HTTP to a TLS listener", map[string]string{"RAFTOGRAM_HEALTH_BIND_ADDR": addr}, nil, "HTTP 400"},
	} {
		code, _, errOut := runHealthcheck(t, tc.env, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 mentioning %q", tc.name, code, errOut, tc.want)
		}
	}
	if code, _, errOut := runHealthcheck(t, env, "-ca-file", filepath.Join(dir, "missing.pem")); code != 2 {
		t.Errorf("unreadable -ca-file: exit %d, %q; want 2", code, errOut)
	}
}
