package torture

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Hand-made histories: the checkers must pass a correct one and fail each
// anomaly.

const ms = int64(time.Millisecond)

func send(client int, ch, cmid string, inv, ret int64, outcome Outcome, seq uint64) Op {
	op := Op{Client: client, Kind: KindSend, Channel: ch, CMID: cmid, Sum: "s-" + cmid, Invoke: inv * ms, Return: ret * ms, Outcome: outcome, Seq: seq}
	a := Attempt{Node: "node1", Invoke: inv * ms, Return: ret * ms, Outcome: outcome, Seq: seq}
	if outcome == Unknown {
		a.Code = "Unavailable"
	}
	if outcome == Failed {
		a.Code = "FailedPrecondition"
	}
	op.Attempts = []Attempt{a}
	return op
}

func read(client int, ch string, after uint64, inv, ret int64, cmids ...string) Op {
	op := Op{Client: client, Kind: KindRead, Channel: ch, After: after, Invoke: inv * ms, Return: ret * ms, Outcome: OK, Node: "node1"}
	for i, c := range cmids {
		op.Msgs = append(op.Msgs, MsgRef{Seq: after + uint64(i) + 1, CMID: c, Sum: "s-" + c})
	}
	return op
}

// atLevel makes op a read at level that must show sequence mustSee.
func atLevel(op Op, level string, mustSee uint64) Op {
	op.Level, op.MustSee, op.Node = level, mustSee, "node3"
	return op
}

func ref(seq uint64, cmid string) MsgRef { return MsgRef{Seq: seq, CMID: cmid, Sum: "s-" + cmid} }

// finalOf builds a consistent final state (leader log and three identical
// node dumps) from a channel's messages.
func finalOf(log map[string][]MsgRef) *Final {
	f := &Final{Log: log}
	for _, id := range []string{"node1", "node2", "node3"} {
		d := NodeDump{Node: id, AppliedIndex: 42, Digest: "d1gest-of-everything", LastSeq: map[string]uint64{},
			Messages: map[string][]FinalMsg{}, Dedup: map[string]map[string]uint64{}}
		for ch, ms := range log {
			d.LastSeq[ch] = uint64(len(ms))
			d.Dedup[ch] = map[string]uint64{}
			for _, m := range ms {
				d.Messages[ch] = append(d.Messages[ch], FinalMsg{Seq: m.Seq, CMID: m.CMID, Sum: m.Sum})
				d.Dedup[ch][m.CMID] = m.Seq
			}
		}
		f.Nodes = append(f.Nodes, d)
	}
	return f
}

// goodHistory: three writes to ch0 (the third's outcome unknown to its
// client but committed), reads that each observe a legal prefix, a
// subscription that resumes correctly.
func goodHistory() ([]Op, []Segment, *Final) {
	ops := []Op{
		send(0, "ch0", "a", 0, 10, OK, 1),
		send(1, "ch0", "b", 5, 20, OK, 2),
		read(2, "ch0", 0, 12, 14, "a"), // concurrent with b: may or may not see it
		send(0, "ch0", "c", 25, 40, Unknown, 0),
		read(2, "ch0", 0, 21, 22, "a", "b"),
		read(1, "ch0", 1, 50, 52, "b", "c"), // c took effect before
		send(3, "ch0", "x", 30, 35, Failed, 0),
		// Client 1 reads its own write b at AtLeast on another node.
		atLevel(read(1, "ch0", 1, 55, 56, "b", "c"), LevelAtLeast, 2),
		// A local read on a node behind: stale, but not a linearizable op.
		atLevel(read(4, "ch0", 0, 53, 54, "a"), LevelLocal, 0),
	}
	segs := []Segment{
		{Subscriber: 0, Channel: "ch0", Node: "node1", After: 0, Start: 1 * ms, End: 23 * ms, Msgs: []MsgRef{ref(1, "a"), ref(2, "b")}},
		{Subscriber: 0, Channel: "ch0", Node: "node2", After: 2, Start: 24 * ms, End: 60 * ms, Msgs: []MsgRef{ref(3, "c")}},
	}
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b"), ref(3, "c")}})
	return ops, segs, f
}

