package torture

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testbin"
)

// FailoverOptions configures [MeasureFailover]: a cluster under steady
// write traffic, no checkers, only clocks. The phases run in this order:
// Steady, Pauses, Terms, Kills.
type FailoverOptions struct {
	Bin   string // a prebuilt raftogram binary; built into Dir when empty
	Dir   string // working directory: data, configs, logs
	Nodes int    // 3 or 5 (default 3)
	// Clients is how many writers send without pause, each through its
	// own client.Client with the package's defaults (default 16).
	Clients int
	Steady  time.Duration // fault-free traffic, counting elections
	Pauses  int           // rounds of SIGSTOP of a follower for PauseHold, counting elections
	Terms   int           // rounds of SIGTERM of the leader (graceful restart)
	Kills   int           // rounds of SIGKILL of the leader
	// PauseHold is how long a paused follower stays stopped (default 3s:
	// several heartbeat timeouts at the default raft timing).
	PauseHold time.Duration
	// Raft is the nodes' raft timing; zero means the product's defaults
	// ([ProductRaftTuning]), which is what the figures are about.
	Raft RaftTuning
	Logf func(format string, args ...any)
}

// ProductRaftTuning is raftogram's default raft section (config.Default).
func ProductRaftTuning() RaftTuning {
	d := config.Default().Raft
	return RaftTuning{
		HeartbeatTimeout: d.HeartbeatTimeout, ElectionTimeout: d.ElectionTimeout,
		LeaderLeaseTimeout: d.LeaderLeaseTimeout, CommitTimeout: d.CommitTimeout,
		SnapshotThreshold: d.SnapshotThreshold, SnapshotInterval: d.SnapshotInterval,
		TrailingLogs: d.TrailingLogs, ApplyTimeout: d.ApplyTimeout,
	}
}

// FailoverReport holds what [MeasureFailover] measured.
type FailoverReport struct {
	Nodes, Clients int
	Raft           RaftTuning
	// Kills: per SIGKILL of the leader, the time from the signal to the
	// next write acknowledged after the process was gone.
	Kills []time.Duration
	// Terms: per SIGTERM of the leader, the longest time without an
	// acknowledged write from the signal until the first write
	// acknowledged after the process exited.
	Terms []time.Duration
	// HandOffs counts SIGTERM rounds whose leader logged a completed
	// leadership transfer; TermExits holds rounds that did not exit 0.
	HandOffs  int
	TermExits []string
	// Elections (term changes) and leader changes seen by polling every
	// node's /health, during the steady phase and the pause rounds.
	SteadyTime                           time.Duration
	SteadyElections, SteadyLeaderChanges int
	SteadyAcks                           int
	PauseRounds                          int
	PauseElections, PauseLeaderChanges   int
	WriteErrors                          int64
	Load                                 []string // /proc/loadavg at the start and at each phase's end
}

