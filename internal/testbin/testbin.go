// Package testbin holds what the harnesses that drive the real raftogram
// binary (e2e, e2e/docker and torture) share: building the binary, picking
// free loopback ports, a clean environment for a node, polling, and reading
// a node's GET /health into an [httpapi.Health].
package testbin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/raftogram/raftogram/httpapi"
)

// ModuleRoot walks up from the working directory to the first directory
// holding a go.mod and returns it. It returns the error of [os.Getwd], or
// an error when no directory up to the file system root holds a go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// BuildBinary runs `go build -o dir/raftogram ./cmd/raftogram` from
// [ModuleRoot] and returns the path of the binary it wrote (dir/raftogram).
// It returns ModuleRoot's error, an error when no go tool is on PATH, or
// an error holding go build's combined output when the build fails.
func BuildBinary(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go tool not found: %w", err)
	}
	out := filepath.Join(dir, "raftogram")
	cmd := exec.Command(goTool, "build", "-o", out, "./cmd/raftogram")
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/raftogram: %w\n%s", err, buf.String())
	}
	return out, nil
}

// FreePorts returns n distinct free addresses "127.0.0.1:port". It holds
// all n listeners open until every port is chosen, so the ports differ,
// then closes them: the ports are free when it returns, though nothing
// stops another process from taking one before the caller binds it. It
// returns an error (and no address) when a listener cannot be opened.
func FreePorts(n int) ([]string, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// BaseEnv returns this process's environment without any RAFTOGRAM_*
// variable, so nothing from the caller's shell leaks into the configuration
// of a node started with it. It never fails; the result may be empty.
func BaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFTOGRAM_") {
			env = append(env, kv)
		}
	}
	return env
}

// Poll calls cond, then again every interval, until it returns nil, ctx
// ends or timeout has passed since the first call. It returns nil once cond
// returned nil; otherwise an error "not within <timeout>: <last error>"
// wrapping cond's last error, or, when ctx ended first, one wrapping
// ctx.Err() that also names cond's last error.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// HealthTimeout bounds one GetHealth request made without a client of the
// caller's own.
const HealthTimeout = time.Second

var defaultHealthClient = &http.Client{Timeout: HealthTimeout}

// GetHealth fetches GET http://addr/health with client (when nil, a shared
// client whose requests time out after [HealthTimeout]) and returns the
// decoded body. It returns the client's error (e.g. connection refused or a
// timeout), or an error when the status is not 200, the Content-Type is
// not application/json or the body does not decode as an [httpapi.Health].
func GetHealth(client *http.Client, addr string) (httpapi.Health, error) {
	if client == nil {
		client = defaultHealthClient
	}
	url := "http://" + addr + "/health"
	resp, err := client.Get(url)
	if err != nil {
		return httpapi.Health{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpapi.Health{}, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return httpapi.Health{}, fmt.Errorf("GET %s: content type %q", url, ct)
	}
	var h httpapi.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return httpapi.Health{}, fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return h, nil
}