func runAll(ops []Op, segs []Segment, f *Final, dir string) map[string]Verdict {
	out := map[string]Verdict{}
	for _, v := range []Verdict{
		CheckAcked(ops, f), CheckDedupOps(ops, f), CheckGaplessLog(f, []string{"ch0"}), CheckReads(ops, segs, f),
		CheckLinear(ops, f, []string{"ch0"}, 10*time.Second, dir), CheckSubs(segs, f), CheckConverged(f, nil),
		CheckRYW(ops),
	} {
		out[v.Name] = v
	}
	return out
}

func TestCheckersPassCorrectHistory(t *testing.T) {
	ops, segs, f := goodHistory()
	for name, v := range runAll(ops, segs, f, "") {
		if !v.OK || v.Checked == 0 {
			t.Errorf("%s: ok=%v checked=%d problems=%v", name, v.OK, v.Checked, v.Problems)
		}
	}
}

// expectOnly asserts that exactly the named checkers fail, each with a
// problem containing its substring.
func expectOnly(t *testing.T, got map[string]Verdict, want map[string]string) {
	t.Helper()
	for name, v := range got {
		sub, should := want[name]
		switch {
		case should && v.OK:
			t.Errorf("%s passed, want a failure mentioning %q", name, sub)
		case should && !strings.Contains(strings.Join(v.Problems, "\n"), sub):
			t.Errorf("%s failed with %v, want a problem mentioning %q", name, v.Problems, sub)
		case !should && !v.OK:
			t.Errorf("%s failed unexpectedly: %v", name, v.Problems)
		}
	}
}

func TestCheckersCatchLostAck(t *testing.T) {
	ops, segs, _ := goodHistory()
	// b was acknowledged as #2, but the cluster lost it; c moved down.
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "c")}})
	segs = segs[:1]
	segs[0].Msgs = []MsgRef{ref(1, "a"), ref(2, "c")}
	ops = ops[:4] // drop reads that would show b
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{
		CheckAckedDurable: "lost ack: b acknowledged",
		CheckLinearizable: "not linearizable",
	})
}

func TestCheckersCatchLostAckOnOneNode(t *testing.T) {
	ops, segs, f := goodHistory()
	d := &f.Nodes[2]
	d.Messages["ch0"] = d.Messages["ch0"][:1]
	d.LastSeq["ch0"] = 1
	delete(d.Dedup["ch0"], "b")
	delete(d.Dedup["ch0"], "c")
	d.Digest = "other"
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{
		CheckAckedDurable: "lost ack on node3",
		CheckConvergence:  "digest differs",
	})
}

func TestCheckersCatchDuplicateSequence(t *testing.T) {
	ops, segs, _ := goodHistory()
	// The leader serves #3 twice.
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b"), ref(3, "c"), ref(3, "c")}})
	got := runAll(ops, segs, f, "")
	for name, sub := range map[string]string{
		CheckGapless: "sequence 3 twice",
		CheckDedup:   "c appears 2 times",
	} {
		if v := got[name]; v.OK || !strings.Contains(strings.Join(v.Problems, "\n"), sub) {
			t.Errorf("%s: ok=%v problems=%v, want one mentioning %q", name, v.OK, v.Problems, sub)
		}
	}
}

