package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftogram/raftogram/client"
)

// interruptGrace is how long ops in flight may still finish after the run
// is interrupted.
const interruptGrace = 3 * time.Second

// setupConcurrency bounds concurrent set-up calls (channel creation, markers).
const setupConcurrency = 16

// Run executes one run of cfg and returns its result. It creates the
// channels (a client.Client finds the leader), preloads history (read, mixed), starts and waits for
// the subscribers (subscribe, mixed), then runs the clients for the warm-up
// and the measured window, and for subscribers waits until they have caught
// up. Progress lines go to cfg.Progress.
//
// When ctx ends during the warm-up or the measured window the run stops
// early and the result says interrupted; when it ends during set-up, Run
// returns ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, errs: &ErrorCounts{}, runTag: randomHex(4), cons: cfg.consistency()}
	r.obs = &observer{errs: r.errs}
	r.template = make([]byte, cfg.Payload)
	for i := range r.template {
		if i >= stampBytes {
			r.template[i] = 'a' + byte(i%26)
		}
	}
	for i := range cfg.Channels {
		r.channels = append(r.channels, &channelState{id: channelID(cfg.ChannelPrefix, i)})
	}
	ccfg := client.Config{
		Addrs:          cfg.Addrs,
		DialOptions:    cfg.DialOptions,
		ConnsPerNode:   cfg.Conns,
		Consistency:    r.cons,
		BaseBackoff:    backoffMin,
		MaxBackoff:     backoffMax,
		AttemptTimeout: cfg.AttemptTimeout,
		OnRetry:        r.obs.onRetry,
	}
	c, err := client.New(ctx, ccfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer c.Close()
	r.client = c
	if cfg.Subscribers > 0 {
		// The subscribers have their own connections, whose chunks are
		// decoded only as far as their checks need (chunkCodec).
		ccfg.DialOptions = append(slices.Clip(cfg.DialOptions), chunkCodecOption())
		sc, err := client.New(ctx, ccfg)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer sc.Close()
		r.subClient = sc
	}
	return r.run(ctx)
}

// Pauses of the client between attempts: full jitter up to backoffMin
// doubled per attempt, at most backoffMax.
const (
	backoffMin = 10 * time.Millisecond
	backoffMax = 500 * time.Millisecond
)

// channelState is one channel of the run.
type channelState struct {
	id       string
	maxIndex atomic.Uint64 // highest Raft index of an acknowledged write to it (creation included)
	maxSeq   atomic.Uint64 // highest sequence a send to it was acknowledged with
}

// observe records an acknowledged write: its sequence (0 for the channel's
// creation) and Raft index. The index is stored first, so a reader that
// loads maxSeq and then maxIndex gets an index at which that sequence is
// applied.
func (c *channelState) observe(seq, index uint64) {
	storeMax(&c.maxIndex, index)
	storeMax(&c.maxSeq, seq)
}

