package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/bench"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestBenchIsRegistered(t *testing.T) {
	if subcommands["bench"] == nil {
		t.Fatal("bench is not registered")
	}
}

func TestBenchParseDefaults(t *testing.T) {
	var stderr bytes.Buffer
	cfg, asJSON, err := benchParse(nil, &stderr)
	if err != nil {
		t.Fatalf("benchParse: %v (%s)", err, stderr.String())
	}
	if asJSON {
		t.Error("-json is on by default")
	}
	want := bench.DefaultConfig()
	if strings.Join(cfg.Addrs, ",") != "127.0.0.1:9000,127.0.0.1:9001,127.0.0.1:9002" ||
		cfg.Clients != 64 || cfg.Channels != 64 || cfg.Payload != 128 || cfg.Duration != 10*time.Second ||
		cfg.N != 0 || cfg.Warmup != 2*time.Second || cfg.Rate != 0 || cfg.Workload != "send" ||
		cfg.Conns != 1 || cfg.History != want.History || cfg.Subscribers != 0 || cfg.Label != "" || cfg.Inflight != bench.DefaultInflight {
		t.Errorf("defaults = %+v", cfg)
	}
	if !strings.HasPrefix(cfg.ChannelPrefix, "bench-") {
		t.Errorf("default channel prefix = %q, want bench-<time>-<random>", cfg.ChannelPrefix)
	}
	cfg2, _, _ := benchParse(nil, &stderr)
	if cfg2.ChannelPrefix == cfg.ChannelPrefix {
		t.Errorf("two runs share the channel prefix %q", cfg.ChannelPrefix)
	}
}

func TestBenchParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, asJSON, err := benchParse([]string{
		"-addrs", "10.0.0.1:9000, 10.0.0.2:9000,,",
		"-clients", "8", "-conns", "2", "-channels", "4", "-payload", "256",
		"-duration", "3s", "-n", "1000", "-warmup", "500ms", "-rate", "1500.5",
		"-workload", "subscribe", "-json", "-label", "raftogram tuned",
		"-channel-prefix", "run.7", "-subscribers", "1000", "-history", "50",
		"-read-limit", "20", "-read-fraction", "0.25", "-op-timeout", "5s",
		"-attempt-timeout", "1s", "-drain-timeout", "7s", "-setup-timeout", "9s",
		"-server-pids", "101,202", "-consistency", "at-least", "-inflight", "64",
	}, &stderr)
	if err != nil {
		t.Fatalf("benchParse: %v (%s)", err, stderr.String())
	}
	if !asJSON {
		t.Error("-json not seen")
	}
	if strings.Join(cfg.Addrs, "|") != "10.0.0.1:9000|10.0.0.2:9000" || cfg.Clients != 8 || cfg.Conns != 2 ||
		cfg.Channels != 4 || cfg.Payload != 256 || cfg.Duration != 3*time.Second || cfg.N != 1000 ||
		cfg.Warmup != 500*time.Millisecond || cfg.Rate != 1500.5 || cfg.Workload != "subscribe" ||
		cfg.Label != "raftogram tuned" || cfg.ChannelPrefix != "run.7" || cfg.Subscribers != 1000 ||
		cfg.History != 50 || cfg.ReadLimit != 20 || cfg.ReadFraction != 0.25 || cfg.OpTimeout != 5*time.Second ||
		cfg.AttemptTimeout != time.Second || cfg.DrainTimeout != 7*time.Second || cfg.SetupTimeout != 9*time.Second ||
		len(cfg.ServerPIDs) != 2 || cfg.ServerPIDs[0] != 101 || cfg.ServerPIDs[1] != 202 || cfg.Consistency != "at-least" || cfg.Inflight != 64 {
		t.Errorf("parsed = %+v", cfg)
	}
}

func TestBenchParseSubscribeDefaultsToOneSubscriberPerChannel(t *testing.T) {
	cfg, _, err := benchParse([]string{"-workload", "subscribe", "-channels", "5"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Subscribers != 5 {
		t.Errorf("subscribers = %d, want 5", cfg.Subscribers)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-workload", "write"},
		{"-clients", "0"},
		{"-channels", "-1"},
		{"-duration", "0s"},
		{"-rate", "-5"},
		{"-workload", "subscribe", "-payload", "4"},
		{"-channel-prefix", "no spaces"},
		{"-server-pids", "12,abc"},
		{"-addrs", ","},
		{"-consistency", "eventual"},
		{"-nosuchflag"},
		{"extra-arg"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, args...), nil, &stdout, &stderr)
		if code != 2 || stderr.Len() == 0 || stdout.Len() != 0 {
			t.Errorf("bench %v: exit %d, stderr %q, stdout %q; want 2 with a message", args, code, stderr.String(), stdout.String())
		}
	}
}

func TestBenchHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "-h"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("bench -h: exit %d", code)
	}
	for _, want := range []string{"-addrs", "-clients", "-channels", "-payload", "-duration", "-n", "-warmup", "-rate",
		"-workload", "-json", "-label", "-channel-prefix", "-subscribers", "-history"} {
		if !strings.Contains(stderr.String(), want+" ") && !strings.Contains(stderr.String(), want+"\n") {
			t.Errorf("usage lacks %s", want)
		}
	}
}

// tinyMessenger is a one-node leader good enough for the send workload.
type tinyMessenger struct {
	raftogramv1.UnimplementedMessengerServer
	mu   sync.Mutex
	seqs map[string]uint64
}

func (m *tinyMessenger) CreateChannel(_ context.Context, req *raftogramv1.CreateChannelRequest) (*raftogramv1.CreateChannelResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seqs[req.GetChannelId()]
	if !ok {
		m.seqs[req.GetChannelId()] = 0
	}
	return &raftogramv1.CreateChannelResponse{ChannelId: req.GetChannelId(), Created: proto.Bool(!ok)}, nil
}

func (m *tinyMessenger) SendMessage(_ context.Context, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seq, ok := m.seqs[req.GetChannelId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no channel")
	}
	m.seqs[req.GetChannelId()] = seq + 1
	return &raftogramv1.SendMessageResponse{Sequence: seq + 1, Deduplicated: proto.Bool(false)}, nil
}

func (m *tinyMessenger) ReadHistory(context.Context, *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error) {
	return nil, status.Error(codes.NotFound, "no channel")
}

func TestBenchRunsAndPrintsOneJSONLine(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	raftogramv1.RegisterMessengerServer(srv, &tinyMessenger{seqs: map[string]uint64{}})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"bench", "-addrs", lis.Addr().String(), "-clients", "3", "-channels", "2",
		"-n", "200", "-warmup", "100ms", "-json", "-label", "t"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout is not one line:\n%s", out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res["target"] != "raftogram" || res["label"] != "t" || res["ops"] != 200.0 || res["clients"] != 3.0 || res["errors"] != 0.0 {
		t.Errorf("result = %s", out)
	}
	if !strings.Contains(stderr.String(), "leader is "+lis.Addr().String()) {
		t.Errorf("stderr lacks the leader line:\n%s", stderr.String())
	}

	// Without -json: the human summary.
	stdout.Reset()
	code = run(ctx, []string{"bench", "-addrs", lis.Addr().String(), "-clients", "2", "-channels", "1",
		"-n", "50", "-warmup", "0s"}, nil, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "throughput") || !strings.Contains(stdout.String(), "p99.9") {
		t.Errorf("exit %d, summary:\n%s", code, stdout.String())
	}
}
