package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Time limits for the cluster to react. Generous: they bound a failure,
// while a passing run polls and moves on as soon as the state is reached.
const (
	startTimeout    = 90 * time.Second
	electionTimeout = 60 * time.Second
	convergeTimeout = 60 * time.Second
)

// bootstrapLog is what a node logs when it bootstraps the static cluster
// into an empty data directory.
const bootstrapLog = "bootstrapped static cluster"

// TestImage checks the image's metadata: scratch-based, non-root, /data
// volume, the three ports, container env defaults and the HEALTHCHECK.
func TestImage(t *testing.T) {
	image := requireImage(t)
	out := mustDocker(t, "image", "inspect", "--format", "{{json .Config}}", image)
	var cfg struct {
		User         string
		ExposedPorts map[string]struct{}
		Env          []string
		Entrypoint   []string
		Volumes      map[string]struct{}
		Healthcheck  struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("image config %s: %v", out, err)
	}
	if cfg.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532", cfg.User)
	}
	for _, p := range []string{"7000/tcp", "9000/tcp", "8080/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, cfg.ExposedPorts)
		}
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("/data is not a volume: %v", cfg.Volumes)
	}
	env := strings.Join(cfg.Env, " ")
	for _, kv := range []string{"RAFTOGRAM_RAFT_BIND_ADDR=0.0.0.0:7000", "RAFTOGRAM_GRPC_BIND_ADDR=0.0.0.0:9000",
		"RAFTOGRAM_HEALTH_BIND_ADDR=0.0.0.0:8080", "RAFTOGRAM_DATA_DIR=/data"} {
		if !strings.Contains(env, kv) {
			t.Errorf("env lacks %s: %v", kv, cfg.Env)
		}
	}
	if got := strings.Join(cfg.Healthcheck.Test, " "); got != "CMD /raftogram healthcheck" {
		t.Errorf("HEALTHCHECK = %q, want CMD /raftogram healthcheck", got)
	}
	if got := strings.Join(cfg.Entrypoint, " "); got != "/raftogram" {
		t.Errorf("ENTRYPOINT = %q", got)
	}
	// FROM scratch: the only files are the binary and two empty directories.
	layers := mustDocker(t, "image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
	if strings.Contains(layers, "apt-get") || strings.Contains(layers, "apk ") {
		t.Errorf("image history shows a distribution base:\n%s", layers)
	}
	// The binary runs in the image: version and the healthcheck's usage.
	if out, err := dockerCmd("run", "--rm", "--network", "none", image, "-version"); err != nil || !strings.HasPrefix(out, "raftogram ") {
		t.Errorf("docker run %s -version: %v: %q", image, err, out)
	}
	// Without a dialable peer list the node refuses to start, with a hint.
	out, err := dockerCmd("run", "--rm", "--network", "none", image)
	if err == nil || !strings.Contains(out, "list cluster.peers explicitly") {
		t.Errorf("docker run %s without RAFTOGRAM_CLUSTER_PEERS: %v: %q; want a config error", image, err, out)
	}
}