// storeMax raises v to x unless it is higher already.
func storeMax(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

type opKind int

const (
	opSend opKind = iota
	opRead
	opKinds
)

// workerStats is one client's measured ops; only its goroutine writes it.
type workerStats struct {
	hist       [opKinds]Histogram
	service    Histogram // under -rate: from the actual start, not the scheduled one
	ops        [opKinds]int64
	errors     int64
	dups       int64
	warmupOps  int64
	firstStart time.Time
	lastEnd    time.Time
	_          [64]byte // keep neighbours' hot fields off this cache line
}

// subscriber is one Subscribe stream and its checks. last is shared; the
// other fields are written only by the subscriber's goroutine and read after
// it ends.
type subscriber struct {
	ch           *channelState
	node         string        // the node that served its first batch
	last         atomic.Uint64 // highest sequence received
	delivered    int64
	gaps         int64
	outOfOrder   int64
	resubscribes int64
	latency      Histogram
	accept       Histogram
}

type runner struct {
	cfg       Config
	cons      client.Consistency // of reads and subscriptions
	client    *client.Client     // sends, reads and set-up
	subClient *client.Client     // subscribers
	obs       *observer
	leaders   leaderWatch
	maxIndex  atomic.Uint64 // highest Raft index of any acknowledged write
	errs      *ErrorCounts
	runTag    string
	template  []byte
	channels  []*channelState

	// Progress counters.
	phase       atomic.Pointer[string]
	done        atomic.Int64 // ops finished (any phase since the last reset)
	failed      atomic.Int64
	delivered   atomic.Int64
	ready       atomic.Int64
	errsBase    atomic.Int64 // r.errs.Total() when the counters were reset
	retriesBase atomic.Int64 // r.obs.retries when the counters were reset
	resubBase   int64        // r.obs.resubscribes when the counters were reset

	measureFrom, measureUntil time.Time
	remaining                 atomic.Int64 // measured ops left with -n
}

type opResult struct {
	dup bool
	err error
}

func (r *runner) setPhase(p string) { r.phase.Store(&p) }

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	// RPCs run under hard, which outlives ctx by interruptGrace so that ops
	// in flight when the run is interrupted still finish and count.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	stopHard := context.AfterFunc(ctx, func() { time.AfterFunc(interruptGrace, hardCancel) })
	defer stopHard()

	r.setPhase("setup")
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	progressWG.Go(func() { r.progressLoop(progressDone) })
	defer func() { close(progressDone); progressWG.Wait() }()

	setup, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancelSetup()
	r.logf("creating %d channels %s-0..%d", cfg.Channels, cfg.ChannelPrefix, cfg.Channels-1)
	if err := r.createChannels(setup); err != nil {
		return nil, err
	}
	r.logf("leader is %s; reads and subscriptions at %s", r.client.Leader(), r.cons)
	if cfg.History > 0 && (cfg.Workload == WorkloadRead || cfg.Workload == WorkloadMixed) {
		r.setPhase("preload")
		r.logf("preloading %d messages into each of %d channels", cfg.History, cfg.Channels)
		if err := r.preload(setup); err != nil {
			return nil, err
		}
	}
	var subs []*subscriber
	var subWG sync.WaitGroup
	subCtx, cancelSubs := context.WithCancel(hard)
	defer func() { cancelSubs(); subWG.Wait() }()
	if cfg.Subscribers > 0 {
		r.setPhase("subscribe")
		r.logf("starting %d subscribers", cfg.Subscribers)
		subs = r.startSubscribers(subCtx, &subWG)
		if err := r.awaitSubscribers(setup, subs); err != nil {
			return nil, err
		}
	}
	cancelSetup()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if e, first := r.errs.Snapshot(); len(e) > 0 {
		r.logf("set-up saw failures: %s; first %s", classesString(e), first)
	}

	// The run proper: warm-up, then the measured window.
	changes0, moves0 := r.leaders.Changes(), r.obs.redirects.Load()
	r.done.Store(0)
	r.failed.Store(0)
	r.retriesBase.Store(r.obs.retries.Load())
	r.resubBase = r.obs.resubscribes.Load()
	r.errsBase.Store(r.errs.Total())
	start := time.Now()
	r.measureFrom = start.Add(cfg.Warmup)
	r.measureUntil = r.measureFrom.Add(cfg.Duration)
	if cfg.N > 0 {
		r.measureUntil = r.measureFrom.Add(100 * 365 * 24 * time.Hour)
	}
	r.remaining.Store(cfg.N)
	r.setPhase("warmup")
	if cfg.Warmup == 0 {
		r.setPhase("measure")
	}

	type atMeasure struct {
		cpu     cpuSample
		errs    map[string]int64
		retries int64
	}
	measureCh := make(chan atMeasure, 1)
	stages := &stageSampler{urls: cfg.MetricsURLs}
	measureTimer := time.AfterFunc(cfg.Warmup, func() {
		r.setPhase("measure")
		r.errs.ForgetFirst()
		e, _ := r.errs.Snapshot()
		stages.start(ctx)
		measureCh <- atMeasure{cpu: sampleCPU(cfg.ServerPIDs), errs: e, retries: r.obs.retries.Load()}
	})

	limiter := NewLimiter(cfg.Rate, start)
	stats := make([]workerStats, cfg.Clients)
	var wg sync.WaitGroup
	for w := range cfg.Clients {
		wg.Go(func() { r.worker(ctx, hard, w, limiter, &stats[w]) })
	}
	wg.Wait()
	cpu1 := sampleCPU(cfg.ServerPIDs)
	m0 := atMeasure{retries: r.obs.retries.Load()}
	if !measureTimer.Stop() {
		m0 = <-measureCh
	}
	var stageRes Result
	stages.finish(context.WithoutCancel(ctx), &stageRes)

	res := &Result{
		Target:    "raftogram",
		Label:     cfg.Label,
		Workload:  cfg.Workload,
		Clients:   cfg.Clients,
		Conns:     cfg.Conns,
		Channels:  cfg.Channels,
		Payload:   cfg.Payload,
		Rate:      cfg.Rate,
		StartedAt: start.UTC().Format(time.RFC3339),
	}
	if cfg.Workload == WorkloadPublish {
		res.Inflight = cfg.Inflight
	}
	if len(subs) > 0 {
		r.setPhase("drain")
		res.DeliveryStats = r.drain(hard, subs)
		cancelSubs()
		subWG.Wait()
		r.finishDelivery(res.DeliveryStats, subs)
	}
	r.setPhase("done")
	res.Interrupted = ctx.Err() != nil
	res.WriteStages, res.WriteStagesError = stageRes.WriteStages, stageRes.WriteStagesError
	res.Leader = r.client.Leader()
	if res.Leader == "" {
		res.Leader = r.leaders.Leader()
	}
	res.Consistency = r.cons.String()
	res.LeaderChanges = r.leaders.Changes() - changes0
	res.Redirects = r.obs.redirects.Load() - moves0
	r.summarize(res, stats)
	res.Retries = r.obs.retries.Load() - m0.retries
	endErrs, first := r.errs.Snapshot()
	res.ErrorClasses = diffCounts(endErrs, m0.errs)
	if len(res.ErrorClasses) > 0 {
		res.FirstError = first
	}
	if c0 := m0.cpu; !c0.at.IsZero() {
		if wall := cpu1.at.Sub(c0.at).Seconds(); wall > 0 {
			res.ClientCPUPct = round((cpu1.self-c0.self).Seconds()/wall*100, 1)
			if c0.serverOK && cpu1.serverOK {
				d := (cpu1.server - c0.server).Seconds()
				res.ServerCPUPct = round(d/wall*100, 1)
				if res.Ops > 0 {
					res.ServerCPUUsOp = round(d*1e6/float64(res.Ops), 1)
				}
				for i := range cpu1.perPID {
					res.ServerCPUPctPerPID = append(res.ServerCPUPctPerPID, round((cpu1.perPID[i]-c0.perPID[i]).Seconds()/wall*100, 1))
				}
			}
		}
	}
	return res, nil
}

