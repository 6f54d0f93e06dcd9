package torture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/testbin"
)

// Options configures one torture run.
type Options struct {
	Seed     uint64
	Duration time.Duration // client traffic, faults included
	Nodes    int           // 3 or 5
	Writers  int           // concurrent writer/reader clients (flooders come on top)
	Channels int
	Faults   []string // enabled faults; AllFaults when empty
	Bin      string   // a prebuilt raftogram binary; built into Dir when empty
	Dir      string   // working directory: data, configs, logs, reports
	// Secure runs every node with TLS (mutual on Raft) and token auth, the
	// material generated into Dir/secure ([NewSecurity]); the workload
	// presents the writer token, the harness's own client the admin token.
	Secure bool
	// Retention, when above 0, creates the workload's channels with
	// retention max_messages = Retention, so they are trimmed while the
	// faults run; the checkers then judge what the channels still hold.
	Retention uint64

	CalmWindow       time.Duration // fault-free tail of the run, where throughput is measured
	MinThroughput    float64       // acked writes per second required in the calm window
	RecoveryBound    time.Duration // a write must succeed this soon after each heal
	LinearizeTimeout time.Duration // porcupine budget per channel
	Raft             RaftTuning

	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Writers == 0 {
		o.Writers = 16
	}
	if o.Channels == 0 {
		o.Channels = 4
	}
	if len(o.Faults) == 0 {
		o.Faults = AllFaults
	}
	if o.CalmWindow == 0 {
		o.CalmWindow = 8 * time.Second
	}
	if o.MinThroughput == 0 {
		o.MinThroughput = 20
	}
	if o.RecoveryBound == 0 {
		o.RecoveryBound = 30 * time.Second
	}
	if o.LinearizeTimeout == 0 {
		o.LinearizeTimeout = 60 * time.Second
	}
	if o.Raft == (RaftTuning{}) {
		o.Raft = DefaultRaftTuning()
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Summary is the outcome of a run.
type Summary struct {
	Seed     uint64        `json:"seed"`
	Duration time.Duration `json:"duration"`
	Elapsed  time.Duration `json:"elapsed"`
	Nodes    int           `json:"nodes"`
	Writers  int           `json:"writers"`
	Channels []string      `json:"channels"`
	Secure   bool          `json:"secure"`
	Dir      string        `json:"dir"`

	Ops          int            `json:"ops"`
	Sends        int            `json:"sends"`
	Acked        int            `json:"acked"`
	UnknownSends int            `json:"unknown_sends"`
	UnknownInLog int            `json:"unknown_sends_in_log"`
	FailedSends  int            `json:"failed_sends"`
	Attempts     int            `json:"send_attempts"`
	Redos        int            `json:"dedup_resends"`
	Published    int            `json:"published"` // sends made on a Publish stream
	Reads        int            `json:"reads"`
	ReadsOK      int            `json:"reads_ok"`
	Redactions   int            `json:"redactions"`
	Deletions    int            `json:"deletions"`
	RedactionsOK int            `json:"redactions_ok"`
	ReadsByLevel map[string]int `json:"reads_ok_by_level"`
	SegsByLevel  map[string]int `json:"subscriptions_by_level"`
	Segments     int            `json:"subscribe_streams"`
	SubMsgs      int            `json:"subscribe_messages"`
	FinalLog     int            `json:"final_log_messages"`
	Throughput   float64        `json:"calm_throughput"`
	AppliedIndex uint64         `json:"applied_index"`

	Faults    []FaultRecord             `json:"faults"`
	Evidence  map[string]map[string]int `json:"evidence"`
	Anomalies []string                  `json:"anomalies,omitempty"`
	Verdicts  []Verdict                 `json:"verdicts"`
	OK        bool                      `json:"ok"`
}

// Run starts a cluster in opts.Dir, runs traffic and faults for
// opts.Duration, heals, reads the final state and checks it. It returns an
// error only when the harness itself could not run (the binary did not
// build, the cluster never elected a leader, ...); checker failures are in
// the Summary (OK false).
func Run(ctx context.Context, opts Options) (*Summary, error) {
	opts.defaults()
	began := time.Now()
	logf := opts.Logf
	if opts.Dir == "" {
		return nil, errors.New("torture: Options.Dir is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range opts.Faults {
		if !contains(AllFaults, f) {
			return nil, fmt.Errorf("torture: unknown fault %q (known: %s)", f, strings.Join(AllFaults, ","))
		}
	}
	logf("torture: seed=%d duration=%v nodes=%d writers=%d channels=%d faults=%s secure=%v dir=%s",
		opts.Seed, opts.Duration, opts.Nodes, opts.Writers, opts.Channels, strings.Join(opts.Faults, ","), opts.Secure, opts.Dir)
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = testbin.BuildBinary(opts.Dir); err != nil {
			return nil, err
		}
	}
	var sec *Security
	if opts.Secure {
		var err error
		if sec, err = NewSecurity(filepath.Join(opts.Dir, "secure"), opts.Nodes); err != nil {
			return nil, err
		}
	}
	c, err := NewCluster(bin, opts.Dir, opts.Nodes, opts.Raft, sec)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Start(); err != nil {
		return nil, err
	}
	if _, err := c.WaitStable(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("torture: initial cluster never stabilised: %w", err)
	}
	cl, err := dialAs(c, nil, attemptTimeout, nil, c.adminToken())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var channels []string
	for i := range opts.Channels {
		channels = append(channels, fmt.Sprintf("ch%d", i))
	}
	var chOpts []client.ChannelOption
	if opts.Retention > 0 {
		chOpts = append(chOpts, client.WithRetention(client.Retention{MaxMessages: opts.Retention}))
	}
	if err := CreateChannels(ctx, cl, channels, 30*time.Second, chOpts...); err != nil {
		return nil, err
	}
	if err := CreateChannels(ctx, cl, []string{ScratchChannel}, 30*time.Second); err != nil {
		return nil, err
	}
	allChannels := append([]string{ProbeChannel, ScratchChannel}, channels...)

	h := NewHistory()
	w := NewWorkload(c, h, channels, opts.Seed)
	nem := NewNemesis(c, w, h, opts.Faults, opts.Seed, logf)
	nem.RecoveryBound = opts.RecoveryBound
	trafficStart := time.Now()
	end := trafficStart.Add(opts.Duration)
	w.Start(opts.Writers)
	nemDone := make(chan struct{})
	go func() {
		defer close(nemDone)
		nem.Run(ctx, end.Add(-opts.CalmWindow))
	}()
	select {
	case <-nemDone:
	case <-ctx.Done():
	}
	<-nemDone
	logf("torture: faults done at +%v; calm traffic until +%v", time.Since(trafficStart).Round(time.Second), opts.Duration)
	sleepUntil(ctx, end)
	w.Stop()
	nem.healAll()
	logf("torture: traffic stopped; healing and reading the final state")

	sum := &Summary{Seed: opts.Seed, Duration: opts.Duration, Nodes: opts.Nodes, Writers: opts.Writers, Channels: allChannels, Secure: opts.Secure, Dir: opts.Dir}
	live := LivenessInput{Faults: nem.Records(), Bound: opts.RecoveryBound, MinThroughput: opts.MinThroughput, CalmWindow: opts.CalmWindow}
	live.FinalProbe, live.FinalProbeOK = w.Probe(opts.RecoveryBound)

	final := &Final{Recreated: map[string]bool{ScratchChannel: true}}
	// A deletion may have been the scratch channel's last operation.
	if err := CreateChannels(ctx, cl, []string{ScratchChannel}, 30*time.Second); err != nil {
		final.Stop = append(final.Stop, "cannot create the scratch channel again: "+err.Error())
	}
	if idx, err := c.WaitConverged(ctx, 60*time.Second); err != nil {
		final.Stop = append(final.Stop, "nodes did not converge after healing: "+err.Error())
	} else {
		sum.AppliedIndex = idx
	}
	log, trimmed, err := ReadLog(ctx, cl, allChannels, 30*time.Second)
	final.Log, final.Trimmed = log, trimmed
	if err != nil {
		final.LogErr = err.Error()
	}
	// Let the subscribers reach the end of their channels, then stop them.
	_ = poll(ctx, 20*time.Second, func() error {
		for _, s := range w.Subscribers() {
			if s.Cursor() < final.last(s.Channel) {
				return fmt.Errorf("subscriber %d at %d", s.ID, s.Cursor())
			}
		}
		return nil
	})
	w.StopSubscribers()

	final.Stop = append(final.Stop, stopAll(ctx, c, "first stop")...)
	for _, n := range c.Nodes {
		final.Nodes = append(final.Nodes, DumpNode(ctx, n.ID, n.DataDir))
	}
	final.Stop = append(final.Stop, restartCheck(ctx, c, cl, allChannels, final)...)

	ops, segs := h.Snapshot()
	writeGaps(live.Faults, ops)
	sum.Verdicts = []Verdict{
		CheckAcked(ops, final),
		CheckDedupOps(ops, final),
		CheckGaplessLog(final, allChannels),
		CheckReads(ops, segs, final),
		CheckLinear(ops, final, append([]string{ProbeChannel}, channels...), opts.LinearizeTimeout, filepath.Join(opts.Dir, "porcupine")),
		CheckSubs(segs, final),
		CheckRYW(ops),
		CheckConverged(final, c.Anomalies()),
	}
	live.Throughput = throughput(ops, end, opts.CalmWindow, h)
	sum.Verdicts = append(sum.Verdicts, CheckLive(live))
	sort.SliceStable(sum.Verdicts, func(i, j int) bool { return sum.Verdicts[i].Name < sum.Verdicts[j].Name })

	sum.Throughput = live.Throughput
	sum.Faults = live.Faults
	sum.Anomalies = c.Anomalies()
	sum.Evidence = map[string]map[string]int{}
	for _, n := range c.Nodes {
		sum.Evidence[n.ID] = n.Evidence()
	}
	tally(sum, ops, segs, final)
	sum.OK = true
	for _, v := range sum.Verdicts {
		sum.OK = sum.OK && v.OK
	}
	sum.Elapsed = time.Since(began)
	if err := h.WriteFile(filepath.Join(opts.Dir, "history.json")); err != nil {
		logf("torture: write history: %v", err)
	}
	if b, err := json.Marshal(struct {
		Log   map[string][]MsgRef `json:"log"`
		Final *Final              `json:"final"`
	}{final.Log, final}); err == nil {
		os.WriteFile(filepath.Join(opts.Dir, "final.json"), b, 0o644)
	}
	if b, err := json.MarshalIndent(sum, "", "  "); err == nil {
		os.WriteFile(filepath.Join(opts.Dir, "summary.json"), b, 0o644)
	}
	return sum, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// stopAll stops every node gracefully, the leader first, and returns the
// problems: a node that does not exit in time or exits non-zero.
func stopAll(ctx context.Context, c *Cluster, what string) []string {
	var problems []string
	order := append([]*Node(nil), c.Nodes...)
	if l, _, err := c.Stable(); err == nil {
		sort.SliceStable(order, func(i, j int) bool { return order[i] == l && order[j] != l })
	}
	for _, n := range order {
		code, err := n.Terminate()
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %s: %v", what, n.ID, err))
		case code != 0:
			problems = append(problems, fmt.Sprintf("%s: %s exited with code %d after SIGTERM; last log lines:\n    %s", what, n.ID, code, strings.Join(n.Tail(), "\n    ")))
		}
	}
	return problems
}

// restartCheck restarts every node on its data, waits for a converged
// cluster, checks it serves exactly the final log and holds the applied
// index the projections recorded, and stops it again.
func restartCheck(ctx context.Context, c *Cluster, cl *client.Client, channels []string, final *Final) []string {
	var problems []string
	if err := c.Start(); err != nil {
		return []string{"restart: " + err.Error()}
	}
	idx, err := c.WaitConverged(ctx, 60*time.Second)
	if err != nil {
		problems = append(problems, "after restart: nodes did not converge: "+err.Error())
	}
	for _, d := range final.Nodes {
		if d.Err == "" && err == nil && idx < d.AppliedIndex {
			problems = append(problems, fmt.Sprintf("after restart: applied_index %d is below %s's stored %d", idx, d.Node, d.AppliedIndex))
		}
	}
	again, _, rerr := ReadLog(ctx, cl, channels, 30*time.Second)
	if rerr != nil {
		problems = append(problems, "after restart: cannot read the log: "+rerr.Error())
	} else if final.LogErr == "" {
		for _, ch := range channels {
			a, b := final.Log[ch], again[ch]
			if len(a) != len(b) {
				problems = append(problems, fmt.Sprintf("after restart: %s serves %d messages, %d before", ch, len(b), len(a)))
				continue
			}
			for i := range a {
				if a[i] != b[i] {
					problems = append(problems, fmt.Sprintf("after restart: %s#%d is %s, was %s", ch, a[i].Seq, b[i].CMID, a[i].CMID))
					break
				}
			}
		}
	}
	return append(problems, stopAll(ctx, c, "stop after restart")...)
}

// throughput is the acknowledged writes per second that returned in the
// last window of the traffic.
func throughput(ops []Op, end time.Time, window time.Duration, h *History) float64 {
	lo := int64(end.Sub(h.start)) - int64(window)
	hi := int64(end.Sub(h.start))
	n := 0
	for _, op := range ops {
		if op.Kind == KindSend && op.Outcome == OK && op.Return >= lo && op.Return <= hi {
			n++
		}
	}
	return float64(n) / window.Seconds()
}

// writeGaps fills each fault's WriteGap from the acknowledged writes.
func writeGaps(faults []FaultRecord, ops []Op) {
	var acks []int64
	for _, op := range ops {
		if op.Kind == KindSend && op.Outcome == OK {
			acks = append(acks, op.Return)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	for i := range faults {
		f := &faults[i]
		lo, hi := int64(f.Inject), int64(f.Heal+f.Recovery)
		prev := lo
		k := sort.Search(len(acks), func(j int) bool { return acks[j] >= lo })
		for ; k < len(acks) && acks[k] <= hi; k++ {
			f.WriteGap = max(f.WriteGap, time.Duration(acks[k]-prev))
			prev = acks[k]
		}
		f.WriteGap = max(f.WriteGap, time.Duration(hi-prev))
	}
}

func tally(s *Summary, ops []Op, segs []Segment, f *Final) {
	ix := indexLog(f.Log)
	s.Ops = len(ops)
	s.ReadsByLevel, s.SegsByLevel = map[string]int{}, map[string]int{}
	for _, op := range ops {
		switch op.Kind {
		case KindSend:
			s.Sends++
			if op.Published {
				s.Published++
			}
			s.Attempts += len(op.Attempts)
			for _, a := range op.Attempts {
				if a.Redo {
					s.Redos++
				}
			}
			switch op.Outcome {
			case OK:
				s.Acked++
			case Unknown:
				s.UnknownSends++
				if len(ix.byCMID[op.CMID]) > 0 {
					s.UnknownInLog++
				}
			case Failed:
				s.FailedSends++
			}
		case KindRead:
			s.Reads++
			if op.Outcome == OK {
				s.ReadsOK++
				s.ReadsByLevel[levelName(op.Level)]++
			}
		case KindDelete:
			s.Deletions++
		case KindRedact:
			s.Redactions++
			if op.Outcome == OK {
				s.RedactionsOK++
			}
		}
	}
	s.Segments = len(segs)
	for _, sg := range segs {
		s.SubMsgs += len(sg.Msgs)
		s.SegsByLevel[levelName(sg.Level)]++
	}
	for _, ms := range f.Log {
		s.FinalLog += len(ms)
	}
}

// Format renders the summary for a human.
func (s *Summary) Format() string {
	var b strings.Builder
	verdict := "PASS"
	if !s.OK {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "=== torture %s  seed=%d  nodes=%d  writers=%d  channels=%s  duration=%v  elapsed=%v\n",
		verdict, s.Seed, s.Nodes, s.Writers, strings.Join(s.Channels, ","), s.Duration, s.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "workdir: %s\n", s.Dir)
	if s.Secure {
		fmt.Fprintf(&b, "secure: mutual TLS on Raft, TLS + token auth on gRPC (material in %s)\n", filepath.Join(s.Dir, "secure"))
	}
	fmt.Fprintf(&b, "ops: %d  sends: %d (acked %d, unknown %d of which %d committed, failed %d; %d attempts, %d dedup resends; %d on Publish streams)\n",
		s.Ops, s.Sends, s.Acked, s.UnknownSends, s.UnknownInLog, s.FailedSends, s.Attempts, s.Redos, s.Published)
	fmt.Fprintf(&b, "reads: %d (%d ok)  redactions: %d (%d ok)  deletions: %d  subscribe streams: %d delivering %d messages  final log: %d messages  applied_index: %d\n",
		s.Reads, s.ReadsOK, s.Redactions, s.RedactionsOK, s.Deletions, s.Segments, s.SubMsgs, s.FinalLog, s.AppliedIndex)
	fmt.Fprintf(&b, "ok reads by level: %s  subscriptions by level: %s\n", levelCounts(s.ReadsByLevel), levelCounts(s.SegsByLevel))
	fmt.Fprintf(&b, "calm-window throughput: %.1f acked writes/s\n", s.Throughput)
	fmt.Fprintf(&b, "faults (%d):\n", len(s.Faults))
	var maxRec, maxGap time.Duration
	for _, f := range s.Faults {
		rec := "recovered in " + f.Recovery.Round(time.Millisecond).String()
		if !f.Recovered {
			rec = "NOT RECOVERED"
		}
		maxRec = max(maxRec, f.Recovery)
		maxGap = max(maxGap, f.WriteGap)
		fmt.Fprintf(&b, "  +%-9v %-22s %-55s held %-7v longest write gap %-7v %s\n", f.Inject.Round(time.Millisecond), f.Name, f.Detail,
			(f.Heal - f.Inject).Round(100*time.Millisecond), f.WriteGap.Round(time.Millisecond), rec)
		if f.Skipped != "" {
			fmt.Fprintf(&b, "             skipped: %s\n", f.Skipped)
		}
		for _, n := range f.Notes {
			fmt.Fprintf(&b, "             %s\n", n)
		}
	}
	fmt.Fprintf(&b, "max recovery after heal: %v  longest write gap: %v\n", maxRec.Round(time.Millisecond), maxGap.Round(time.Millisecond))
	ids := make([]string, 0, len(s.Evidence))
	for id := range s.Evidence {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ev := s.Evidence[id]
		keys := make([]string, 0, len(ev))
		for k := range ev {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, ev[k]))
		}
		fmt.Fprintf(&b, "log evidence %s: %s\n", id, strings.Join(parts, " "))
	}
	if len(s.Anomalies) > 0 {
		fmt.Fprintf(&b, "process anomalies (%d):\n", len(s.Anomalies))
		for _, a := range s.Anomalies {
			fmt.Fprintf(&b, "  %s\n", a)
		}
	}
	b.WriteString("checkers:\n")
	b.WriteString(FormatVerdicts(s.Verdicts))
	fmt.Fprintf(&b, "replay: go run ./torture/cmd/torture -seed %d -duration %v -nodes %d%s\n", s.Seed, s.Duration, s.Nodes, ifs(s.Secure, " -secure"))
	return b.String()
}

// levelCounts renders counts by read level, in level order.
func levelCounts(m map[string]int) string {
	var parts []string
	for _, l := range []string{LevelLeader, LevelLinearizable, LevelAtLeast, LevelLocal} {
		parts = append(parts, fmt.Sprintf("%s %d", l, m[l]))
	}
	return strings.Join(parts, ", ")
}
