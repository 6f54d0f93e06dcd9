package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/proccluster"
	"github.com/raftogram/raftogram/internal/testbin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// enableVar must be "1" for the tests to run.
const enableVar = "RAFTOGRAM_E2E_DOCKER"

// TestMain runs the tests only when they are asked for and Docker is usable.
// Otherwise it prints why to stderr and runs no test, so `go test ./...`
// reports the package as "[no tests to run]" rather than as a silent pass.
func TestMain(m *testing.M) {
	flag.Parse()
	if reason := skipReason(); reason != "" {
		fmt.Fprintf(os.Stderr, "SKIP: docker e2e tests not run: %s\n", reason)
		_ = flag.Set("test.run", "^$")
	}
	os.Exit(m.Run())
}

func skipReason() string {
	if os.Getenv(enableVar) != "1" {
		return enableVar + "=1 is not set (run scripts/e2e-docker.sh or make e2e-docker)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info").CombinedOutput(); err != nil {
		return fmt.Sprintf("`docker info` failed: %v: %s", err, firstLine(out))
	}
	if out, err := exec.CommandContext(ctx, "docker-compose", "version").CombinedOutput(); err != nil {
		return fmt.Sprintf("`docker-compose version` failed: %v: %s", err, firstLine(out))
	}
	return ""
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// node is one compose service and the addresses the host reaches it on.
type node struct {
	Service    string // compose service name = Raft node id
	RaftAddr   string // as peers dial it, inside the compose network
	GRPCAddr   string // published on the host's loopback
	HealthAddr string // published on the host's loopback
}

// nodes mirror docker-compose.yml (and the README's ports).
var nodes = []node{
	{"node1", "node1:7000", "127.0.0.1:9000", "127.0.0.1:8080"},
	{"node2", "node2:7001", "127.0.0.1:9001", "127.0.0.1:8081"},
	{"node3", "node3:7002", "127.0.0.1:9002", "127.0.0.1:8082"},
}

func nodeByID(t *testing.T, id string) node {
	t.Helper()
	for _, n := range nodes {
		if n.Service == id {
			return n
		}
	}
	t.Fatalf("unknown node id %q", id)
	return node{}
}

func others(except node) []node {
	var out []node
	for _, n := range nodes {
		if n.Service != except.Service {
			out = append(out, n)
		}
	}
	return out
}

// imageUnderTest is the image the compose file runs: RAFTOGRAM_IMAGE, by
// default raftogram:dev (what `make docker` builds).
func imageUnderTest() string {
	if image := os.Getenv("RAFTOGRAM_IMAGE"); image != "" {
		return image
	}
	return "raftogram:dev"
}

// requireImage returns the image under test, failing when it is not built
// (docker-compose would otherwise build it from whatever ./raftogram holds).
func requireImage(t *testing.T) string {
	t.Helper()
	image := imageUnderTest()
	if out, err := dockerCmd("image", "inspect", "--format", "{{.Id}}", image); err != nil {
		t.Fatalf("image %s is not built (%v: %s); run scripts/e2e-docker.sh, or make build && docker build -t %s .", image, err, out, image)
	}
	return image
}

// cluster is one compose project of the repository's docker-compose.yml.
type cluster struct {
	project string
	file    string
	extra   []string // override files after file (docker-compose.secure.yml)
	image   string
	env     []string
	http    *http.Client

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	gc    *client.Client // the Go client, made on first use
}

// newCluster prepares a uniquely named compose project and registers its
// removal (docker-compose down -v), printing the containers' logs first
// when the test failed.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	file, err := filepath.Abs(filepath.Join(filepath.Dir(self), "..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("compose file: %v", err)
	}
	project := os.Getenv("RAFTOGRAM_E2E_PROJECT")
	if project == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		project = "rge2e" + hex.EncodeToString(b[:])
	}
	image := requireImage(t)
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "RAFTOGRAM_COMPOSE_PEERS", "RAFTOGRAM_IMAGE", "RAFTOGRAM_LOG_LEVEL", "RAFTOGRAM_SECURE_DIR", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME":
			continue // the test pins these
		}
		env = append(env, kv)
	}
	env = append(env, "RAFTOGRAM_IMAGE="+image, "RAFTOGRAM_LOG_LEVEL=info")
	c := &cluster{
		project: project, file: file, image: image, env: env,
		http:  &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
		conns: map[string]*grpc.ClientConn{},
	}
	t.Logf("compose project %s, image %s, file %s", project, image, file)
	t.Cleanup(func() {
		c.mu.Lock()
		for _, cc := range c.conns {
			cc.Close()
		}
		if c.gc != nil {
			c.gc.Close()
		}
		c.mu.Unlock()
		if t.Failed() {
			if out, err := c.compose(context.Background(), "logs", "--no-color", "--tail=80"); err == nil {
				t.Logf("container logs (last 80 lines each):\n%s", out)
			}
		}
		out, err := c.compose(context.Background(), "down", "-v", "--remove-orphans", "-t", "15")
		if err != nil {
			t.Errorf("cleanup: docker-compose down -v: %v\n%s", err, out)
		}
	})
	return c
}