// summarize merges the clients' stats into res.
func (r *runner) summarize(res *Result, stats []workerStats) {
	var all, service Histogram
	var kinds [opKinds]Histogram
	var first, last time.Time
	for i := range stats {
		st := &stats[i]
		for k := range opKinds {
			kinds[k].Merge(&st.hist[k])
			all.Merge(&st.hist[k])
		}
		service.Merge(&st.service)
		res.Errors += st.errors
		res.Dups += st.dups
		res.WarmupOps += st.warmupOps
		if !st.firstStart.IsZero() && (first.IsZero() || st.firstStart.Before(first)) {
			first = st.firstStart
		}
		if st.lastEnd.After(last) {
			last = st.lastEnd
		}
	}
	res.Ops = int64(all.Count())
	from := r.measureFrom
	if !first.IsZero() && (r.cfg.N > 0 || first.Before(from)) {
		from = first
	}
	if el := last.Sub(from).Seconds(); !last.IsZero() && el > 0 {
		res.DurationS = round(el, 3)
		res.OpsPerSec = round(float64(res.Ops)/el, 1)
	}
	res.MeanMs = ms(all.Mean())
	res.P50Ms = ms(all.Percentile(50))
	res.P90Ms = ms(all.Percentile(90))
	res.P99Ms = ms(all.Percentile(99))
	res.P999Ms = ms(all.Percentile(99.9))
	res.MaxMs = ms(all.Max())
	if r.cfg.Rate > 0 {
		res.ServiceP50Ms = ms(service.Percentile(50))
		res.ServiceP99Ms = ms(service.Percentile(99))
	}
	if r.cfg.Workload == WorkloadMixed {
		res.MixedStats = &MixedStats{
			SendOps:   int64(kinds[opSend].Count()),
			SendP50Ms: ms(kinds[opSend].Percentile(50)),
			SendP99Ms: ms(kinds[opSend].Percentile(99)),
			ReadOps:   int64(kinds[opRead].Count()),
			ReadP50Ms: ms(kinds[opRead].Percentile(50)),
			ReadP99Ms: ms(kinds[opRead].Percentile(99)),
		}
	}
}