func TestCheckersCatchDedupViolation(t *testing.T) {
	ops, segs, f := goodHistory()
	// A retry of a after an unknown outcome came back with a new sequence.
	ops[0].Attempts = []Attempt{
		{Node: "node1", Invoke: 0, Return: 2 * ms, Outcome: Unknown, Code: "Unavailable"},
		{Node: "node2", Invoke: 3 * ms, Return: 10 * ms, Outcome: OK, Seq: 1},
		{Node: "node2", Invoke: 11 * ms, Return: 12 * ms, Outcome: OK, Seq: 4, Dedup: true, Redo: true},
	}
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{CheckDedup: "one id, two sequences: 1 then 4"})

	// The same id stored twice.
	ops, segs, _ = goodHistory()
	f = finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b"), ref(3, "c"), ref(4, "a")}})
	segs[1].Msgs = append(segs[1].Msgs, ref(4, "a"))
	got = runAll(ops, segs, f, "")
	if v := got[CheckDedup]; v.OK || !strings.Contains(strings.Join(v.Problems, "\n"), "a appears 2 times") {
		t.Errorf("dedup: %v", v.Problems)
	}
}

func TestCheckersCatchGap(t *testing.T) {
	ops, segs, _ := goodHistory()
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b"), ref(4, "c")}})
	// The subscription jumped from #2 to #4.
	segs[1].Msgs = []MsgRef{ref(4, "c")}
	ops = ops[:5]
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{
		CheckGapless:       "gap: 4 follows 2",
		CheckSubscriptions: "delivered #4 where #3 was due",
		CheckLinearizable:  "not linearizable",
	})
}

func TestCheckersCatchStaleRead(t *testing.T) {
	ops, segs, f := goodHistory()
	// Begun after b was acknowledged (at 20ms), this read sees only a.
	ops = append(ops, read(3, "ch0", 0, 30, 31, "a"))
	dir := t.TempDir()
	got := runAll(ops, segs, f, dir)
	expectOnly(t, got, map[string]string{CheckLinearizable: "stale read (client 3 on node1 at leader, op 0)"})
	if m, _ := filepath.Glob(filepath.Join(dir, "linearizability-ch0-*.html")); len(m) != 1 {
		t.Errorf("want one visualization, got %v", m)
	}
}

func TestCheckersCatchReadOfFailedWrite(t *testing.T) {
	ops, segs, _ := goodHistory()
	// x's send definitely failed (NotLeader), yet x shows up.
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b"), ref(3, "c"), ref(4, "x")}})
	segs[1].Msgs = append(segs[1].Msgs, ref(4, "x"))
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{CheckReadsValid: "definitely failed"})
}

func TestCheckersCatchReadNotInLog(t *testing.T) {
	ops, segs, f := goodHistory()
	// A subscription showed a message the cluster later forgot.
	segs[1].Msgs = append(segs[1].Msgs, ref(4, "ghost"))
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{
		CheckReadsValid:    "absent from the final log",
		CheckSubscriptions: "ended at #4",
	})
}

func TestCheckersCatchSubscriptionResumeAndDuplicate(t *testing.T) {
	ops, segs, f := goodHistory()
	// The resumed stream starts over at #2 (a duplicate).
	segs[1].Msgs = []MsgRef{ref(2, "b"), ref(3, "c")}
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{CheckSubscriptions: "delivered #2 where #3 was due"})
}

func TestCheckersCatchDivergence(t *testing.T) {
	ops, segs, f := goodHistory()
	f.Nodes[1].AppliedIndex = 41
	got := runAll(ops, segs, f, "")
	expectOnly(t, got, map[string]string{CheckConvergence: "applied_index differs"})

	got = map[string]Verdict{CheckConvergence: CheckConverged(f, []string{"node2 exited on its own"})}
	if v := got[CheckConvergence]; v.OK || !strings.Contains(strings.Join(v.Problems, "\n"), "exited on its own") {
		t.Errorf("anomaly not reported: %v", v.Problems)
	}
}

