package bench

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/internal/testbin"
)

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
func fakeConfig(c *fakeCluster, workload string) Config {
	cfg := DefaultConfig()
	cfg.Addrs = []string{fakeAddr("n1"), fakeAddr("n2"), fakeAddr("n3")}
	cfg.DialOptions = c.dialOptions()
	cfg.Workload = workload
	cfg.Clients = 4
	cfg.Channels = 3
	cfg.Payload = 32
	cfg.Warmup = 50 * time.Millisecond
	cfg.Duration = 300 * time.Millisecond
	cfg.History = 150
	cfg.DrainTimeout = 5 * time.Second
	cfg.SetupTimeout = 10 * time.Second
	cfg.ProgressInterval = 50 * time.Millisecond
	return cfg
}

func runFake(t *testing.T, cfg Config) (*Result, string) {
	t.Helper()
	var progress testbin.Buffer
	cfg.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	return res, progress.String()
}

func checkCommon(t *testing.T, res *Result, cfg Config) {
	t.Helper()
	if res.Target != "raftogram" || res.Workload != cfg.Workload || res.Clients != cfg.Clients || res.Channels != cfg.Channels || res.Payload != cfg.Payload {
		t.Errorf("result header = %+v", res)
	}
	if res.Ops == 0 || res.OpsPerSec <= 0 || res.DurationS <= 0 {
		t.Errorf("ops %d, %v ops/s over %vs", res.Ops, res.OpsPerSec, res.DurationS)
	}
	if !(res.P50Ms <= res.P90Ms && res.P90Ms <= res.P99Ms && res.P99Ms <= res.P999Ms && res.P999Ms <= res.MaxMs) {
		t.Errorf("percentiles out of order: %v %v %v %v %v", res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms, res.MaxMs)
	}
	if res.Errors != 0 {
		t.Errorf("errors = %d (%v, first %q)", res.Errors, res.ErrorClasses, res.FirstError)
	}
	if res.Leader != fakeAddr("n2") {
		t.Errorf("leader = %q, want %s", res.Leader, fakeAddr("n2"))
	}
}

func TestRunSend(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadSend)
	res, progress := runFake(t, cfg)
	checkCommon(t, res, cfg)
	if res.DeliveryStats != nil || res.MixedStats != nil || res.ServiceP50Ms != 0 {
		t.Error("send result has delivery or mixed stats")
	}
	if res.WarmupOps == 0 {
		t.Error("no warm-up ops")
	}
	if !strings.Contains(progress, "measure") || !strings.Contains(progress, "ops/s") {
		t.Errorf("progress lacks measure lines:\n%s", progress)
	}
	// Every acknowledged send is stored once.
	var stored int
	for i := range cfg.Channels {
		stored += len(c.messages(channelID(res.channelPrefixForTest(t, c), i)))
	}
	if want := int(res.Ops + res.WarmupOps); stored != want {
		t.Errorf("cluster stores %d messages, the run acknowledged %d", stored, want)
	}
}

// The publish workload keeps messages in flight on Publish streams; every
// acknowledged message is stored once and the result says the window.
func TestRunPublish(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadPublish)
	cfg.Inflight = 16
	res, _ := runFake(t, cfg)
	checkCommon(t, res, cfg)
	if res.Inflight != 16 {
		t.Errorf("inflight = %d, want 16", res.Inflight)
	}
	var stored int
	for i := range cfg.Channels {
		stored += len(c.messages(channelID(res.channelPrefixForTest(t, c), i)))
	}
	if want := int(res.Ops + res.WarmupOps); stored != want {
		t.Errorf("cluster stores %d messages, the run acknowledged %d", stored, want)
	}
}

// channelPrefixForTest finds the generated prefix from the fake's channels.
func (r *Result) channelPrefixForTest(t *testing.T, c *fakeCluster) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.channels {
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			return id[:i]
		}
	}
	t.Fatal("no channels")
	return ""
}

func TestRunSendCountN(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadSend)
	cfg.N = 500
	cfg.Duration = 0
	cfg.ChannelPrefix = "fixed.prefix"
	res, _ := runFake(t, cfg)
	checkCommon(t, res, cfg)
	if res.Ops != 500 {
		t.Errorf("ops = %d, want 500", res.Ops)
	}
	if msgs := c.messages("fixed.prefix-0"); len(msgs) == 0 {
		t.Error("channel fixed.prefix-0 is empty")
	}
}