// diffCounts is end minus start, without zero entries; never nil.
func diffCounts(end, start map[string]int64) map[string]int64 {
	out := make(map[string]int64)
	for k, v := range end {
		if d := v - start[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// worker is one client: a closed loop, or slots from the limiter.
func (r *runner) worker(stop, hard context.Context, w int, lim *Limiter, st *workerStats) {
	cfg := r.cfg
	if cfg.Workload == WorkloadPublish {
		r.publisher(stop, hard, w, lim, st)
		return
	}
	rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(time.Now().UnixNano())))
	buf := append([]byte(nil), r.template...)
	author := fmt.Sprintf("bench-%d", w)
	var seq int64
	for stop.Err() == nil {
		at, err := lim.Wait(stop)
		if err != nil {
			return
		}
		began := time.Now()
		t0 := began
		if lim != nil {
			t0 = at // measure from the scheduled start, so stalls show as latency
		}
		measured := !t0.Before(r.measureFrom)
		if measured {
			if cfg.N > 0 {
				if r.remaining.Add(-1) < 0 {
					return
				}
			} else if !t0.Before(r.measureUntil) {
				return
			}
		}
		kind := opSend
		switch cfg.Workload {
		case WorkloadRead:
			kind = opRead
		case WorkloadMixed:
			if rng.Float64() < cfg.ReadFraction {
				kind = opRead
			}
		}
		var res opResult
		if kind == opSend {
			seq++
			res = r.send(hard, r.channels[rng.IntN(len(r.channels))], buf, author, fmt.Sprintf("%s-%d-%d", r.runTag, w, seq), stampFor(measured))
		} else {
			res = r.read(hard, rng)
		}
		t1 := time.Now()
		r.done.Add(1)
		if res.err != nil {
			r.failed.Add(1)
		}
		if !measured {
			st.warmupOps++
			continue
		}
		if st.firstStart.IsZero() {
			st.firstStart = t0
		}
		st.lastEnd = t1
		if res.err != nil {
			st.errors++
			continue
		}
		st.hist[kind].Record(t1.Sub(t0))
		if lim != nil {
			st.service.Record(t1.Sub(began))
		}
		st.ops[kind]++
		if res.dup {
			st.dups++
		}
	}
}

// The first 8 bytes of a payload (little endian) carry the send time of
// the op, in Unix nanoseconds, with the top bit set when the op is measured.
// Preloaded and marker messages carry 0.
const measuredBit = 1 << 63

type stamp int

const (
	noStamp stamp = iota
	warmupStamp
	measuredStamp
)

func stampFor(measured bool) stamp {
	if measured {
		return measuredStamp
	}
	return warmupStamp
}

// putStamp writes the current time into buf's first bytes.
func putStamp(buf []byte, s stamp) {
	if len(buf) < stampBytes {
		return
	}
	var v uint64
	switch s {
	case warmupStamp:
		v = uint64(time.Now().UnixNano())
	case measuredStamp:
		v = uint64(time.Now().UnixNano()) | measuredBit
	}
	binary.LittleEndian.PutUint64(buf, v)
}

// readStamp returns the send time in a payload and whether it was sent by
// a measured op.
func readStamp(p []byte) (sentUnixNano int64, measured bool) {
	if len(p) < stampBytes {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(p)
	return int64(v &^ measuredBit), v&measuredBit != 0
}

// send sends buf to ch with id (the client retries it with that id until
// OpTimeout); the payload is stamped first (see putStamp).
func (r *runner) send(ctx context.Context, ch *channelState, buf []byte, author, id string, s stamp) opResult {
	putStamp(buf, s)
	octx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	res, err := r.client.Send(octx, client.SendRequest{ChannelID: ch.id, AuthorID: author, Payload: buf, ClientMessageID: id})
	if err != nil {
		r.opFailed(ctx, octx, err)
		return opResult{err: err}
	}
	r.acked(ch, res.Sequence, res.Index)
	return opResult{dup: res.Deduplicated}
}

// acked records an acknowledged write and the leader that took it.
func (r *runner) acked(ch *channelState, seq, index uint64) {
	ch.observe(seq, index)
	storeMax(&r.maxIndex, index)
	r.leaders.saw(r.client.Leader())
}

// opFailed counts the error an op ended with: gave_up when its own
// deadline octx passed while the run's ctx had not ended, else its class.
func (r *runner) opFailed(ctx, octx context.Context, err error) {
	switch {
	case octx.Err() != nil && ctx.Err() == nil:
		r.errs.Add(ClassGaveUp, err)
	case ctx.Err() == nil:
		r.errs.Add(classOf(err), err)
	}
}

// read asks ReadLimit messages at a random offset of a random channel at
// the run's consistency and checks the answer: consecutive messages from
// the offset, and, at every level but local, every message known to be
// committed there (at-least asks for the index of the channel's latest
// acknowledged write).
func (r *runner) read(ctx context.Context, rng *rand.Rand) opResult {
	ch := r.channels[rng.IntN(len(r.channels))]
	limit := uint64(r.cfg.ReadLimit)
	upper := ch.maxSeq.Load()
	minIndex := ch.maxIndex.Load() // after maxSeq: see observe
	var after uint64
	if upper > limit {
		after = rng.Uint64N(upper - limit + 1)
	}
	want := min(limit, upper-after)
	opts := client.ReadOptions{After: after, Limit: int(limit), Consistency: r.cons}
	switch r.cons {
	case client.AtLeast:
		opts.MinIndex = minIndex
	case client.Local:
		want = 0 // a node may be behind
	}
	octx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	h, err := r.client.ReadHistory(octx, ch.id, opts)
	if err != nil {
		r.opFailed(ctx, octx, err)
		return opResult{err: err}
	}
	if r.cons == client.LeaderOnly {
		r.leaders.saw(r.client.Leader())
	}
	if err := checkRead(ch.id, after, limit, want, h.Messages); err != nil {
		r.errs.Add(ClassBadRead, err)
		return opResult{err: err}
	}
	return opResult{}
}

// checkRead checks that a ReadHistory after `after` returned at least want
// and at most limit messages with consecutive sequences from after+1.
func checkRead(channel string, after, limit, want uint64, msgs []client.Message) error {
	n := uint64(len(msgs))
	if n < want || n > limit {
		return fmt.Errorf("ReadHistory(%s, after %d, limit %d) returned %d messages, want %d to %d", channel, after, limit, n, want, limit)
	}
	for i, m := range msgs {
		if m.Sequence != after+1+uint64(i) {
			return fmt.Errorf("ReadHistory(%s, after %d): message %d has sequence %d, want %d", channel, after, i, m.Sequence, after+1+uint64(i))
		}
	}
	return nil
}

// forEach runs fn(i) for i in [0, n) on up to conc goroutines and returns
// the first error; after an error no new i is started.
func forEach(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, conc) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

func (r *runner) createChannels(ctx context.Context) error {
	return forEach(ctx, len(r.channels), setupConcurrency, func(ctx context.Context, i int) error {
		ch := r.channels[i]
		res, err := r.client.CreateChannel(ctx, ch.id, ch.id)
		// A node limits channel creation (limits.channel_creates_per_second):
		// wait for its bucket to refill; creating an id again is harmless.
		for errors.Is(err, client.ErrResourceExhausted) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("create channel %s: %w", ch.id, err)
			case <-time.After(50 * time.Millisecond):
			}
			res, err = r.client.CreateChannel(ctx, ch.id, ch.id)
		}
		if err != nil {
			return fmt.Errorf("create channel %s: %w", ch.id, err)
		}
		r.acked(ch, 0, res.Index)
		return nil
	})
}