// compose runs docker-compose on the project and returns its combined output.
func (c *cluster) compose(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	files := []string{"-p", c.project, "-f", c.file}
	for _, f := range c.extra {
		files = append(files, "-f", f)
	}
	cmd := exec.CommandContext(ctx, "docker-compose", append(append(files, "--ansi", "never"), args...)...)
	cmd.Env = c.env
	cmd.Dir = filepath.Dir(c.file)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) mustCompose(t *testing.T, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := c.compose(context.Background(), args...)
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("docker-compose %s (%v)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

// dockerCmd runs the docker CLI and returns its trimmed combined output.
func dockerCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerCmd(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// container returns the id of the service's container in this project
// (running or not).
func (c *cluster) container(t *testing.T, service string) string {
	t.Helper()
	id := mustDocker(t, "ps", "-a", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+c.project,
		"--filter", "label=com.docker.compose.service="+service)
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("service %s: want one container, got %q", service, id)
	}
	return id
}

// volumes lists the project's volumes.
func (c *cluster) volumes(t *testing.T) []string {
	t.Helper()
	out := mustDocker(t, "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+c.project)
	vols := strings.Fields(out)
	sort.Strings(vols)
	return vols
}

// checkPortsFree fails when something already answers on a published port:
// the test must only ever talk to its own containers.
func checkPortsFree(t *testing.T) {
	t.Helper()
	for _, n := range nodes {
		for _, addr := range []string{n.GRPCAddr, n.HealthAddr} {
			if conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond); err == nil {
				conn.Close()
				t.Fatalf("%s already accepts connections; stop whatever listens there (a dev cluster? another compose project?) before running the docker e2e", addr)
			}
		}
	}
}

// health asks one node's published /health and checks it answers as that
// node.
func (c *cluster) health(n node) (httpapi.Health, error) {
	h, err := testbin.GetHealth(c.http, n.HealthAddr)
	if err != nil {
		return httpapi.Health{}, err
	}
	if h.NodeID != n.Service {
		return httpapi.Health{}, fmt.Errorf("%s answered as node %q, want %q", n.HealthAddr, h.NodeID, n.Service)
	}
	return h, nil
}

// healthAll asks every node in among; it fails when one does not answer.
func (c *cluster) healthAll(among []node) (map[string]httpapi.Health, error) {
	out := make(map[string]httpapi.Health, len(among))
	for _, n := range among {
		h, err := c.health(n)
		if err != nil {
			return nil, err
		}
		out[n.Service] = h
	}
	return out, nil
}

// eventually polls cond every 250ms until it reports done, failing the test
// with the last state seen when timeout passes first.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := cond()
		if done {
			t.Logf("%s after %v: %s", what, time.Since(start).Round(time.Millisecond), state)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last state: %s", what, timeout, state)
		}
		<-tick.C
	}
}