// TestComposeCluster runs the README flow against the compose cluster, then
// failover, a network partition, restarts with and without the volumes.
func TestComposeCluster(t *testing.T) {
	c := newCluster(t)
	checkPortsFree(t)
	general := &ledger{channel: "general"}

	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		start := time.Now()
		ok := t.Run(name, f)
		t.Logf("step %s: %v", name, time.Since(start).Round(time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}

	var leader node
	step("up from env alone", func(t *testing.T) {
		out := c.mustCompose(t, "up", "-d")
		t.Log(strings.TrimSpace(out))
		leader = c.waitLeader(t, nodes, startTimeout)
		c.waitHealthy(t, nodes, startTimeout)
		for _, n := range nodes {
			id := c.container(t, n.Service)
			if user := mustDocker(t, "inspect", "-f", "{{.Config.User}}", id); user != "65532:65532" {
				t.Errorf("%s runs as %q, want 65532:65532", n.Service, user)
			}
			if !strings.Contains(c.logsOf(t, n.Service), bootstrapLog) {
				t.Errorf("%s did not bootstrap a fresh cluster", n.Service)
			}
		}
		if vols := c.volumes(t); len(vols) != 3 {
			t.Errorf("volumes %v, want one per node", vols)
		}
	})

	step("readme health", func(t *testing.T) {
		hs, err := c.healthAll(nodes)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			h := hs[n.Service]
			wantRole := "follower"
			if n == leader {
				wantRole = "leader"
			}
			if h.Role != wantRole || h.IsLeader != (n == leader) || h.LeaderID != leader.Service ||
				h.LeaderRaftAddr != leader.RaftAddr || h.LeaderGRPCAddr != leader.GRPCAddr {
				t.Errorf("%s /health = %+v; want role %s, leader %s at raft %s grpc %s",
					n.Service, h, wantRole, leader.Service, leader.RaftAddr, leader.GRPCAddr)
			}
		}
	})

	step("readme grpc flow on the leader", func(t *testing.T) {
		cl := c.client(t, leader.GRPCAddr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cr, err := cl.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "General"})
		if err != nil || cr.GetChannelId() != "general" || cr.GetName() != "General" || !cr.GetCreated() {
			t.Fatalf("CreateChannel general = %v, %v; want created", cr, err)
		}
		cr, err = cl.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "Other"})
		if err != nil || cr.GetCreated() || cr.GetName() != "General" {
			t.Fatalf("CreateChannel general again = %v, %v; want the stored channel, created=false", cr, err)
		}
		cr, err = cl.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{Name: "general"})
		if err != nil || !strings.HasPrefix(cr.GetChannelId(), "channel-") || !cr.GetCreated() {
			t.Fatalf("CreateChannel without id = %v, %v; want a server-assigned channel-<index>", cr, err)
		}

		first := c.send(t, general, "alice", "Hello")
		// The same client_message_id again: the original sequence, deduplicated.
		dup, err := cl.SendMessage(ctx, &raftogramv1.SendMessageRequest{
			ChannelId: "general", AuthorId: first.author, Payload: first.payload, ClientMessageId: first.id})
		if err != nil || dup.GetSequence() != first.seq || !dup.GetDeduplicated() {
			t.Fatalf("repeated SendMessage %s = %v, %v; want sequence %d deduplicated", first.id, dup, err, first.seq)
		}
		c.send(t, general, "bob", "Hi alice")
		c.checkHistory(t, general)

		// Subscribe replays the history, then streams a new message.
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		stream, err := cl.Subscribe(sctx, &raftogramv1.SubscribeRequest{ChannelId: "general"})
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		recv := func(n int) []*raftogramv1.Message {
			var got []*raftogramv1.Message
			for len(got) < n {
				chunk, err := stream.Recv()
				if err != nil {
					t.Fatalf("Subscribe: after %d messages: %v", len(got), err)
				}
				got = append(got, chunk.GetMessages()...)
			}
			return got
		}
		if err := compareWire(recv(len(general.msgs)), general.msgs); err != nil {
			t.Fatalf("Subscribe replay: %v", err)
		}
		m := c.send(t, general, "alice", "live")
		if err := compareWire(recv(1), []sent{m}); err != nil {
			t.Fatalf("Subscribe live: %v", err)
		}
		scancel()
		if _, err := stream.Recv(); err == io.EOF || status.Code(err) != codes.Canceled {
			t.Errorf("Subscribe after cancel: %v, want Canceled", err)
		}
	})

	step("followers answer NotLeader with a usable hint", func(t *testing.T) {
		for _, f := range others(leader) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.client(t, f.GRPCAddr).CreateChannel(ctx, &raftogramv1.CreateChannelRequest{Name: "general"})
			cancel()
			// Read through the client package's one status mapping.
			e := client.ErrorFromStatus(err)
			if e == nil || e.Code != codes.FailedPrecondition || !errors.Is(e, client.ErrNotLeader) ||
				e.Leader != leader.GRPCAddr || e.LeaderID != leader.Service {
				t.Fatalf("CreateChannel on follower %s: %v; want FailedPrecondition with NotLeader{%s, %s}",
					f.Service, err, leader.GRPCAddr, leader.Service)
			}
			// The hint is dialable from the host as it is.
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			cr, err := c.client(t, e.Leader).CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "General"})
			cancel()
			if err != nil || cr.GetCreated() {
				t.Fatalf("CreateChannel on the hinted %s: %v, %v", e.Leader, cr, err)
			}
		}
	})

	step("followers serve linearizable reads (the Go client's default)", func(t *testing.T) {
		// A follower asks the leader for a read index over the nodes'
		// own network: the peer list's peer_grpc_addr (nodeN:900N), not
		// the host's 127.0.0.1:900N, which inside a container is itself.
		for _, f := range others(leader) {
			gc, err := client.New(context.Background(), client.Config{Addrs: []string{f.GRPCAddr}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			h, err := gc.ReadHistory(ctx, general.channel, client.ReadOptions{Consistency: client.Linearizable, Node: f.GRPCAddr})
			cancel()
			gc.Close()
			if err != nil || h.NodeID != f.Service || compareMessages(h.Messages, general.msgs) != nil {
				t.Fatalf("linearizable read on follower %s: %+v, %v; want its own answer with every message", f.Service, h, err)
			}
		}
	})

	step("stopping the leader fails over with nothing lost", func(t *testing.T) {
		old := leader
		id := c.container(t, old.Service)
		c.mustCompose(t, "stop", old.Service)
		if code := mustDocker(t, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
			t.Errorf("%s exited with %s after SIGTERM, want 0 (graceful shutdown)", old.Service, code)
		}
		leader = c.waitLeader(t, others(old), electionTimeout)
		if leader == old {
			t.Fatalf("stopped %s is still the leader", old.Service)
		}
		c.checkHistory(t, general)
		c.send(t, general, "carol", "after failover")
		c.checkHistory(t, general)

		c.mustCompose(t, "start", old.Service)
		c.send(t, general, "carol", "all three again")
		min := c.waitConverged(t, others(old), 1, convergeTimeout)
		c.waitConverged(t, nodes, min, convergeTimeout)
		c.checkHistory(t, general)
	})

	step("partitioned leader rejoins and converges", func(t *testing.T) {
		hs, err := c.healthAll(nodes)
		if err != nil {
			t.Fatal(err)
		}
		isolated := nodeByID(t, hs[nodes[0].Service].LeaderID)
		id := c.container(t, isolated.Service)
		network := c.project + "_raftnet"
		if nets := mustDocker(t, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", id); strings.TrimSpace(nets) != network {
			t.Fatalf("%s is on networks %q, want only %s", isolated.Service, nets, network)
		}
		mustDocker(t, "network", "disconnect", network, id)
		t.Logf("disconnected %s (the leader) from %s", isolated.Service, network)

		leader = c.waitLeader(t, others(isolated), electionTimeout)
		// Inside the isolated container the healthcheck sees no leader.
		eventually(t, electionTimeout, isolated.Service+" healthcheck fails while isolated", func() (bool, string) {
			code, out := execHealthcheck(t, id)
			return code == 1 && strings.Contains(out, "knows no leader"), fmt.Sprintf("exit %d: %s", code, out)
		})
		c.send(t, general, "dave", "during the partition 1")
		c.send(t, general, "dave", "during the partition 2")
		c.checkHistory(t, general)

		// Reconnect under the service's DNS name, which peers dial.
		mustDocker(t, "network", "connect", "--alias", isolated.Service, network, id)
		t.Logf("reconnected %s", isolated.Service)
		c.send(t, general, "dave", "healed")
		hs, err = c.healthAll(others(isolated))
		if err != nil {
			t.Fatal(err)
		}
		c.waitConverged(t, nodes, hs[leader.Service].AppliedIndex, convergeTimeout)
		c.checkHistory(t, general)
		if code, out := execHealthcheck(t, id); code != 0 {
			t.Errorf("%s healthcheck after healing: exit %d: %s", isolated.Service, code, out)
		}
	})

	step("down and up keeps the data in the volumes", func(t *testing.T) {
		before := c.volumes(t)
		// Stop first, to look at how the nodes shut down before down removes
		// the containers and their logs.
		c.mustCompose(t, "stop")
		for _, n := range nodes {
			id := c.container(t, n.Service)
			state := mustDocker(t, "inspect", "-f", "{{.State.ExitCode}} {{.State.StartedAt}} {{.State.FinishedAt}}", id)
			logs := c.logsOf(t, n.Service)
			var shutdown []string
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `"shutting down"`) || strings.Contains(line, "leadership transfer") ||
					strings.Contains(line, "shutdown_timeout") || strings.Contains(line, `"stopped"`) {
					shutdown = append(shutdown, line)
				}
			}
			t.Logf("%s: exit/started/finished %s; shutdown log:\n%s", n.Service, state, strings.Join(shutdown, "\n"))
			if !strings.HasPrefix(state, "0 ") {
				t.Errorf("%s did not exit 0 on docker-compose stop: %s", n.Service, state)
			}
		}
		c.mustCompose(t, "down")
		if after := c.volumes(t); strings.Join(after, " ") != strings.Join(before, " ") || len(after) != 3 {
			t.Fatalf("volumes after down: %v, before: %v", after, before)
		}
		c.mustCompose(t, "up", "-d")
		leader = c.waitLeader(t, nodes, startTimeout)
		for _, n := range nodes {
			if strings.Contains(c.logsOf(t, n.Service), bootstrapLog) {
				t.Errorf("%s bootstrapped again although its volume holds state", n.Service)
			}
		}
		c.checkHistory(t, general)
		if cr, err := c.goClient(t).CreateChannel(callCtx(t), "general", "General"); err != nil || cr.Created || cr.Name != "General" {
			t.Fatalf("CreateChannel general after restart = %+v, %v; want the stored channel", cr, err)
		}
		c.send(t, general, "erin", "after restart")
		c.waitConverged(t, nodes, 1, convergeTimeout)
		c.checkHistory(t, general)
		c.waitHealthy(t, nodes, startTimeout)
	})

	step("down -v bootstraps from scratch", func(t *testing.T) {
		c.mustCompose(t, "down", "-v")
		if vols := c.volumes(t); len(vols) != 0 {
			t.Fatalf("volumes left after down -v: %v", vols)
		}
		c.mustCompose(t, "up", "-d")
		leader = c.waitLeader(t, nodes, startTimeout)
		for _, n := range nodes {
			if !strings.Contains(c.logsOf(t, n.Service), bootstrapLog) {
				t.Errorf("%s did not bootstrap on empty volumes", n.Service)
			}
		}
		if _, err := c.goClient(t).ReadHistory(callCtx(t), "general", client.ReadOptions{}); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("ReadHistory general on a wiped cluster: %v, want ErrNotFound", err)
		}
		if cr, err := c.goClient(t).CreateChannel(callCtx(t), "general", "General"); err != nil || !cr.Created {
			t.Fatalf("CreateChannel general on a wiped cluster = %+v, %v; want created", cr, err)
		}
		fresh := &ledger{channel: "general"}
		c.send(t, fresh, "alice", "Hello again")
		c.checkHistory(t, fresh)
		c.waitConverged(t, nodes, 1, convergeTimeout)
	})
}