// preload sends History unstamped messages to every channel.
func (r *runner) preload(ctx context.Context) error {
	total := r.cfg.History * len(r.channels)
	conc := min(64, max(16, r.cfg.Clients))
	bufs := make(chan []byte, conc)
	for range conc {
		b := append([]byte(nil), r.template...)
		bufs <- b
	}
	return forEach(ctx, total, conc, func(ctx context.Context, i int) error {
		buf := <-bufs
		defer func() { bufs <- buf }()
		ch := r.channels[i%len(r.channels)]
		res := r.send(ctx, ch, buf, "bench-preload", fmt.Sprintf("%s-pre-%d", r.runTag, i), noStamp)
		r.done.Add(1)
		if res.err != nil {
			return fmt.Errorf("preload %s: %w", ch.id, res.err)
		}
		return nil
	})
}

// startSubscribers starts one goroutine per subscriber, subscriber j on
// channel j % Channels from the channel's start.
func (r *runner) startSubscribers(ctx context.Context, wg *sync.WaitGroup) []*subscriber {
	subs := make([]*subscriber, r.cfg.Subscribers)
	for j := range subs {
		s := &subscriber{ch: r.channels[j%len(r.channels)]}
		subs[j] = s
		wg.Go(func() { r.subscribe(ctx, s) })
	}
	return subs
}