// MeasureFailover starts a cluster of real nodes, keeps o.Clients writers
// sending, and measures availability around faults: the time from a
// SIGKILL of the leader to the next acknowledged write, the longest write
// gap around a SIGTERM of the leader, and the elections that happen with
// no fault or while a follower is paused. It returns an error when the
// cluster cannot be started or does not recover from a round within 30 s.
func MeasureFailover(ctx context.Context, o FailoverOptions) (*FailoverReport, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Clients == 0 {
		o.Clients = 16
	}
	if o.PauseHold == 0 {
		o.PauseHold = 3 * time.Second
	}
	if o.Raft == (RaftTuning{}) {
		o.Raft = ProductRaftTuning()
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin := o.Bin
	if bin == "" {
		var err error
		if bin, err = testbin.BuildBinary(o.Dir); err != nil {
			return nil, err
		}
	}
	c, err := NewCluster(bin, o.Dir, o.Nodes, o.Raft, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Start(); err != nil {
		return nil, err
	}
	if _, err := c.WaitStable(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("torture: cluster never stabilised: %w", err)
	}
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.GRPCAddr)
	}
	setup, err := client.New(ctx, client.Config{Addrs: addrs})
	if err != nil {
		return nil, err
	}
	defer setup.Close()
	channels := []string{"f0", "f1", "f2", "f3"}
	for _, ch := range channels {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := setup.CreateChannel(cctx, ch, "failover "+ch)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("torture: create channel %s: %w", ch, err)
		}
	}

	rep := &FailoverReport{Nodes: o.Nodes, Clients: o.Clients, Raft: o.Raft}
	rep.Load = append(rep.Load, "start "+loadAvg())
	acks := &ackLog{}
	var writeErrs atomic.Int64
	defer func() { rep.WriteErrors = writeErrs.Load() }()
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopWriters(); wg.Wait() }()
	for i := range o.Clients {
		cl, err := client.New(ctx, client.Config{Addrs: addrs})
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			writeLoop(wctx, cl, i, channels[i%len(channels)], acks, &writeErrs)
		}()
	}
	watch := &electionWatch{c: c}
	wg.Add(1)
	go func() { defer wg.Done(); watch.run(wctx) }()

	// Traffic must flow before anything is measured.
	if _, err := acks.waitAfter(ctx, time.Now(), 30*time.Second); err != nil {
		return nil, fmt.Errorf("torture: no write acknowledged: %w", err)
	}

	if o.Steady > 0 {
		logf("failover: steady traffic for %v, %d clients", o.Steady, o.Clients)
		e0, l0, a0 := watch.elections.Load(), watch.changes.Load(), acks.len()
		start := time.Now()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(o.Steady):
		}
		rep.SteadyTime = time.Since(start)
		rep.SteadyElections = int(watch.elections.Load() - e0)
		rep.SteadyLeaderChanges = int(watch.changes.Load() - l0)
		rep.SteadyAcks = acks.len() - a0
		rep.Load = append(rep.Load, "after steady "+loadAvg())
		logf("failover: steady: %d acked writes, %d elections, %d leader changes", rep.SteadyAcks, rep.SteadyElections, rep.SteadyLeaderChanges)
	}

	for i := range o.Pauses {
		leader, err := c.WaitStable(ctx, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("torture: pause round %d: %w", i+1, err)
		}
		fs := c.Followers(leader)
		f := fs[rand.IntN(len(fs))]
		e0, l0 := watch.elections.Load(), watch.changes.Load()
		if err := f.Pause(); err != nil {
			return nil, err
		}
		time.Sleep(o.PauseHold)
		if err := f.Continue(); err != nil {
			return nil, err
		}
		// The resumed follower's heartbeat timer fires at once; give it
		// two default election timeouts to (not) disturb the others.
		time.Sleep(2 * o.Raft.ElectionTimeout)
		if _, err := c.WaitStable(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("torture: pause round %d: %w", i+1, err)
		}
		rep.PauseRounds++
		rep.PauseElections += int(watch.elections.Load() - e0)
		rep.PauseLeaderChanges += int(watch.changes.Load() - l0)
		logf("failover: paused %s for %v: %d elections, %d leader changes so far", f.ID, o.PauseHold, rep.PauseElections, rep.PauseLeaderChanges)
	}

	for i := range o.Terms {
		leader, err := settle(ctx, c, acks)
		if err != nil {
			return nil, fmt.Errorf("torture: SIGTERM round %d: %w", i+1, err)
		}
		before := leader.Evidence()["leadership transfers"]
		t0 := time.Now()
		code, err := leader.Terminate()
		exited := time.Now()
		if err != nil || code != 0 {
			rep.TermExits = append(rep.TermExits, fmt.Sprintf("%s: exit %d %v", leader.ID, code, err))
		}
		next, err := acks.waitAfter(ctx, exited, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("torture: SIGTERM round %d: no write after %s exited: %w", i+1, leader.ID, err)
		}
		gap := acks.longestGap(t0, next)
		rep.Terms = append(rep.Terms, gap)
		handed := leader.Evidence()["leadership transfers"] > before
		if handed {
			rep.HandOffs++
		}
		logf("failover: SIGTERM %s: longest write gap %v, stop took %v, handed off %v (load %s)",
			leader.ID, gap.Round(time.Millisecond), exited.Sub(t0).Round(time.Millisecond), handed, loadAvg())
		if err := c.Restart(leader); err != nil {
			return nil, err
		}
	}

	for i := range o.Kills {
		leader, err := settle(ctx, c, acks)
		if err != nil {
			return nil, fmt.Errorf("torture: kill round %d: %w", i+1, err)
		}
		t0 := time.Now()
		if err := leader.Kill(); err != nil {
			return nil, err
		}
		gone := time.Now()
		next, err := acks.waitAfter(ctx, gone, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("torture: kill round %d: no write after %s died: %w", i+1, leader.ID, err)
		}
		d := next.Sub(t0)
		rep.Kills = append(rep.Kills, d)
		logf("failover: SIGKILL %s: next acknowledged write after %v (load %s)", leader.ID, d.Round(time.Millisecond), loadAvg())
		if err := c.Restart(leader); err != nil {
			return nil, err
		}
	}
	rep.Load = append(rep.Load, "end "+loadAvg())
	return rep, nil
}

// settle waits until the cluster has one leader every running node
// follows, every node runs, and writes are being acknowledged, then a
// second more (a restarted node catches up meanwhile). It returns the
// leader.
func settle(ctx context.Context, c *Cluster, acks *ackLog) (*Node, error) {
	if _, err := c.WaitStable(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if !n.Running() {
			return nil, fmt.Errorf("%s is not running", n.ID)
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Second):
	}
	if _, err := acks.waitAfter(ctx, time.Now(), 30*time.Second); err != nil {
		return nil, err
	}
	return c.WaitStable(ctx, 30*time.Second)
}