// waitLeader waits until every node in among answers /health and exactly
// one of them leads with the others following it
// ([proccluster.OneLeader], the check the process harness uses), and
// returns that leader.
func (c *cluster) waitLeader(t *testing.T, among []node, timeout time.Duration) node {
	t.Helper()
	var leader string
	eventually(t, timeout, fmt.Sprintf("one leader among %s", names(among)), func() (bool, string) {
		hs, err := c.healthAll(among)
		if err != nil {
			return false, err.Error()
		}
		id, err := proccluster.OneLeader(hs)
		if err != nil {
			return false, err.Error()
		}
		leader = id
		return true, proccluster.Describe(hs)
	})
	return nodeByID(t, leader)
}

// waitConverged waits until every node in among agrees on the leader and
// has applied the same index, at least min ([proccluster.Converged]).
func (c *cluster) waitConverged(t *testing.T, among []node, min uint64, timeout time.Duration) uint64 {
	t.Helper()
	var applied uint64
	eventually(t, timeout, fmt.Sprintf("%s converged at applied_index >= %d", names(among), min), func() (bool, string) {
		hs, err := c.healthAll(among)
		if err != nil {
			return false, err.Error()
		}
		idx, err := proccluster.Converged(hs, min)
		if err != nil {
			return false, err.Error()
		}
		applied = idx
		return true, proccluster.Describe(hs)
	})
	return applied
}

// waitHealthy waits until Docker reports the HEALTHCHECK of each service's
// container as healthy.
func (c *cluster) waitHealthy(t *testing.T, among []node, timeout time.Duration) {
	t.Helper()
	ids := make([]string, len(among))
	for i, n := range among {
		ids[i] = c.container(t, n.Service)
	}
	eventually(t, timeout, "docker HEALTHCHECK healthy on "+names(among), func() (bool, string) {
		out, err := dockerCmd(append([]string{"inspect", "-f", "{{.Name}}={{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"}, ids...)...)
		if err != nil {
			return false, err.Error() + ": " + out
		}
		return strings.Count(out, "=healthy") == len(ids), strings.ReplaceAll(out, "\n", " ")
	})
}

func names(ns []node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Service
	}
	return strings.Join(s, ",")
}

// client returns a Messenger client for a loopback address; it refuses any
// other host so the test only ever talks to its own published ports.
func (c *cluster) client(t *testing.T, addr string) raftogramv1.MessengerClient {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("refusing to dial %q: the compose cluster publishes on 127.0.0.1 only", addr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, ok := c.conns[addr]
	if !ok {
		cc, err = grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Containers go away and come back: reconnect quickly.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second},
				MinConnectTimeout: 2 * time.Second,
			}))
		if err != nil {
			t.Fatalf("grpc client for %s: %v", addr, err)
		}
		c.conns[addr] = cc
	}
	return raftogramv1.NewMessengerClient(cc)
}

// goClient returns the cluster's Go client (package client), as an
// application would use it: given the three published addresses, it finds
// and follows the leader, retries what is safe to retry and keeps a write's
// client_message_id across attempts. It is closed when the test ends.
func (c *cluster) goClient(t *testing.T) *client.Client {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gc == nil {
		var addrs []string
		for _, n := range nodes {
			addrs = append(addrs, n.GRPCAddr)
		}
		gc, err := client.New(context.Background(), client.Config{Addrs: addrs, Consistency: client.LeaderOnly})
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		c.gc = gc
	}
	return c.gc
}

// callTimeout bounds one call of the Go client, its retries included: long
// enough for an election after a container stops or is cut off.
const callTimeout = 90 * time.Second

// callCtx is a context for one call of the Go client.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// sent is a message the cluster acknowledged.
type sent struct {
	id      string
	author  string
	payload []byte
	seq     uint64
}

// ledger is every message acknowledged in one channel, in sequence order.
type ledger struct {
	channel string
	msgs    []sent
}

