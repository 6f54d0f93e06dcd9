package docker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/certs/certgen"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// secureMaterial is what docker-compose.secure.yml mounts at /secure: a
// throwaway CA, node certificates (ca.Node: DNS SAN nodeN, the container
// hostname and node id, and IP SAN 127.0.0.1, where the host dials gRPC),
// rules.yaml with the tokens hashed, and the tokens themselves.
type secureMaterial struct {
	dir                   string
	admin, writer, reader string
}

// newSecureMaterial writes the material into a fresh directory under the
// system temp dir, readable by the containers' user 65532 (throwaway
// secrets, removed when the test ends).
func newSecureMaterial(t *testing.T) *secureMaterial {
	t.Helper()
	dir, err := os.MkdirTemp("", "raftogram-e2e-secure-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := certgen.NewCA("raftogram e2e CA (throwaway)")
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", ca.PEM)
	for _, n := range nodes {
		pair, err := ca.Node(n.Service)
		if err != nil {
			t.Fatal(err)
		}
		write(n.Service+".pem", pair.CertPEM)
		write(n.Service+"-key.pem", pair.KeyPEM)
	}
	m := &secureMaterial{dir: dir}
	var rules strings.Builder
	rules.WriteString("tokens:\n")
	for _, tk := range []struct {
		who string
		tok *string
	}{{"admin", &m.admin}, {"writer", &m.writer}, {"reader", &m.reader}} {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		*tk.tok = hex.EncodeToString(b)
		sum := sha256.Sum256([]byte(*tk.tok))
		fmt.Fprintf(&rules, "  - {principal: %s, sha256: %s, roles: [%s]}\n", tk.who, hex.EncodeToString(sum[:]), tk.who)
	}
	rules.WriteString(`roles:
  admin:  {create: ["*"], publish: ["*"], read: ["*"], admin: true, impersonate: true}
  writer: {create: ["*"], publish: ["*"], read: ["*"]}
  reader: {read: ["*"]}
`)
	write("rules.yaml", []byte(rules.String()))
	return m
}

// newSecureCluster is newCluster with docker-compose.secure.yml on top,
// mounting m.
func newSecureCluster(t *testing.T, m *secureMaterial) *cluster {
	t.Helper()
	c := newCluster(t)
	_, self, _, _ := runtime.Caller(0)
	file, err := filepath.Abs(filepath.Join(filepath.Dir(self), "..", "..", "docker-compose.secure.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("compose file: %v", err)
	}
	c.extra = append(c.extra, file)
	c.env = append(c.env, "RAFTOGRAM_SECURE_DIR="+m.dir)
	t.Logf("secure override %s, material in %s", file, m.dir)
	return c
}

// secureClient is the Go client over TLS (the CA of m) with token ("" for
// none), closed when the test ends.
func secureClient(t *testing.T, m *secureMaterial, token string) *client.Client {
	t.Helper()
	tc, err := client.LoadTLS(client.TLSFiles{CA: filepath.Join(m.dir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.GRPCAddr)
	}
	cl, err := client.New(context.Background(), client.Config{Addrs: addrs, TLS: tc, Token: token, Consistency: client.LeaderOnly})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestComposeSecure runs docker-compose.yml with docker-compose.secure.yml:
// the nodes elect a leader over mutual TLS, the container HEALTHCHECK
// (plain HTTP: tls.health stays false) passes, the writer token creates
// and publishes (its principal becomes the author), no token is
// Unauthenticated, the reader token may read but not publish
// (PermissionDenied), and a plaintext client gets no answer from the TLS
// port.
func TestComposeSecure(t *testing.T) {
	m := newSecureMaterial(t)
	c := newSecureCluster(t, m)
	checkPortsFree(t)

	out := c.mustCompose(t, "up", "-d")
	t.Log(strings.TrimSpace(out))
	leader := c.waitLeader(t, nodes, startTimeout)
	t.Logf("leader %s elected over mutual TLS", leader.Service)
	c.waitHealthy(t, nodes, startTimeout)
	for _, n := range nodes {
		logs := c.logsOf(t, n.Service)
		for _, want := range []string{"tls on: raft is mutual TLS", "auth on: every call authenticates"} {
			if !strings.Contains(logs, want) {
				t.Errorf("%s logs lack %q", n.Service, want)
			}
		}
		if strings.Contains(logs, "without tls") {
			t.Errorf("%s warns it listens without tls", n.Service)
		}
	}

	writer := secureClient(t, m, m.writer)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := writer.CreateChannel(ctx, "secure", "Secure"); err != nil {
		t.Fatalf("writer creates a channel: %v", err)
	}
	res, err := writer.Send(ctx, client.SendRequest{ChannelID: "secure", Payload: []byte("hello over TLS"), ClientMessageID: "s-1"})
	if err != nil {
		t.Fatalf("writer sends: %v", err)
	}
	if res.Sequence != 1 {
		t.Fatalf("writer's send: sequence %d, want 1", res.Sequence)
	}

	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	anon := secureClient(t, m, "")
	if _, err := anon.Send(short(), client.SendRequest{ChannelID: "secure", AuthorID: "writer", Payload: []byte("anon"), ClientMessageID: "s-anon"}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("send without a token: %v, want ErrUnauthenticated", err)
	}
	reader := secureClient(t, m, m.reader)
	if _, err := reader.Send(short(), client.SendRequest{ChannelID: "secure", Payload: []byte("reader"), ClientMessageID: "s-reader"}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("reader sends: %v, want ErrPermissionDenied", err)
	}
	if _, err := writer.Send(short(), client.SendRequest{ChannelID: "secure", AuthorID: "admin", Payload: []byte("spoof"), ClientMessageID: "s-spoof"}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("writer sends as admin: %v, want ErrPermissionDenied", err)
	}

	// The reader sees exactly the writer's message, authored by its
	// principal: the refused calls changed nothing.
	h, err := reader.ReadHistory(short(), "secure", client.ReadOptions{Limit: 100})
	if err != nil {
		t.Fatalf("reader reads: %v", err)
	}
	if len(h.Messages) != 1 || h.Messages[0].AuthorID != "writer" || string(h.Messages[0].Payload) != "hello over TLS" {
		t.Fatalf("history of secure = %+v, want the writer's one message authored by \"writer\"", h.Messages)
	}

	// Plaintext gRPC gets no answer from a TLS port.
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	_, err = c.client(t, leader.GRPCAddr).ListChannels(pctx, &raftogramv1.ListChannelsRequest{})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Errorf("plaintext ListChannels on %s: %v, want Unavailable or DeadlineExceeded", leader.GRPCAddr, err)
	}
}

// TestHealthcheckOverTLS runs one node with TLS on every listener, health
// included (RAFTOGRAM_TLS_HEALTH=true), and no network: the image's
// HEALTHCHECK (`raftogram healthcheck`, no flags) must speak HTTPS from
// the container's own environment and turn the container healthy.
func TestHealthcheckOverTLS(t *testing.T) {
	image := requireImage(t)
	m := newSecureMaterial(t)
	name := fmt.Sprintf("rgtlshealth%d", time.Now().UnixNano())
	out := mustDocker(t, "run", "-d", "--name", name, "--network", "none",
		"--health-interval", "1s", "--health-start-period", "30s",
		"-v", m.dir+":/secure:ro",
		"-e", "RAFTOGRAM_NODE_ID=node1",
		"-e", "RAFTOGRAM_CLUSTER_PEERS=node1=127.0.0.1:7000/127.0.0.1:9000",
		"-e", "RAFTOGRAM_TLS_CA_FILE=/secure/ca.pem",
		"-e", "RAFTOGRAM_TLS_CERT_FILE=/secure/node1.pem",
		"-e", "RAFTOGRAM_TLS_KEY_FILE=/secure/node1-key.pem",
		"-e", "RAFTOGRAM_TLS_HEALTH=true",
		"-e", "RAFTOGRAM_AUTH_RULES_FILE=/secure/rules.yaml",
		image)
	t.Cleanup(func() { dockerCmd("rm", "-f", "-v", name) })
	t.Logf("started %s", strings.TrimSpace(out))
	eventually(t, startTimeout, "container healthy over TLS", func() (bool, string) {
		st, err := dockerCmd("inspect", "-f", "{{.State.Health.Status}} {{range .State.Health.Log}}{{.ExitCode}}:{{.Output}} {{end}}", name)
		return err == nil && strings.HasPrefix(st, "healthy"), strings.TrimSpace(st)
	})
	// The probe really went over TLS: plain HTTP gets no health JSON.
	plain, err := dockerCmd("exec", name, "/raftogram", "healthcheck", "-ca-file", "")
	if err == nil || !strings.Contains(plain, "HTTP 400") {
		t.Errorf("plain-HTTP healthcheck in the TLS container: %v: %q; want exit 1 with HTTP 400", err, plain)
	}
}
