// Command memload measures the peak resident memory (VmHWM) of each node of
// a three-node cluster of a raftogram binary under three loads (issue 10,
// "Bounded resources"): 200 sends of 1 MiB; 50 Subscribe streams that never
// read while 1 MiB messages flow; a burst creating 20,000 channels. A probe
// client sends a small message every 250ms throughout and reports its
// failures and slowest answer, to show the node keeps serving others. Each
// node's figure is VmHWM/RssAnon-at-the-end in MiB (see hwm).
//
//	go run ./scripts/memload -bin ./raftogram [-load all|sends|subs|channels]
//
// Each load runs on a fresh cluster (data under a temporary directory) on
// 127.0.0.1 ports from -port.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
)

func main() {
	bin := flag.String("bin", "./raftogram", "the raftogram binary to measure")
	load := flag.String("load", "all", "sends, subs, channels or all")
	port := flag.Int("port", 17000, "first of 9 consecutive local ports")
	sends := flag.Int("sends", 200, "1 MiB messages per load")
	subs := flag.Int("subs", 50, "non-reading subscribers")
	channels := flag.Int("channels", 20000, "channels in the burst")
	flag.Parse()
	loads := []string{"sends", "subs", "channels"}
	if *load != "all" {
		loads = []string{*load}
	}
	for _, l := range loads {
		if err := run(*bin, l, *port, *sends, *subs, *channels); err != nil {
			fmt.Fprintf(os.Stderr, "memload %s: %v\n", l, err)
			os.Exit(1)
		}
	}
}

type cluster struct {
	cmds  []*exec.Cmd
	addrs []string
	dir   string
}

func start(bin string, port int) (*cluster, error) {
	dir, err := os.MkdirTemp("", "memload-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	var peers []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("node%d=127.0.0.1:%d/127.0.0.1:%d", i+1, port+i, port+3+i))
		c.addrs = append(c.addrs, fmt.Sprintf("127.0.0.1:%d", port+3+i))
	}
	for i := range 3 {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("RAFTOGRAM_NODE_ID=node%d", i+1),
			fmt.Sprintf("RAFTOGRAM_DATA_DIR=%s", filepath.Join(dir, fmt.Sprint("node", i+1))),
			fmt.Sprintf("RAFTOGRAM_RAFT_BIND_ADDR=127.0.0.1:%d", port+i),
			fmt.Sprintf("RAFTOGRAM_GRPC_BIND_ADDR=127.0.0.1:%d", port+3+i),
			fmt.Sprintf("RAFTOGRAM_HEALTH_BIND_ADDR=127.0.0.1:%d", port+6+i),
			"RAFTOGRAM_CLUSTER_PEERS="+strings.Join(peers, ","),
			"RAFTOGRAM_LOG_LEVEL=warn")
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			c.stop()
			return nil, err
		}
		c.cmds = append(c.cmds, cmd)
	}
	return c, nil
}

func (c *cluster) stop() {
	for _, cmd := range c.cmds {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range c.cmds {
		cmd.Wait()
	}
	os.RemoveAll(c.dir)
}

// hwm returns each node's VmHWM (peak resident) and, after a slash, its
// RssAnon now (resident memory not backed by a file: the heap, without the
// mapped raft.db and SQLite files), in MiB.
func (c *cluster) hwm() []string {
	var out []string
	for i, cmd := range c.cmds {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			out = append(out, fmt.Sprintf("node%d=?", i+1))
			continue
		}
		kb := map[string]int{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && (k == "VmHWM" || k == "RssAnon") {
				var n int
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &n)
				kb[k] = n
			}
		}
		f.Close()
		out = append(out, fmt.Sprintf("node%d=%d/%dMiB", i+1, kb["VmHWM"]/1024, kb["RssAnon"]/1024))
	}
	return out
}