// send sends a new message through the Go client (which retries with the
// same client_message_id, so a retried write is deduplicated) and checks it
// gets the next sequence.
func (c *cluster) send(t *testing.T, l *ledger, author, text string) sent {
	t.Helper()
	m := sent{id: fmt.Sprintf("msg-%d", len(l.msgs)+1), author: author, payload: []byte(text)}
	res, err := c.goClient(t).Send(callCtx(t), client.SendRequest{ChannelID: l.channel, AuthorID: m.author, Payload: m.payload, ClientMessageID: m.id})
	if err != nil {
		t.Fatalf("Send %s: %v", m.id, err)
	}
	m.seq = res.Sequence
	if want := uint64(len(l.msgs) + 1); m.seq != want {
		t.Fatalf("Send %s: sequence %d, want %d (deduplicated=%v)", m.id, m.seq, want, res.Deduplicated)
	}
	l.msgs = append(l.msgs, m)
	return m
}

// checkHistory reads the channel's whole history from the leader through
// the Go client and compares it with the ledger: nothing lost, nothing
// extra, in order.
func (c *cluster) checkHistory(t *testing.T, l *ledger) {
	t.Helper()
	var got []client.Message
	for after := uint64(0); ; {
		h, err := c.goClient(t).ReadHistory(callCtx(t), l.channel, client.ReadOptions{After: after, Limit: 1000})
		if err != nil {
			t.Fatalf("ReadHistory %s after %d: %v", l.channel, after, err)
		}
		got = append(got, h.Messages...)
		if !h.HasMore || len(h.Messages) == 0 {
			break
		}
		after = h.Messages[len(h.Messages)-1].Sequence
	}
	if err := compareMessages(got, l.msgs); err != nil {
		t.Fatalf("history of %s: %v", l.channel, err)
	}
}

// compareMessages compares messages as the Go client returns them with
// the ledger.
func compareMessages(got []client.Message, want []sent) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d: %v", len(got), len(want), seqs(got))
	}
	for i, g := range got {
		w := want[i]
		if g.Sequence != w.seq || g.ClientMessageID != w.id || g.AuthorID != w.author || !bytes.Equal(g.Payload, w.payload) {
			return fmt.Errorf("message %d = {seq %d id %q author %q payload %q}, want {seq %d id %q author %q payload %q}",
				i, g.Sequence, g.ClientMessageID, g.AuthorID, g.Payload, w.seq, w.id, w.author, w.payload)
		}
		if g.CreatedAt.IsZero() {
			return fmt.Errorf("message %d has no created_at", i)
		}
	}
	return nil
}

// compareWire compares messages as the wire carries them with the ledger,
// and checks that each carries created_at.
func compareWire(got []*raftogramv1.Message, want []sent) error {
	ms := make([]client.Message, len(got))
	for i, g := range got {
		if g.GetCreatedAt() == nil {
			return fmt.Errorf("message %d has no created_at", i)
		}
		ms[i] = client.Message{Sequence: g.GetSequence(), AuthorID: g.GetAuthorId(), Payload: g.GetPayload(),
			ClientMessageID: g.GetClientMessageId(), CreatedAt: g.GetCreatedAt().AsTime()}
	}
	return compareMessages(ms, want)
}

func seqs(ms []client.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Sequence
	}
	return out
}

// logsOf returns the service's container logs (stdout and stderr).
func (c *cluster) logsOf(t *testing.T, service string) string {
	t.Helper()
	return mustDocker(t, "logs", c.container(t, service))
}

// execHealthcheck runs `raftogram healthcheck` inside a container, the way
// Docker's HEALTHCHECK does, and returns its exit code and output.
func execHealthcheck(t *testing.T, container string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "exec", container, "/raftogram", "healthcheck").CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, strings.TrimSpace(string(out))
	case errors.As(err, &ee):
		return ee.ExitCode(), strings.TrimSpace(string(out))
	default:
		t.Fatalf("docker exec %s healthcheck: %v: %s", container, err, out)
		return -1, ""
	}
}