func TestLivenessChecker(t *testing.T) {
	in := LivenessInput{Bound: 30 * time.Second, FinalProbeOK: true, Throughput: 50, MinThroughput: 20, CalmWindow: 10 * time.Second,
		Faults: []FaultRecord{{Name: FaultKillLeader, Recovered: true, Recovery: 2 * time.Second}}}
	if v := CheckLive(in); !v.OK {
		t.Errorf("healthy run failed: %v", v.Problems)
	}
	in.Faults = append(in.Faults, FaultRecord{Name: FaultPartitionLeader, Recovered: false})
	in.Throughput = 5
	v := CheckLive(in)
	if v.OK || v.Total != 2 {
		t.Errorf("want 2 problems, got %v", v.Problems)
	}
}

// Reads at the levels that may lag are held to what they promise: a
// stale local read passes, an AtLeast read that misses the reader's own
// write fails checker 9 only, and the same stale answer at linearizable
// fails checker 5.
func TestReadLevels(t *testing.T) {
	ops, segs, f := goodHistory()
	stale := atLevel(read(1, "ch0", 1, 57, 58), LevelAtLeast, 2) // b is #2, acked at 20
	expectOnly(t, runAll(append(ops, stale), segs, f, ""), map[string]string{CheckReadYourWrites: "missing its own write #2"})

	lin := atLevel(read(4, "ch0", 1, 57, 58), LevelLinearizable, 0)
	expectOnly(t, runAll(append(ops, lin), segs, f, ""), map[string]string{CheckLinearizable: "not linearizable"})
}

// A subscription the client ended with an internal error (a node's stream
// skipped a sequence) fails checker 6.
func TestSubscriptionInternalError(t *testing.T) {
	ops, segs, f := goodHistory()
	segs[0].Code, segs[0].Err = "Internal", "raftogram: internal error: sequence 3 follows 1"
	expectOnly(t, runAll(ops, segs, f, ""), map[string]string{CheckSubscriptions: "sequence 3 follows 1"})
}

func TestLinearizabilityWithPendingWrites(t *testing.T) {
	ops, segs, _ := goodHistory()
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b"), ref(3, "c"), ref(4, "d")}})
	// c's outcome is unknown to its client; a read may miss it while it is
	// pending.
	ops = append(ops, read(3, "ch0", 1, 45, 46, "b"))
	ops = append(ops, send(1, "ch0", "d", 55, 60, OK, 4))
	segs[1].Msgs = append(segs[1].Msgs, ref(4, "d"))
	if v := CheckLinear(ops, f, []string{"ch0"}, 10*time.Second, ""); !v.OK {
		t.Fatalf("legal history rejected: %v", v.Problems)
	}
	// Once d (#4) was acknowledged, c (#3) must have happened: a read
	// begun later that misses both is stale.
	ops = append(ops, read(2, "ch0", 1, 70, 71, "b"))
	if v := CheckLinear(ops, f, []string{"ch0"}, 10*time.Second, ""); v.OK {
		t.Fatal("stale read after a pending write was bounded: not caught")
	}
}

func TestSplitQuiescent(t *testing.T) {
	ops, _, f := goodHistory()
	hist := channelHistory(ops, f, "ch0")
	tightenPending(hist)
	cs := splitQuiescent(hist)
	// {a, b, read@12} from 0; {read@21} from 2; {c, read@50} from 2.
	if len(cs) != 3 || len(cs[0].ops) != 3 || cs[0].base != 0 || cs[1].base != 2 || cs[2].base != 2 || len(cs[2].ops) != 2 {
		for _, c := range cs {
			t.Logf("chunk base %d: %d ops", c.base, len(c.ops))
		}
		t.Fatalf("want chunks {a,b,read} from 0, {read} from 2, {c,read} from 2")
	}
	for _, op := range cs[2].ops {
		if in := op.Input.(linInput); in.CMID == "c" && op.Return != 52*ms {
			t.Errorf("pending c returns at %v, want bounded by the read that saw it (52ms)", time.Duration(op.Return))
		}
	}
}

