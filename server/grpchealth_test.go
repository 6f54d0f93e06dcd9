package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/grpcapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// healthProbeBinary finds grpc-health-probe (.ci/run installs v0.4.62 with
// go install) in PATH or $HOME/go/bin, or skips the test saying why.
func healthProbeBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpc-health-probe"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "grpc-health-probe")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("SKIP: grpc-health-probe is not installed (not in PATH nor $HOME/go/bin); install it with: go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62")
	return ""
}

// probe runs grpc-health-probe against addr for service and returns its
// exit code and output.
func probe(t *testing.T, bin, addr, service string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-addr="+addr, "-service="+service, "-connect-timeout=5s", "-rpc-timeout=5s").CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run %s: %v", bin, err)
	return -1, ""
}

// waitProbe polls grpc-health-probe until it exits with want.
func waitProbe(t *testing.T, bin, addr, service string, want int) string {
	t.Helper()
	var code int
	var out string
	waitFor(t, fmt.Sprintf("grpc-health-probe %s -service=%q exits %d", addr, service, want), 20*time.Second, func() error {
		code, out = probe(t, bin, addr, service)
		if code != want {
			return fmt.Errorf("exit %d: %s", code, strings.TrimSpace(out))
		}
		return nil
	})
	return out
}

// The real grpc-health-probe sees the standard health protocol: "" serves on
// leader and follower, raftogram.v1.Messenger only where writes succeed (the
// leader), and the statuses follow a leadership change.
func TestGRPCHealthProbeOnLeaderAndFollower(t *testing.T) {
	bin := healthProbeBinary(t)
	c := newTestCluster(t, 3)
	l := c.leader()
	f := (l + 1) % 3
	// grpc-health-probe exits 0 when SERVING and 4 when not (its docs).
	const serving, notServing = 0, 4
	if out := waitProbe(t, bin, c.cfgs[l].GRPCBindAddr, "", serving); !strings.Contains(out, "SERVING") {
		t.Errorf("leader, service \"\": output %q", out)
	}
	waitProbe(t, bin, c.cfgs[l].GRPCBindAddr, grpcapi.MessengerService, serving)
	waitProbe(t, bin, c.cfgs[f].GRPCBindAddr, "", serving)
	if out := waitProbe(t, bin, c.cfgs[f].GRPCBindAddr, grpcapi.MessengerService, notServing); !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("follower, Messenger: output %q", out)
	}
	if code, out := probe(t, bin, c.cfgs[f].GRPCBindAddr, "no.such.Service"); code == serving || code == notServing {
		t.Errorf("unknown service: exit %d (%s), want the probe's error exit", code, out)
	}

	// Leadership moves: the old leader stops (handing over), the new one
	// serves Messenger.
	c.stop(l)
	nl := c.leader()
	waitProbe(t, bin, c.cfgs[nl].GRPCBindAddr, grpcapi.MessengerService, serving)
	other := 3 - l - nl
	waitProbe(t, bin, c.cfgs[other].GRPCBindAddr, grpcapi.MessengerService, notServing)
	waitProbe(t, bin, c.cfgs[other].GRPCBindAddr, "", serving)
}

// A follower with forward_writes serves Messenger writes, so its health
// says SERVING; "" is NOT_SERVING once no leader is known.
func TestGRPCHealthProbeForwardingFollowerAndNoLeader(t *testing.T) {
	bin := healthProbeBinary(t)
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.ForwardWrites = true })
	l := c.leader()
	f := (l + 1) % 3
	waitProbe(t, bin, c.cfgs[f].GRPCBindAddr, grpcapi.MessengerService, 0)
	c.stop(l)
	c.leader()
	c.stop(3 - l - f)
	waitProbe(t, bin, c.cfgs[f].GRPCBindAddr, "", 4)
	waitProbe(t, bin, c.cfgs[f].GRPCBindAddr, grpcapi.MessengerService, 4)
}

// listServices asks addr's server reflection for its services.
func listServices(ctx context.Context, addr string) ([]string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, nil
}

// grpc_reflection: true lets grpcurl-style clients list the services; by
// default reflection is Unimplemented.
func TestServerReflectionOnlyWhenConfigured(t *testing.T) {
	on := newTestCluster(t, 1, func(cfg *config.Config) { cfg.GRPCReflection = true })
	off := newTestCluster(t, 1)
	ctx := ctxT(t)
	names, err := listServices(ctx, on.cfgs[0].GRPCBindAddr)
	if err != nil {
		t.Fatalf("reflection on: %v", err)
	}
	for _, want := range []string{"raftogram.v1.Messenger", "raftogram.v1.Admin", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
	if _, err := listServices(ctx, off.cfgs[0].GRPCBindAddr); status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection off: %v, want Unimplemented", err)
	}
}

// httpGet returns the status code and body of GET http://addr+path.
func httpGet(addr, path string) (int, string, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHTTP polls GET addr+path until it answers code with a body holding
// every want.
func waitHTTP(t *testing.T, addr, path string, code int, want ...string) string {
	t.Helper()
	var body string
	waitFor(t, fmt.Sprintf("GET %s%s = %d", addr, path, code), 20*time.Second, func() error {
		got, b, err := httpGet(addr, path)
		if err != nil {
			return err
		}
		body = b
		if got != code {
			return fmt.Errorf("%d: %s", got, b)
		}
		for _, w := range want {
			if !strings.Contains(b, w) {
				return fmt.Errorf("body lacks %q: %s", w, b)
			}
		}
		return nil
	})
	return body
}

// On a real cluster every node is live and ready; a node that lost its
// quorum is still live but not ready, saying it knows no leader.
func TestLivezAndReadyzOnACluster(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	c.send("general", "m1")
	for i := range 3 {
		waitHTTP(t, c.cfgs[i].HealthBindAddr, "/readyz", http.StatusOK, "ok\n")
		waitHTTP(t, c.cfgs[i].HealthBindAddr, "/livez?verbose", http.StatusOK, "[+]loops ok", "[+]raft ok", "[+]apply ok", "[+]commit ok")
	}
	f := (l + 1) % 3
	c.stop(l)
	c.leader()
	c.stop(3 - l - f)
	waitHTTP(t, c.cfgs[f].HealthBindAddr, "/readyz", http.StatusServiceUnavailable, "[-]leader failed: ", "knows no leader", "readyz check failed")
	waitHTTP(t, c.cfgs[f].HealthBindAddr, "/livez", http.StatusOK, "ok\n")
}
