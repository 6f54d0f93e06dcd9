package torture

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/raftogram/raftogram/httpapi"
)

// Fault names.
const (
	FaultKillLeader       = "kill-leader"
	FaultKillFollower     = "kill-follower"
	FaultKillAll          = "kill-all"
	FaultPauseLeader      = "pause-leader"
	FaultPartitionLeader  = "partition-leader"
	FaultAsymmetric       = "asymmetric-partition"
	FaultWipeFollower     = "wipe-follower"
	FaultSnapshotCatchup  = "snapshot-catchup"
	FaultTransferLeader   = "transfer-leader"
	FaultCrashSnapCreate  = "crash-snapshot-create"
	FaultCrashSnapInstall = "crash-snapshot-install"
)

// AllFaults is every fault the nemesis knows.
var AllFaults = []string{
	FaultKillLeader, FaultKillFollower, FaultKillAll, FaultPauseLeader, FaultPartitionLeader,
	FaultAsymmetric, FaultWipeFollower, FaultSnapshotCatchup, FaultTransferLeader,
	FaultCrashSnapCreate, FaultCrashSnapInstall,
}

// FaultRecord is one injected fault and what followed.
type FaultRecord struct {
	Name   string        `json:"name"`
	Detail string        `json:"detail"`
	Inject time.Duration `json:"inject"` // since the run started
	Heal   time.Duration `json:"heal"`
	// Recovery is the time from the heal to the first acknowledged probe
	// write; Recovered is false if none succeeded within the bound.
	Recovery  time.Duration `json:"recovery"`
	Recovered bool          `json:"recovered"`
	// WriteGap is the longest time without an acknowledged write between
	// the injection and the recovery (the unavailability the fault caused).
	WriteGap time.Duration `json:"write_gap"`
	Skipped  string        `json:"skipped,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
}

// Nemesis injects faults chosen with its seeded random source.
type Nemesis struct {
	c     *Cluster
	w     *Workload
	h     *History
	rng   *rand.Rand
	names []string
	logf  func(format string, args ...any)

	HoldMin, HoldMax   time.Duration // how long a fault lasts
	QuietMin, QuietMax time.Duration // calm between faults
	RecoveryBound      time.Duration // a write must succeed this soon after a heal

	mu      sync.Mutex
	records []FaultRecord
	order   []string
}

// NewNemesis returns a nemesis drawing from faults with seed.
func NewNemesis(c *Cluster, w *Workload, h *History, faults []string, seed uint64, logf func(string, ...any)) *Nemesis {
	return &Nemesis{
		c: c, w: w, h: h, names: faults, logf: logf,
		rng:     rand.New(rand.NewPCG(seed, 0x6e656d65736973)),
		HoldMin: 1500 * time.Millisecond, HoldMax: 5 * time.Second,
		QuietMin: 1500 * time.Millisecond, QuietMax: 4 * time.Second,
		RecoveryBound: 30 * time.Second,
	}
}

// Records returns the faults injected so far.
func (n *Nemesis) Records() []FaultRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]FaultRecord(nil), n.records...)
}

// next picks the next fault: a seeded shuffle of the enabled faults, dealt
// in turn and reshuffled when used up, so every fault comes up.
func (n *Nemesis) next() string {
	if len(n.order) == 0 {
		n.order = append([]string(nil), n.names...)
		n.rng.Shuffle(len(n.order), func(i, j int) { n.order[i], n.order[j] = n.order[j], n.order[i] })
	}
	f := n.order[0]
	n.order = n.order[1:]
	return f
}

func (n *Nemesis) dur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

func (n *Nemesis) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Run injects faults until the time until (a fault is not started unless
// it can be expected to finish by then) or ctx ends. Every fault is healed
// before Run returns.
func (n *Nemesis) Run(ctx context.Context, until time.Time) {
	for ctx.Err() == nil {
		n.sleep(ctx, n.dur(n.QuietMin, n.QuietMax))
		if time.Until(until) < n.HoldMax+5*time.Second || ctx.Err() != nil {
			return
		}
		name := n.next()
		rec := FaultRecord{Name: name, Inject: time.Duration(n.h.Now())}
		err := n.inject(ctx, name, &rec)
		n.healAll()
		if rec.Heal == 0 {
			rec.Heal = time.Duration(n.h.Now())
		}
		if err != nil {
			rec.Skipped = err.Error()
		}
		rec.Recovery, rec.Recovered = n.w.Probe(n.RecoveryBound)
		if !rec.Recovered {
			rec.Notes = append(rec.Notes, fmt.Sprintf("no write succeeded within %v of the heal", n.RecoveryBound))
		}
		if _, err := n.c.WaitStable(ctx, n.RecoveryBound); err != nil {
			rec.Notes = append(rec.Notes, "cluster not stable after the heal: "+err.Error())
		}
		n.logf("fault %-22s %-40s inject=+%-8s heal=+%-8s recovered=%v in %v%s%s", rec.Name, rec.Detail,
			rec.Inject.Round(time.Millisecond), rec.Heal.Round(time.Millisecond), rec.Recovered, rec.Recovery.Round(time.Millisecond),
			ifs(rec.Skipped != "", " skipped: "+rec.Skipped), ifs(len(rec.Notes) > 0, " notes: "+strings.Join(rec.Notes, "; ")))
		n.mu.Lock()
		n.records = append(n.records, rec)
		n.mu.Unlock()
	}
}

func ifs(c bool, s string) string {
	if c {
		return s
	}
	return ""
}

// healAll undoes every fault: links up, paused nodes continued, stopped
// nodes started. A node that is not running here was stopped by the fault
// (or crashed, which the cluster already recorded as an anomaly).
func (n *Nemesis) healAll() {
	n.c.HealLinks()
	for _, nd := range n.c.Nodes {
		if nd.Paused() {
			nd.Continue()
		}
		if !nd.Running() {
			if err := nd.Start(); err != nil {
				n.c.anomaly("restart %s: %v", nd.ID, err)
			}
		}
	}
}

// storm starts a read storm on nodes; the returned function ends it a
// second later (so it covers the election that follows a heal) and waits.
func (n *Nemesis) storm(nodes []*Node) func() {
	stop, end := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.w.ReadStorm(nodes, 3, stop)
		close(done)
	}()
	return func() {
		time.AfterFunc(time.Second, end)
		<-done
	}
}

func (n *Nemesis) leader(ctx context.Context) (*Node, error) {
	l, err := n.c.Leader(ctx, 20*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no stable leader to target: %w", err)
	}
	return l, nil
}

func (n *Nemesis) pick(nodes []*Node) *Node { return nodes[n.rng.IntN(len(nodes))] }

func (n *Nemesis) healed(rec *FaultRecord) { rec.Heal = time.Duration(n.h.Now()) }

func (n *Nemesis) inject(ctx context.Context, name string, rec *FaultRecord) error {
	hold := n.dur(n.HoldMin, n.HoldMax)
	switch name {
	case FaultKillLeader, FaultKillFollower, FaultTransferLeader:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		target := l
		if name == FaultKillFollower {
			target = n.pick(n.c.Followers(l))
		}
		if name == FaultTransferLeader {
			before := l.Evidence()["leadership transfers"]
			defer n.storm(n.c.Followers(l))()
			code, err := l.Terminate()
			rec.Detail = fmt.Sprintf("SIGTERM leader %s", l.ID)
			switch {
			case err != nil:
				n.c.anomaly("graceful stop of leader %s: %v", l.ID, err)
			case code != 0:
				n.c.anomaly("graceful stop of leader %s exited with code %d", l.ID, code)
			}
			if l.Evidence()["leadership transfers"] > before {
				rec.Notes = append(rec.Notes, "leadership transferred before exit")
			} else {
				rec.Notes = append(rec.Notes, "no leadership transfer logged")
			}
		} else {
			rec.Detail = fmt.Sprintf("SIGKILL %s (leader was %s)", target.ID, l.ID)
			if target == l {
				defer n.storm(n.c.Followers(l))()
			}
			if err := target.Kill(); err != nil {
				return err
			}
		}
		n.sleep(ctx, hold)
		n.healed(rec)
		return n.c.Restart(target)

	case FaultKillAll:
		rec.Detail = "SIGKILL every node"
		for _, i := range n.rng.Perm(len(n.c.Nodes)) {
			if err := n.c.Nodes[i].Kill(); err != nil {
				return err
			}
		}
		n.sleep(ctx, hold/2)
		n.healed(rec)
		return n.c.Start()

	case FaultPauseLeader:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		rec.Detail = fmt.Sprintf("SIGSTOP leader %s for %v", l.ID, hold.Round(time.Millisecond))
		resume := time.Now().Add(hold)
		if err := l.Pause(); err != nil {
			return err
		}
		// Once the others have a leader that acknowledged a write the
		// paused node cannot know, aim reads at the paused node: they are
		// served (or refused) the moment it resumes, while it may still
		// believe it leads.
		if d, ok := n.w.ProbeAvoiding(l, time.Until(resume)); ok {
			rec.Notes = append(rec.Notes, fmt.Sprintf("new leader acknowledged a write %v into the pause", d.Round(time.Millisecond)))
			n.sleep(ctx, time.Until(resume.Add(-time.Second)))
			done := make(chan struct{})
			go func() {
				n.w.PinnedReads(l, 8, resume.Add(300*time.Millisecond))
				close(done)
			}()
			n.sleep(ctx, time.Until(resume))
			n.healed(rec)
			err := l.Continue()
			<-done
			return err
		}
		n.sleep(ctx, time.Until(resume))
		n.healed(rec)
		return l.Continue()

	case FaultPartitionLeader:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		mode := []LinkState{LinkReset, LinkBlackhole}[n.rng.IntN(2)]
		minority := []*Node{l}
		others := n.c.Followers(l)
		n.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
		for len(minority) < len(n.c.Nodes)/2 {
			minority, others = append(minority, others[0]), others[1:]
		}
		for _, a := range minority {
			for _, b := range others {
				n.c.SetLink(a, b, mode)
				n.c.SetLink(b, a, mode)
			}
		}
		rec.Detail = fmt.Sprintf("isolate %s from %s (%s)", ids(minority), ids(others), mode)
		defer n.storm(n.c.Nodes)()
		n.sleep(ctx, hold)
		n.healed(rec)
		n.c.HealLinks()
		return nil

	case FaultAsymmetric:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		mode := []LinkState{LinkReset, LinkBlackhole}[n.rng.IntN(2)]
		if n.rng.IntN(2) == 0 {
			// The leader's requests reach nobody; everyone reaches it.
			for _, f := range n.c.Followers(l) {
				n.c.SetLink(l, f, mode)
			}
			rec.Detail = fmt.Sprintf("leader %s cannot send to anyone (%s)", l.ID, mode)
		} else {
			// One follower stops hearing the leader but can still
			// campaign.
			f := n.pick(n.c.Followers(l))
			n.c.SetLink(l, f, mode)
			rec.Detail = fmt.Sprintf("follower %s cannot hear leader %s (%s)", f.ID, l.ID, mode)
		}
		defer n.storm(n.c.Nodes)()
		n.sleep(ctx, hold)
		n.healed(rec)
		n.c.HealLinks()
		return nil

	case FaultWipeFollower:
		// Wiping loses the node's vote record too, which is only safe
		// while the rest of the cluster holds every committed entry: wait
		// until every node's log reaches the leader's commit index.
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		if err := n.inSync(ctx, l, 20*time.Second); err != nil {
			return fmt.Errorf("followers not in sync before the wipe: %w", err)
		}
		f := n.pick(n.c.Followers(l))
		rec.Detail = fmt.Sprintf("SIGKILL %s, wipe its data_dir, restart as %s", f.ID, f.ID)
		if err := f.Kill(); err != nil {
			return err
		}
		if err := f.Wipe(); err != nil {
			return err
		}
		n.sleep(ctx, hold/2)
		n.healed(rec)
		if err := n.c.Restart(f); err != nil {
			return err
		}
		rec.Notes = append(rec.Notes, n.waitCaughtUp(ctx, f, 45*time.Second))
		return nil

	case FaultSnapshotCatchup:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		f := n.pick(n.c.Followers(l))
		fh, err := f.Health()
		if err != nil {
			return err
		}
		pause := n.rng.IntN(2) == 0
		before := f.Evidence()["snapshots installed"]
		if pause {
			rec.Detail = fmt.Sprintf("SIGSTOP %s, flood, SIGCONT", f.ID)
			if err := f.Pause(); err != nil {
				return err
			}
		} else {
			rec.Detail = fmt.Sprintf("SIGKILL %s, flood, restart", f.ID)
			if err := f.Kill(); err != nil {
				return err
			}
		}
		rec.Notes = append(rec.Notes, n.floodPast(ctx, l, fh.LastLogIndex))
		n.healed(rec)
		if pause {
			f.Continue()
		} else if err := n.c.Restart(f); err != nil {
			return err
		}
		rec.Notes = append(rec.Notes, n.waitCaughtUp(ctx, f, 45*time.Second))
		if f.Evidence()["snapshots installed"] > before {
			rec.Notes = append(rec.Notes, "caught up by snapshot install")
		} else {
			rec.Notes = append(rec.Notes, "no snapshot install logged")
		}
		return nil

	case FaultCrashSnapCreate:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		x := n.pick(n.c.Nodes)
		rec.Detail = fmt.Sprintf("SIGKILL %s when it logs a snapshot start (leader %s)", x.ID, l.ID)
		fired, cancel := x.Watch(`msg="starting snapshot up to"`)
		defer cancel()
		killed := make(chan time.Duration, 1)
		stopKiller := make(chan struct{})
		go func() {
			select {
			case <-fired:
				t := time.Now()
				x.Kill()
				killed <- time.Since(t)
			case <-stopKiller:
			}
		}()
		ok := n.w.Flood(ctx, 8, 30*time.Second, func() bool { return !x.Running() })
		close(stopKiller)
		if ok {
			rec.Notes = append(rec.Notes, "killed during snapshot creation")
		} else {
			rec.Notes = append(rec.Notes, "no snapshot started within 30s; not triggered")
		}
		n.sleep(ctx, hold/2)
		n.healed(rec)
		if !x.Running() {
			return n.c.Restart(x)
		}
		return nil

	case FaultCrashSnapInstall:
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		f := n.pick(n.c.Followers(l))
		fh, err := f.Health()
		if err != nil {
			return err
		}
		if err := f.Kill(); err != nil {
			return err
		}
		rec.Notes = append(rec.Notes, n.floodPast(ctx, l, fh.LastLogIndex))
		var fired <-chan string
		var cancel func()
		if n.rng.IntN(2) == 0 {
			rec.Detail = fmt.Sprintf("SIGKILL %s when leader %s starts sending it a snapshot", f.ID, l.ID)
			fired, cancel = l.Watch(`msg="installing snapshot on"`, "peer="+f.ID)
		} else {
			rec.Detail = fmt.Sprintf("SIGKILL %s when it has received a snapshot (before restore)", f.ID)
			fired, cancel = f.Watch(`msg="copied to local snapshot"`)
		}
		defer cancel()
		if err := n.c.Restart(f); err != nil {
			return err
		}
		select {
		case <-fired:
			f.Kill()
			rec.Notes = append(rec.Notes, "killed during snapshot install")
		case <-time.After(20 * time.Second):
			rec.Notes = append(rec.Notes, "no snapshot install within 20s; not triggered")
		case <-ctx.Done():
		}
		n.sleep(ctx, hold/2)
		n.healed(rec)
		if !f.Running() {
			if err := n.c.Restart(f); err != nil {
				return err
			}
		}
		rec.Notes = append(rec.Notes, n.waitCaughtUp(ctx, f, 45*time.Second))
		return nil
	}
	return errors.New("unknown fault " + name)
}

// inSync waits until every node's last log index reaches the commit index
// the leader reported just before.
func (n *Nemesis) inSync(ctx context.Context, l *Node, d time.Duration) error {
	return poll(ctx, d, func() error {
		lh, err := l.Health()
		if err != nil {
			return err
		}
		if !lh.IsLeader {
			return fmt.Errorf("%s no longer leads", l.ID)
		}
		for _, f := range n.c.Followers(l) {
			h, err := f.Health()
			if err != nil {
				return err
			}
			if h.LastLogIndex < lh.CommitIndex {
				return fmt.Errorf("%s log ends at %d, leader committed %d", f.ID, h.LastLogIndex, lh.CommitIndex)
			}
		}
		return nil
	})
}

// floodPast floods writes until the leader has compacted its log past
// index (so a follower stopped there needs a snapshot).
func (n *Nemesis) floodPast(ctx context.Context, leader *Node, index uint64) string {
	goal := index + n.c.raft.TrailingLogs + 20
	start := time.Now()
	var last httpapi.Health
	ok := n.w.Flood(ctx, 8, 40*time.Second, func() bool {
		h, err := leader.Health()
		if err != nil {
			return false
		}
		last = h
		return h.SnapshotIndex > goal
	})
	if !ok {
		return fmt.Sprintf("flood: leader snapshot_index %d did not pass %d within 40s", last.SnapshotIndex, goal)
	}
	return fmt.Sprintf("flood: leader compacted past %d in %v", index, time.Since(start).Round(time.Millisecond))
}

// waitCaughtUp waits until f applies as far as the leader had applied when
// the wait began.
func (n *Nemesis) waitCaughtUp(ctx context.Context, f *Node, d time.Duration) string {
	start := time.Now()
	var goal uint64
	err := poll(ctx, d, func() error {
		if goal == 0 {
			l, hs, err := n.c.Stable()
			if err != nil {
				return err
			}
			goal = hs[l.ID].AppliedIndex
		}
		h, err := f.Health()
		if err != nil {
			return err
		}
		if h.AppliedIndex < goal {
			return fmt.Errorf("%s applied %d < %d", f.ID, h.AppliedIndex, goal)
		}
		return nil
	})
	if err != nil {
		return fmt.Sprintf("%s did not catch up: %v", f.ID, err)
	}
	return fmt.Sprintf("%s caught up to %d in %v", f.ID, goal, time.Since(start).Round(time.Millisecond))
}

func ids(ns []*Node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.ID
	}
	return "{" + strings.Join(s, ",") + "}"
}