func TestWriteGaps(t *testing.T) {
	sec := int64(time.Second)
	ops := []Op{
		{Kind: KindSend, Outcome: OK, Return: 1 * sec},
		{Kind: KindSend, Outcome: OK, Return: 2 * sec},
		{Kind: KindSend, Outcome: Unknown, Return: 3 * sec},
		{Kind: KindSend, Outcome: OK, Return: 6 * sec},
		{Kind: KindSend, Outcome: OK, Return: 7 * sec},
	}
	fs := []FaultRecord{{Inject: 1500 * time.Millisecond, Heal: 5 * time.Second, Recovery: 2 * time.Second}}
	writeGaps(fs, ops)
	if fs[0].WriteGap != 4*time.Second {
		t.Errorf("write gap %v, want 4s (2s..6s)", fs[0].WriteGap)
	}
}

// trimmedFinal is the final state of ch0 after retention removed
// sequences 1 and 2 everywhere (their dedup rows stay).
func trimmedFinal() *Final {
	f := finalOf(map[string][]MsgRef{"ch0": {ref(3, "c"), ref(4, "d")}})
	f.Trimmed = map[string]uint64{"ch0": 2}
	for i := range f.Nodes {
		d := &f.Nodes[i]
		d.Trimmed = map[string]uint64{"ch0": 2}
		d.LastSeq["ch0"] = 4
		d.Dedup["ch0"]["a"], d.Dedup["ch0"]["b"] = 1, 2
	}
	return f
}

// With retention the checkers judge what the channel still holds: acked
// writes below the trimmed point, reads that saw them before the trim, the
// dedup rows they left and a subscriber told to skip ahead are all fine;
// a real gap, a skip without OutOfRange or a resume past the skip are not.
func TestCheckersUnderstandRetention(t *testing.T) {
	ops := []Op{
		send(0, "ch0", "a", 0, 10, OK, 1), send(0, "ch0", "b", 11, 20, OK, 2),
		send(0, "ch0", "c", 21, 30, OK, 3), send(0, "ch0", "d", 31, 40, OK, 4),
		read(1, "ch0", 0, 12, 14, "a"), // before the trim
	}
	segs := []Segment{
		{Subscriber: 1, Channel: "ch0", After: 0, Start: 1 * ms, End: 15 * ms, Msgs: []MsgRef{ref(1, "a")},
			Code: "OutOfRange", Err: "trimmed", SkipTo: 2},
		{Subscriber: 1, Channel: "ch0", After: 2, Start: 16 * ms, End: 50 * ms, Msgs: []MsgRef{ref(3, "c"), ref(4, "d")}},
	}
	f := trimmedFinal()
	for _, v := range []Verdict{CheckAcked(ops, f), CheckDedupOps(ops, f), CheckGaplessLog(f, []string{"ch0"}),
		CheckReads(ops, segs, f), CheckSubs(segs, f), CheckConverged(f, nil)} {
		if !v.OK {
			t.Errorf("%s failed a correct trimmed history: %v", v.Name, v.Problems)
		}
	}

	gap := trimmedFinal()
	gap.Log["ch0"] = []MsgRef{ref(4, "d")}
	if v := CheckGaplessLog(gap, []string{"ch0"}); v.OK {
		t.Error("a gap after the trimmed point passed")
	}
	fake := []Op{read(1, "ch0", 0, 12, 14, "z")} // a trimmed sequence no send wrote
	if v := CheckReads(append(ops[:4:4], fake...), nil, f); v.OK {
		t.Error("a read of a trimmed sequence with a phantom message passed")
	}
	noCode := []Segment{segs[0], segs[1]}
	noCode[0].Code = ""
	if v := CheckSubs(noCode, f); v.OK {
		t.Error("a skip without OutOfRange passed")
	}
	tooFar := []Segment{segs[0], segs[1]}
	tooFar[0].SkipTo, tooFar[1].After, tooFar[1].Msgs = 3, 3, []MsgRef{ref(4, "d")}
	if v := CheckSubs(tooFar, f); v.OK {
		t.Error("a skip past the final trimmed point passed")
	}
}