func TestRunRate(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadSend)
	cfg.Rate = 500
	cfg.Duration = 600 * time.Millisecond
	res, _ := runFake(t, cfg)
	checkCommon(t, res, cfg)
	// The limiter never runs ahead of the schedule (a lower bound would be
	// a speed assertion: a loaded machine may fall behind it).
	if res.Ops == 0 || res.OpsPerSec > 560 {
		t.Errorf("%d ops, %v ops/s at -rate 500", res.Ops, res.OpsPerSec)
	}
	if res.ServiceP50Ms <= 0 || res.ServiceP50Ms > res.P50Ms || res.ServiceP99Ms > res.P99Ms {
		t.Errorf("service p50/p99 %v/%v ms against latency from schedule %v/%v ms", res.ServiceP50Ms, res.ServiceP99Ms, res.P50Ms, res.P99Ms)
	}
}

func TestRunRead(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadRead)
	res, _ := runFake(t, cfg)
	checkCommon(t, res, cfg)
	if res.ErrorClasses[ClassBadRead] != 0 {
		t.Errorf("bad reads: %v", res.FirstError)
	}
	if got := len(c.messages(channelID(res.channelPrefixForTest(t, c), 0))); got != cfg.History {
		t.Errorf("channel 0 holds %d messages, want the %d preloaded", got, cfg.History)
	}
}

func TestRunReadDetectsShortHistory(t *testing.T) {
	if err := checkRead("c", 10, 100, 100, nil); err == nil {
		t.Error("an empty answer where 100 messages are committed passed")
	}
	if err := checkRead("c", 0, 100, 0, nil); err != nil {
		t.Errorf("empty channel: %v", err)
	}
}

func TestRunSubscribe(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadSubscribe)
	cfg.Subscribers = 7
	cfg.Rate = 1000
	res, _ := runFake(t, cfg)
	checkCommon(t, res, cfg)
	d := res.DeliveryStats
	if d == nil {
		t.Fatal("no delivery stats")
	}
	if d.Subscribers != 7 || d.SubscribersReady != 7 || d.SubscribersComplete != 7 || d.Gaps != 0 || d.OutOfOrder != 0 {
		t.Errorf("delivery = %+v", d)
	}
	if d.Delivered != d.Expected || d.Expected == 0 {
		t.Errorf("delivered %d of %d", d.Delivered, d.Expected)
	}
	if d.DeliverySamples == 0 || d.DeliveryP50Ms <= 0 || d.DeliveryMaxMs < d.DeliveryP99Ms {
		t.Errorf("delivery latency: %d samples, p50 %v, p99 %v, max %v", d.DeliverySamples, d.DeliveryP50Ms, d.DeliveryP99Ms, d.DeliveryMaxMs)
	}
	// Each measured send is delivered to the subscribers of its channel
	// (7 subscribers over 3 channels: 3, 2 and 2).
	if d.DeliverySamples < res.Ops*2 || d.DeliverySamples > res.Ops*3 {
		t.Errorf("%d delivery samples for %d measured sends", d.DeliverySamples, res.Ops)
	}
}

func TestRunMixed(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadMixed)
	res, _ := runFake(t, cfg)
	checkCommon(t, res, cfg)
	m, d := res.MixedStats, res.DeliveryStats
	if m == nil || d == nil {
		t.Fatal("mixed result lacks mixed or delivery stats")
	}
	if m.SendOps == 0 || m.ReadOps == 0 || m.SendOps+m.ReadOps != res.Ops {
		t.Errorf("sends %d + reads %d != ops %d", m.SendOps, m.ReadOps, res.Ops)
	}
	if d.Subscribers != cfg.Channels || d.SubscribersComplete != d.Subscribers || d.Delivered != d.Expected {
		t.Errorf("delivery = %+v", d)
	}
}