// probe sends a small message every 250ms until ctx ends; it reports the
// failures and the slowest answer.
func probe(ctx context.Context, c *client.Client) (fails int, slowest time.Duration) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fails, slowest
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		_, err := c.Send(cctx, client.SendRequest{ChannelID: "probe", AuthorID: "probe", Payload: []byte("ping")})
		cancel()
		if ctx.Err() != nil {
			return fails, slowest
		}
		if err != nil {
			fails++
		}
		slowest = max(slowest, time.Since(start))
	}
}

func run(bin, load string, port, sends, subs, channels int) error {
	cl, err := start(bin, port)
	if err != nil {
		return err
	}
	defer cl.stop()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Addrs: cl.addrs})
	if err != nil {
		return err
	}
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.CreateChannel(cctx, "probe", "probe")
		cancel()
		if err == nil || errors.Is(err, client.ErrAlreadyExists) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster never came up: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := c.CreateChannel(ctx, "big", "big"); err != nil {
		return err
	}
	pctx, stopProbe := context.WithCancel(ctx)
	var fails int
	var slowest time.Duration
	probed := make(chan struct{})
	go func() { fails, slowest = probe(pctx, c); close(probed) }()
	start := time.Now()
	extra := ""
	switch load {
	case "sends":
		err = sendBig(ctx, c, sends)
	case "subs":
		extra, err = stuckSubs(ctx, c, cl, sends, subs)
	case "channels":
		extra, err = burst(ctx, c, channels)
	default:
		err = fmt.Errorf("unknown load %q", load)
	}
	took := time.Since(start)
	stopProbe()
	<-probed
	if err != nil {
		return err
	}
	fmt.Printf("%-8s %s  took %s  probe: %d failed, slowest %s%s\n", load, strings.Join(cl.hwm(), " "),
		took.Round(100*time.Millisecond), fails, slowest.Round(time.Millisecond), extra)
	return nil
}

// sendBig sends n 1 MiB messages to "big" from 4 writers.
func sendBig(ctx context.Context, c *client.Client, n int) error {
	payload := make([]byte, 1<<20)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := c.Send(ctx, client.SendRequest{ChannelID: "big", AuthorID: "load", Payload: payload}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// stuckSubs opens n Subscribe streams on the leader that never read, sends
// the 1 MiB messages, then reports how the streams ended.
func stuckSubs(ctx context.Context, c *client.Client, cl *cluster, sends, n int) (string, error) {
	if _, err := c.Send(ctx, client.SendRequest{ChannelID: "big", AuthorID: "load", Payload: []byte("hello")}); err != nil {
		return "", err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var streams []grpc.ServerStreamingClient[raftogramv1.SubscribeChunk]
	for _, addr := range cl.addrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		api := raftogramv1.NewMessengerClient(conn)
		for range n {
			st, err := api.Subscribe(sctx, &raftogramv1.SubscribeRequest{ChannelId: "big", AfterSequence: 1})
			if err != nil {
				return "", err
			}
			streams = append(streams, st)
		}
	}
	if err := sendBig(ctx, c, sends); err != nil {
		return "", err
	}
	// Only now read: count the streams each status ended (the followers'
	// end with NotLeader at once; the leader's are the load).
	codes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idle := time.AfterFunc(5*time.Second, cancel)
			defer idle.Stop()
			for {
				_, err := st.Recv()
				if err != nil {
					mu.Lock()
					codes[status.Code(err).String()]++
					mu.Unlock()
					return
				}
				idle.Reset(5 * time.Second)
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("  streams ended: %v", codes), nil
}

// burst creates n channels from 32 callers, retrying ResourceExhausted
// (the creation rate limit) after 20ms.
func burst(ctx context.Context, c *client.Client, n int) (string, error) {
	var next, limited atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				for {
					_, err := c.CreateChannel(ctx, fmt.Sprint("ch-", i), "burst")
					if errors.Is(err, client.ErrResourceExhausted) {
						limited.Add(1)
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if err != nil && !errors.Is(err, client.ErrAlreadyExists) {
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return fmt.Sprintf("  rate-limited answers: %d", limited.Load()), <-errs
}