// subscribe follows s's channel with a client.Subscription at the run's
// consistency (at-least: from the highest index acknowledged so far) until
// ctx ends. The Subscription resumes failed streams itself; subscribe
// starts a new one only after an answer the client treats as final but
// that passes: not found (a node at local that has not applied the
// channel's creation yet) and internal (a stream that skipped a
// sequence). Other failures end it, counted, and leave s incomplete.
func (r *runner) subscribe(ctx context.Context, s *subscriber) {
	for attempt := 0; ; attempt++ {
		opts := client.SubscribeOptions{After: s.last.Load(), Consistency: r.cons}
		if r.cons == client.AtLeast {
			opts.MinIndex = r.maxIndex.Load()
		}
		sub, err := r.subClient.Subscribe(ctx, s.ch.id, opts)
		if err == nil {
			err = r.receive(sub, s)
			sub.Close()
		}
		if ctx.Err() != nil || errors.Is(err, client.ErrClosed) {
			return
		}
		r.errs.Add("subscribe_"+classOf(err), err)
		if !errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrInternal) {
			return
		}
		s.resubscribes++
		if sleepCtx(ctx, time.Duration(rand.Int64N(int64(backoffMin<<min(attempt, 5))))) != nil {
			return
		}
	}
}

// receive hands every batch of sub to s's checks until sub fails, and
// returns the error.
func (r *runner) receive(sub *client.Subscription, s *subscriber) error {
	for {
		b, err := sub.Recv()
		if err != nil {
			return err
		}
		recv := time.Now().UnixNano()
		if s.node == "" {
			s.node = b.NodeID
		}
		var n int64
		for i := range b.Messages {
			m := &b.Messages[i]
			seq, last := m.Sequence, s.last.Load()
			if seq <= last {
				s.outOfOrder++
				continue
			}
			if seq > last+1 {
				s.gaps += int64(seq - last - 1)
			}
			s.last.Store(seq)
			n++
			if sent, measured := readStamp(m.Payload); measured {
				s.latency.Record(time.Duration(recv - sent))
				if !m.CreatedAt.IsZero() {
					s.accept.Record(time.Duration(recv - m.CreatedAt.UnixNano()))
				}
			}
		}
		s.delivered += n
		r.delivered.Add(n)
	}
}