// The leader changes twice during the run; sends and subscriptions follow
// it, every subscriber still gets every message once, in order.
func TestRunSurvivesFailover(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadSubscribe)
	cfg.Duration = 600 * time.Millisecond
	cfg.Rate = 2000
	// Outcome-unknown failures now and then: the retry must be deduplicated.
	var mu sync.Mutex
	n := 0
	var applied atomic.Int64
	c.afterSend = func(string, *raftogramv1.SendMessageRequest) error {
		applied.Add(1)
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%97 == 0 {
			return errInjected
		}
		return nil
	}
	// Move leadership as the run progresses, keyed to the sends the fake has
	// applied rather than to wall time, so a slow machine sees the same run.
	done := make(chan struct{})
	defer close(done)
	afterSends := func(k int64) bool {
		target := applied.Load() + k
		for applied.Load() < target {
			select {
			case <-done:
				return false
			case <-time.After(5 * time.Millisecond):
			}
		}
		return true
	}
	go func() {
		if !afterSends(200) {
			return
		}
		c.setLeader("") // an election: no leader for 50 ms
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
		c.setLeader("n3")
		if !afterSends(250) {
			return
		}
		c.setLeader("n1")
		if !afterSends(250) {
			return
		}
		c.setLeader("n2")
	}()
	res, _ := runFake(t, cfg)
	if res.Errors != 0 {
		t.Errorf("errors = %d (%v)", res.Errors, res.ErrorClasses)
	}
	if res.LeaderChanges < 2 || res.Redirects < res.LeaderChanges || res.Retries == 0 || res.Dups == 0 {
		t.Errorf("leader changes %d, retries %d, dups %d; want some of each", res.LeaderChanges, res.Retries, res.Dups)
	}
	// The election (Unavailable with an empty NotLeader detail) counts as
	// no leader, not as a lost node.
	if res.ErrorClasses[ClassNotLeader] == 0 || res.ErrorClasses[ClassNoLeader] == 0 || res.ErrorClasses["subscribe_"+ClassNotLeader] == 0 {
		t.Errorf("error classes = %v", res.ErrorClasses)
	}
	d := res.DeliveryStats
	if d.SubscribersComplete != d.Subscribers || d.Gaps != 0 || d.OutOfOrder != 0 || d.Delivered != d.Expected || d.Resubscribes == 0 {
		t.Errorf("delivery = %+v", d)
	}
}

func TestRunInterrupted(t *testing.T) {
	c := newFakeCluster(t, "n2", "n1", "n2", "n3")
	cfg := fakeConfig(c, WorkloadSend)
	cfg.Duration = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(400*time.Millisecond, cancel)
	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second || !res.Interrupted || res.Ops == 0 {
		t.Errorf("interrupted run: %v later, interrupted %v, ops %d", time.Since(start), res.Interrupted, res.Ops)
	}
}

func TestRunSetupFailsWithoutCluster(t *testing.T) {
	c := newFakeCluster(t, "", "n1")
	cfg := fakeConfig(c, WorkloadSend)
	cfg.Addrs = []string{fakeAddr("n1")}
	cfg.SetupTimeout = 200 * time.Millisecond
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("Run succeeded against a cluster without a leader")
	}
}

func TestConfigNormalize(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Workload = "write" },
		func(c *Config) { c.Clients = 0 },
		func(c *Config) { c.Channels = 0 },
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.Rate = -1 },
		func(c *Config) { c.Workload = WorkloadSubscribe; c.Payload = 4 },
		func(c *Config) { c.Workload = WorkloadRead; c.History = 0 },
		func(c *Config) { c.ChannelPrefix = "has space" },
		func(c *Config) { c.ChannelPrefix = strings.Repeat("x", 126) },
		func(c *Config) { c.ReadFraction = 1.5 },
		func(c *Config) { c.Addrs = nil },
		func(c *Config) { c.Consistency = "eventual" },
		func(c *Config) { c.Consistency = "default" },
	}
	for i, mut := range bad {
		cfg := DefaultConfig()
		mut(&cfg)
		if err := cfg.Normalize(); err == nil {
			t.Errorf("case %d: bad config accepted: %+v", i, cfg)
		}
	}
	cfg := DefaultConfig()
	cfg.Workload = WorkloadSubscribe
	cfg.Duration = 0
	cfg.N = 10
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	if cfg.Subscribers != cfg.Channels || !strings.HasPrefix(cfg.ChannelPrefix, "bench-") {
		t.Errorf("normalized: subscribers %d, prefix %q", cfg.Subscribers, cfg.ChannelPrefix)
	}
	// Two runs started in the same second get different prefixes (the
	// random suffix), so their channels never mix.
	now := time.Now()
	if a, b := DefaultChannelPrefix(now), DefaultChannelPrefix(now); a == b {
		t.Errorf("default prefixes repeat within a second: %q", a)
	}
}

func TestStampRoundTrip(t *testing.T) {
	buf := make([]byte, 16)
	before := time.Now().UnixNano()
	putStamp(buf, measuredStamp)
	sent, measured := readStamp(buf)
	if !measured || sent < before || sent > time.Now().UnixNano() {
		t.Fatalf("measured stamp read back as %d, %v", sent, measured)
	}
	putStamp(buf, warmupStamp)
	if _, measured := readStamp(buf); measured {
		t.Fatal("warm-up stamp reads as measured")
	}
	putStamp(buf, noStamp)
	if sent, measured := readStamp(buf); sent != 0 || measured {
		t.Fatal("unstamped payload reads as stamped")
	}
	if _, measured := readStamp(buf[:7]); measured {
		t.Fatal("short payload reads as stamped")
	}
}