// writeLoop sends to ch without pause until ctx ends, recording every
// acknowledgement.
func writeLoop(ctx context.Context, cl *client.Client, id int, ch string, acks *ackLog, errs *atomic.Int64) {
	payload := []byte(strings.Repeat("x", 64))
	for n := 0; ctx.Err() == nil; n++ {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cl.Send(sctx, client.SendRequest{ChannelID: ch, AuthorID: fmt.Sprintf("w%d", id), Payload: payload,
			ClientMessageID: fmt.Sprintf("w%d-%d", id, n)})
		cancel()
		if err == nil {
			acks.add()
		} else if ctx.Err() == nil {
			errs.Add(1)
		}
	}
}

// ackLog records when writes were acknowledged, in order.
type ackLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *ackLog) add() {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
}

func (a *ackLog) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

// firstAfter returns the first acknowledgement later than t.
func (a *ackLog) firstAfter(t time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.times), func(i int) bool { return a.times[i].After(t) })
	if i == len(a.times) {
		return time.Time{}, false
	}
	return a.times[i], true
}

// waitAfter polls for the first acknowledgement later than t, for up to d.
func (a *ackLog) waitAfter(ctx context.Context, t time.Time, d time.Duration) (time.Time, error) {
	var at time.Time
	err := testbin.Poll(ctx, d, 2*time.Millisecond, func() error {
		var ok bool
		if at, ok = a.firstAfter(t); !ok {
			return errors.New("no acknowledged write yet")
		}
		return nil
	})
	return at, err
}

// longestGap returns the longest time without an acknowledgement in
// [from, to], counting from the last acknowledgement before from.
func (a *ackLog) longestGap(from, to time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.times), func(i int) bool { return !a.times[i].Before(from) })
	prev := from
	if i > 0 {
		prev = a.times[i-1]
	}
	var gap time.Duration
	for ; i < len(a.times) && !a.times[i].After(to); i++ {
		gap = max(gap, a.times[i].Sub(prev))
		prev = a.times[i]
	}
	return gap
}

// electionWatch polls every running, unpaused node's /health and counts
// rises of the highest term seen (elections that got as far as a vote) and
// changes of the node that says it leads.
type electionWatch struct {
	c         *Cluster
	elections atomic.Int64
	changes   atomic.Int64
}

func (w *electionWatch) run(ctx context.Context) {
	var term uint64
	leader := ""
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, n := range w.c.Nodes {
			if !n.Running() || n.Paused() {
				continue
			}
			h, err := n.Health()
			if err != nil {
				continue
			}
			if h.Term > term {
				if term != 0 {
					w.elections.Add(int64(h.Term - term))
				}
				term = h.Term
			}
			if h.IsLeader && h.NodeID != leader {
				if leader != "" {
					w.changes.Add(1)
				}
				leader = h.NodeID
			}
		}
	}
}

// Format renders the report: per-round figures, then median, p99 and max.
func (r *FailoverReport) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "=== failover  nodes=%d  clients=%d  raft: heartbeat %v, election %v, lease %v, commit %v\n",
		r.Nodes, r.Clients, r.Raft.HeartbeatTimeout, r.Raft.ElectionTimeout, r.Raft.LeaderLeaseTimeout, r.Raft.CommitTimeout)
	if r.SteadyTime > 0 {
		fmt.Fprintf(&b, "steady %v: %d acked writes (%.0f/s), %d elections, %d leader changes\n",
			r.SteadyTime.Round(time.Second), r.SteadyAcks, float64(r.SteadyAcks)/r.SteadyTime.Seconds(), r.SteadyElections, r.SteadyLeaderChanges)
	}
	if r.PauseRounds > 0 {
		fmt.Fprintf(&b, "follower paused %d times: %d elections, %d leader changes\n", r.PauseRounds, r.PauseElections, r.PauseLeaderChanges)
	}
	if len(r.Terms) > 0 {
		fmt.Fprintf(&b, "SIGTERM leader x%d, longest write gap: %s; handed off %d/%d\n", len(r.Terms), distribution(r.Terms), r.HandOffs, len(r.Terms))
		for _, e := range r.TermExits {
			fmt.Fprintf(&b, "  unclean stop: %s\n", e)
		}
	}
	if len(r.Kills) > 0 {
		fmt.Fprintf(&b, "SIGKILL leader x%d, death to next acknowledged write: %s\n", len(r.Kills), distribution(r.Kills))
	}
	fmt.Fprintf(&b, "write errors (a Send that gave up after 30 s): %d\n", r.WriteErrors)
	fmt.Fprintf(&b, "load average: %s\n", strings.Join(r.Load, "; "))
	return b.String()
}

// distribution renders median, p99, max and every value in milliseconds.
func distribution(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	ms := make([]string, len(ds))
	for i, d := range ds {
		ms[i] = fmt.Sprint(d.Milliseconds())
	}
	return fmt.Sprintf("median %v  p99 %v  max %v  (ms: %s)", q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond),
		s[len(s)-1].Round(time.Millisecond), strings.Join(ms, " "))
}

// loadAvg returns the machine's 1-, 5- and 15-minute load averages, or
// "?" where /proc/loadavg is missing.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