// awaitSubscribers sends one unstamped marker message to every channel and
// waits until every subscriber has received it, so that every stream is
// live before the warm-up starts. A subscriber that is not live by the
// set-up deadline is reported, not waited for.
func (r *runner) awaitSubscribers(ctx context.Context, subs []*subscriber) error {
	err := forEach(ctx, len(r.channels), setupConcurrency, func(ctx context.Context, i int) error {
		ch := r.channels[i]
		buf := append([]byte(nil), r.template...)
		if res := r.send(ctx, ch, buf, "bench-marker", fmt.Sprintf("%s-marker-%d", r.runTag, i), noStamp); res.err != nil {
			return fmt.Errorf("marker message to %s: %w", ch.id, res.err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := 0
		for _, s := range subs {
			if s.last.Load() >= s.ch.maxSeq.Load() {
				ready++
			}
		}
		r.ready.Store(int64(ready))
		if ready == len(subs) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				r.logf("only %d of %d subscribers are live after the set-up timeout; going on", ready, len(subs))
				return nil
			}
			return ctx.Err()
		}
	}
}

// drain waits, up to DrainTimeout, until every subscriber has received
// every message acknowledged to its channel.
func (r *runner) drain(ctx context.Context, subs []*subscriber) *DeliveryStats {
	d := &DeliveryStats{Subscribers: len(subs), SubscribersReady: int(r.ready.Load())}
	start := time.Now()
	deadline := time.NewTimer(r.cfg.DrainTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		caughtUp := 0
		for _, s := range subs {
			if s.last.Load() >= s.ch.maxSeq.Load() {
				caughtUp++
			}
		}
		if caughtUp == len(subs) {
			break
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			r.logf("%d of %d subscribers still behind after %v", len(subs)-caughtUp, len(subs), r.cfg.DrainTimeout)
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	d.DrainS = round(time.Since(start).Seconds(), 3)
	return d
}

// finishDelivery fills d from the stopped subscribers.
func (r *runner) finishDelivery(d *DeliveryStats, subs []*subscriber) {
	var lat, acc Histogram
	d.Resubscribes = r.obs.resubscribes.Load() - r.resubBase // the client's, after set-up
	for _, s := range subs {
		final := s.ch.maxSeq.Load()
		d.Expected += int64(final)
		d.Delivered += min(s.delivered, int64(final))
		d.Gaps += s.gaps
		d.OutOfOrder += s.outOfOrder
		d.Resubscribes += s.resubscribes
		if s.node != "" {
			if d.SubscribersByNode == nil {
				d.SubscribersByNode = map[string]int{}
			}
			d.SubscribersByNode[s.node]++
		}
		if s.last.Load() >= final && s.gaps == 0 && s.outOfOrder == 0 {
			d.SubscribersComplete++
		}
		lat.Merge(&s.latency)
		acc.Merge(&s.accept)
	}
	d.DeliverySamples = int64(lat.Count())
	d.DeliveryMeanMs = ms(lat.Mean())
	d.DeliveryP50Ms = ms(lat.Percentile(50))
	d.DeliveryP90Ms = ms(lat.Percentile(90))
	d.DeliveryP99Ms = ms(lat.Percentile(99))
	d.DeliveryP999Ms = ms(lat.Percentile(99.9))
	d.DeliveryMaxMs = ms(lat.Max())
	d.AcceptDeliveryP50Ms = ms(acc.Percentile(50))
	d.AcceptDeliveryP99Ms = ms(acc.Percentile(99))
	d.Missing = d.Expected - d.Delivered
	d.ByNode = deliveryByNode(subs)
}

// progressLoop writes a line per ProgressInterval until done is closed.
func (r *runner) progressLoop(done <-chan struct{}) {
	if r.cfg.Progress == nil {
		return
	}
	t := time.NewTicker(r.cfg.ProgressInterval)
	defer t.Stop()
	start := time.Now()
	last := start
	var lastDone, lastDelivered int64
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			n, dl := r.done.Load(), r.delivered.Load()
			if n < lastDone { // counters were reset when the warm-up began
				lastDone = 0
			}
			phase := *r.phase.Load()
			line := fmt.Sprintf("bench: %4.0fs %-9s ops %d  %.0f ops/s  failed %d  retries %d  errors %d",
				now.Sub(start).Seconds(), phase, n, float64(n-lastDone)/dt, r.failed.Load(), r.obs.retries.Load()-r.retriesBase.Load(), r.errs.Total()-r.errsBase.Load())
			if r.cfg.Subscribers > 0 {
				line += fmt.Sprintf("  delivered %d (%.0f/s)", dl, float64(dl-lastDelivered)/dt)
				if phase == "subscribe" {
					line += fmt.Sprintf("  subscribers live %d/%d", r.ready.Load(), r.cfg.Subscribers)
				}
			}
			lastDone, lastDelivered = n, dl
			fmt.Fprintln(r.cfg.Progress, line)
		}
	}
}