// A redaction empties a payload on every node: acked writes, reads before
// and after it and the final log all pass; a payload emptied with no
// redaction, or an acknowledged redaction not applied, fail.
func TestCheckersUnderstandRedaction(t *testing.T) {
	redacted := MsgRef{Seq: 2, CMID: "b", Sum: PayloadSum(nil), Redacted: true}
	ops := []Op{
		send(0, "ch0", "a", 0, 10, OK, 1), send(0, "ch0", "b", 11, 20, OK, 2),
		read(1, "ch0", 0, 21, 22, "a", "b"), // before the redaction
		{Client: 2, Kind: KindRedact, Channel: "ch0", Seq: 2, Invoke: 23 * ms, Return: 25 * ms, Outcome: OK},
		{Client: 1, Kind: KindRead, Channel: "ch0", After: 1, Invoke: 26 * ms, Return: 27 * ms, Outcome: OK, Node: "node1", Msgs: []MsgRef{redacted}},
	}
	f := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), redacted}})
	for i := range f.Nodes {
		f.Nodes[i].Messages["ch0"][1].Redacted = true
	}
	for _, v := range []Verdict{CheckAcked(ops, f), CheckDedupOps(ops, f), CheckReads(ops, nil, f), CheckConverged(f, nil)} {
		if !v.OK {
			t.Errorf("%s failed a correct history with a redaction: %v", v.Name, v.Problems)
		}
	}
	if v := CheckAcked(ops[:3:3], f); v.OK {
		t.Error("a payload emptied with no redaction passed checker 1")
	}
	unapplied := finalOf(map[string][]MsgRef{"ch0": {ref(1, "a"), ref(2, "b")}})
	if v := CheckAcked(ops[:4:4], unapplied); v.OK {
		t.Error("an acknowledged redaction missing from the final log passed")
	}
}

// A channel deleted and created again (Final.Recreated): sends refused
// NotFound while it was gone, acked messages of the old incarnation, a
// resend after the deletion that got a new sequence, and a final log that
// starts after the old last sequence all pass; a gap in the new
// incarnation does not.
func TestCheckersUnderstandDeletion(t *testing.T) {
	refused := send(2, "scr", "x", 31, 32, Failed, 0)
	refused.Attempts[0].Code = "NotFound"
	resent := send(0, "scr", "a", 0, 10, OK, 1)
	again := Attempt{Node: "node1", Invoke: 40 * ms, Return: 41 * ms, Outcome: OK, Seq: 3, Redo: true}
	resent.Attempts = append(resent.Attempts, again)
	ops := []Op{
		resent,
		send(1, "scr", "b", 11, 20, OK, 2),
		{Client: 3, Kind: KindDelete, Channel: "scr", Invoke: 25 * ms, Return: 35 * ms, Outcome: OK},
		refused,
		send(1, "scr", "c", 42, 50, OK, 4),
	}
	f := finalOf(map[string][]MsgRef{"scr": {ref(3, "a"), ref(4, "c")}})
	f.Recreated = map[string]bool{"scr": true}
	for i := range f.Nodes {
		f.Nodes[i].LastSeq["scr"] = 4
	}
	for _, v := range []Verdict{CheckAcked(ops, f), CheckDedupOps(ops, f), CheckGaplessLog(f, []string{"scr"}), CheckReads(ops, nil, f), CheckConverged(f, nil)} {
		if !v.OK {
			t.Errorf("%s failed a correct history with a deletion: %v", v.Name, v.Problems)
		}
	}
	gap := finalOf(map[string][]MsgRef{"scr": {ref(3, "a"), ref(5, "c")}})
	gap.Recreated = f.Recreated
	if v := CheckGaplessLog(gap, []string{"scr"}); v.OK {
		t.Error("a gap in the new incarnation passed")
	}
	noDelete := []Op{ops[0], ops[1], ops[4]}
	if v := CheckDedupOps(noDelete, f); v.OK {
		t.Error("one id with two sequences and no deletion between passed")
	}
}
