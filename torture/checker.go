package torture

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Checker names, in report order.
const (
	CheckAckedDurable   = "1 acknowledged writes durable"
	CheckDedup          = "2 dedup: one id, one sequence"
	CheckGapless        = "3 channels gapless, no duplicates"
	CheckReadsValid     = "4 reads show only real writes"
	CheckLinearizable   = "5 ReadHistory linearizable"
	CheckSubscriptions  = "6 subscriptions ordered and gapless"
	CheckConvergence    = "7 nodes converge, stop and restart cleanly"
	CheckLiveness       = "8 liveness"
	CheckReadYourWrites = "9 AtLeast reads see the reader's writes"
	maxProblemsReported = 25
)

// Verdict is one checker's result.
type Verdict struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Checked  int      `json:"checked"` // how many items it looked at
	Problems []string `json:"problems,omitempty"`
	Total    int      `json:"total_problems,omitempty"` // including ones not listed
	Note     string   `json:"note,omitempty"`
}

func (v *Verdict) fail(format string, args ...any) {
	v.Total++
	if len(v.Problems) < maxProblemsReported {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

func (v *Verdict) done() Verdict {
	v.OK = v.Total == 0
	return *v
}

// logIndex is the final log by channel and sequence, and where each
// client_message_id ended up.
type logIndex struct {
	bySeq  map[string]map[uint64]MsgRef
	byCMID map[string][]cmidPlace
}

type cmidPlace struct {
	channel string
	seq     uint64
}

func indexLog(log map[string][]MsgRef) logIndex {
	ix := logIndex{bySeq: map[string]map[uint64]MsgRef{}, byCMID: map[string][]cmidPlace{}}
	for ch, ms := range log {
		m := map[uint64]MsgRef{}
		for _, r := range ms {
			m[r.Seq] = r
			if r.CMID != "" {
				ix.byCMID[r.CMID] = append(ix.byCMID[r.CMID], cmidPlace{ch, r.Seq})
			}
		}
		ix.bySeq[ch] = m
	}
	return ix
}

func sendsByCMID(ops []Op) map[string]*Op {
	out := map[string]*Op{}
	for i := range ops {
		if ops[i].Kind == KindSend {
			out[ops[i].CMID] = &ops[i]
		}
	}
	return out
}

// redactions says, per channel and sequence, whether a RedactMessage of it
// was acknowledged (OK), may have applied (Unknown) or definitely did not
// (Failed, or absent).
type redactions map[string]map[uint64]Outcome

func redactionsOf(ops []Op) redactions {
	out := redactions{}
	for _, op := range ops {
		if op.Kind != KindRedact || op.Outcome == Failed {
			continue
		}
		if out[op.Channel] == nil {
			out[op.Channel] = map[uint64]Outcome{}
		}
		if out[op.Channel][op.Seq] != OK {
			out[op.Channel][op.Seq] = op.Outcome
		}
	}
	return out
}

// may reports whether ch#seq may have been redacted.
func (r redactions) may(ch string, seq uint64) bool { _, ok := r[ch][seq]; return ok }

// sameOrRedacted reports whether a stored or served message with sum and
// redacted flag is the one written with want, allowing for a redaction.
func (r redactions) sameOrRedacted(ch string, seq uint64, sum string, redacted bool, want string) bool {
	if redacted {
		return r.may(ch, seq)
	}
	return sum == want
}

func fmtTime(ns int64) string { return "+" + time.Duration(ns).Round(time.Millisecond).String() }

// CheckAcked is checker 1: every acknowledged write is in the final log
// (read from the leader) and in every node's projection, at the sequence
// it was acknowledged with, with its payload, unless retention has since
// removed that sequence there; and no write to an existing channel was
// refused as NotFound.
func CheckAcked(ops []Op, f *Final) Verdict {
	v := Verdict{Name: CheckAckedDurable}
	ix := indexLog(f.Log)
	red := redactionsOf(ops)
	nodeIx := make([]map[string]map[uint64]FinalMsg, len(f.Nodes))
	for i, d := range f.Nodes {
		nodeIx[i] = map[string]map[uint64]FinalMsg{}
		for ch, ms := range d.Messages {
			m := map[uint64]FinalMsg{}
			for _, x := range ms {
				m[x.Seq] = x
			}
			nodeIx[i][ch] = m
		}
	}
	for _, op := range ops {
		if op.Kind != KindSend {
			continue
		}
		for _, a := range op.Attempts {
			if a.Code == "NotFound" && !f.Recreated[op.Channel] { // the scratch channel is gone between a delete and its re-creation
				v.fail("write %s to channel %s at %s was refused NotFound by %s: %s", op.CMID, op.Channel, fmtTime(a.Invoke), a.Node, a.Err)
			}
		}
		if op.Outcome != OK {
			continue
		}
		v.Checked++
		got, ok := ix.bySeq[op.Channel][op.Seq]
		switch {
		case op.Seq <= f.floor(op.Channel): // removed by retention or a deletion
		case !ok:
			v.fail("lost ack: %s acknowledged at %s as %s#%d (client %d), but the final log has no such sequence", op.CMID, fmtTime(op.Return), op.Channel, op.Seq, op.Client)
		case got.CMID != op.CMID || !red.sameOrRedacted(op.Channel, op.Seq, got.Sum, got.Redacted, op.Sum):
			v.fail("lost ack: %s acknowledged at %s as %s#%d (client %d), but the final log holds %s there", op.CMID, fmtTime(op.Return), op.Channel, op.Seq, op.Client, got.CMID)
		}
		for i, d := range f.Nodes {
			if d.Err != "" || op.Seq <= d.floor(op.Channel, f.Recreated[op.Channel]) {
				continue
			}
			m, ok := nodeIx[i][op.Channel][op.Seq]
			if !ok || m.CMID != op.CMID || !red.sameOrRedacted(op.Channel, op.Seq, m.Sum, m.Redacted, op.Sum) {
				v.fail("lost ack on %s: %s acknowledged as %s#%d, but projection.db holds %q there", d.Node, op.CMID, op.Channel, op.Seq, m.CMID)
			}
		}
	}
	// An acknowledged redaction of a message still held stays applied.
	for ch, seqs := range red {
		for seq, o := range seqs {
			if got, ok := ix.bySeq[ch][seq]; ok && o == OK && !got.Redacted {
				v.fail("lost redaction: RedactMessage of %s#%d was acknowledged, but the final log serves its payload", ch, seq)
			}
		}
	}
	return v.done()
}

// CheckDedupOps is checker 2: every success for one client_message_id
// names the same sequence; a deliberate resend comes back deduplicated; a
// first success is deduplicated only if an earlier attempt's outcome was
// unknown; each id appears at most once in the final log; and every
// node's dedup table agrees with its messages.
func CheckDedupOps(ops []Op, f *Final) Verdict {
	v := Verdict{Name: CheckDedup}
	// A channel's deletion forgets its dedup rows: a resend after it is a
	// new message of the new incarnation.
	deleted := func(ch string, from, to int64) bool {
		for _, d := range ops {
			if d.Kind == KindDelete && d.Channel == ch && d.Outcome != Failed && d.Invoke < to && d.Return > from {
				return true
			}
		}
		return false
	}
	for _, op := range ops {
		if op.Kind != KindSend {
			continue
		}
		v.Checked++
		var seq uint64
		var seenAt int64
		seen, unknownBefore := false, false
		for _, a := range op.Attempts {
			if a.Outcome != OK {
				if a.Outcome == Unknown {
					unknownBefore = true
				}
				continue
			}
			switch {
			case seen && deleted(op.Channel, seenAt, a.Return):
			case !seen && a.Dedup && !unknownBefore && !a.Redo:
				v.fail("%s: first attempt at %s came back deduplicated (seq %d) though no earlier attempt could have applied it", op.CMID, fmtTime(a.Invoke), a.Seq)
			case seen && a.Seq != seq:
				v.fail("%s: one id, two sequences: %d then %d (attempt on %s at %s)", op.CMID, seq, a.Seq, a.Node, fmtTime(a.Invoke))
			case seen && a.Redo && !a.Dedup:
				v.fail("%s: resend after success at %s was not flagged deduplicated (seq %d)", op.CMID, fmtTime(a.Invoke), a.Seq)
			}
			if !seen {
				seq, seen, seenAt = a.Seq, true, a.Invoke
			}
		}
	}
	ix := indexLog(f.Log)
	for cmid, places := range ix.byCMID {
		if len(places) > 1 {
			v.fail("%s appears %d times in the final log: %v", cmid, len(places), places)
		}
	}
	for _, d := range f.Nodes {
		if d.Err != "" {
			continue
		}
		for ch, ms := range d.Messages {
			seen := map[string]uint64{}
			for _, m := range ms {
				if m.CMID == "" {
					continue
				}
				if s, dup := seen[m.CMID]; dup {
					v.fail("%s: %s stored twice in %s (#%d and #%d)", d.Node, m.CMID, ch, s, m.Seq)
				}
				seen[m.CMID] = m.Seq
				if s, ok := d.Dedup[ch][m.CMID]; !ok || s != m.Seq {
					v.fail("%s: dedup row for %s/%s is %d (present %v), message is at #%d", d.Node, ch, m.CMID, s, ok, m.Seq)
				}
			}
			for cmid, s := range d.Dedup[ch] {
				// A trimmed message's dedup row stays (retention's dedup
				// horizon is forever by default).
				if _, ok := seen[cmid]; !ok && s > d.Trimmed[ch] {
					v.fail("%s: dedup row %s/%s -> #%d has no message", d.Node, ch, cmid, s)
				}
			}
		}
	}
	return v.done()
}

// CheckGaplessLog is checker 3: in the final log and in every node's
// projection each channel holds sequences T+1..N exactly once, in order,
// where T is what retention removed (0 without retention), and
// channels.last_sequence is N; no channel is missing or unexpected.
func CheckGaplessLog(f *Final, channels []string) Verdict {
	v := Verdict{Name: CheckGapless}
	check := func(where, ch string, seqs []uint64, base uint64) {
		v.Checked += len(seqs)
		for i, s := range seqs {
			if s != base+uint64(i+1) {
				prev := base
				if i > 0 {
					prev = seqs[i-1]
				}
				switch {
				case s == prev:
					v.fail("%s: %s has sequence %d twice", where, ch, s)
				case s > prev+1:
					v.fail("%s: %s has a gap: %d follows %d", where, ch, s, prev)
				default:
					v.fail("%s: %s out of order: %d follows %d", where, ch, s, prev)
				}
				return
			}
		}
	}
	if f.LogErr != "" {
		v.fail("final log unreadable: %s", f.LogErr)
	}
	for _, ch := range channels {
		ms, ok := f.Log[ch]
		if !ok && f.LogErr == "" {
			v.fail("leader: channel %s missing", ch)
		}
		seqs := make([]uint64, len(ms))
		for i, m := range ms {
			seqs[i] = m.Seq
		}
		base := f.Trimmed[ch]
		if f.Recreated[ch] {
			base = firstOr(seqs, 1) - 1
		}
		check("leader log", ch, seqs, base)
	}
	want := map[string]bool{}
	for _, ch := range channels {
		want[ch] = true
	}
	for _, d := range f.Nodes {
		if d.Err != "" {
			v.fail("%s: projection.db unreadable: %s", d.Node, d.Err)
			continue
		}
		for ch := range d.LastSeq {
			if !want[ch] {
				v.fail("%s: unexpected channel %s", d.Node, ch)
			}
		}
		for _, ch := range channels {
			last, ok := d.LastSeq[ch]
			if !ok {
				v.fail("%s: channel %s missing", d.Node, ch)
				continue
			}
			ms := d.Messages[ch]
			seqs := make([]uint64, len(ms))
			for i, m := range ms {
				seqs[i] = m.Seq
			}
			base := d.Trimmed[ch]
			if f.Recreated[ch] {
				base = firstOr(seqs, last+1) - 1
			}
			check(d.Node, ch, seqs, base)
			if last != base+uint64(len(ms)) {
				v.fail("%s: %s last_sequence %d but %d messages", d.Node, ch, last, len(ms))
			}
		}
	}
	return v.done()
}

// CheckReads is checker 4: every message a ReadHistory or a subscription
// returned is in the final log at that sequence with the same id and
// payload, and was not written by a send that definitely failed; every
// read returned consecutive sequences starting after its cursor; and
// every message of the final log was written by some client send that did
// not definitely fail (no phantom writes).
func CheckReads(ops []Op, segs []Segment, f *Final) Verdict {
	v := Verdict{Name: CheckReadsValid}
	ix := indexLog(f.Log)
	sends := sendsByCMID(ops)
	red := redactionsOf(ops)
	seen := func(where string, ch string, m MsgRef) {
		v.Checked++
		got, ok := ix.bySeq[ch][m.Seq]
		switch s := sends[m.CMID]; {
		case m.Seq <= f.Trimmed[ch]:
			// Retention removed it since: judge it by the send instead.
			if s == nil || s.Channel != ch || !red.sameOrRedacted(ch, m.Seq, m.Sum, m.Redacted, s.Sum) || (s.Outcome == OK && s.Seq != m.Seq) {
				v.fail("%s showed %s#%d as %s, since trimmed, which no send of that channel, payload and sequence wrote", where, ch, m.Seq, m.CMID)
			}
		case !ok:
			v.fail("%s showed %s#%d (%s), absent from the final log", where, ch, m.Seq, m.CMID)
		case got.CMID != m.CMID:
			v.fail("%s showed %s#%d as %s, the final log holds %s", where, ch, m.Seq, m.CMID, got.CMID)
		case m.Redacted && !got.Redacted:
			v.fail("%s showed %s#%d redacted, the final log serves its payload", where, ch, m.Seq)
		case got.Sum != m.Sum && !(got.Redacted && red.may(ch, m.Seq)):
			v.fail("%s showed %s#%d with another payload than the final log", where, ch, m.Seq)
		case m.Redacted && !red.may(ch, m.Seq):
			v.fail("%s showed %s#%d redacted, but no client redacted it", where, ch, m.Seq)
		}
		if s := sends[m.CMID]; s != nil && s.Outcome == Failed {
			v.fail("%s showed %s#%d written by %s, whose send definitely failed (%s)", where, ch, m.Seq, m.CMID, s.Err)
		}
	}
	for _, op := range ops {
		if op.Kind != KindRead || op.Outcome != OK {
			continue
		}
		where := fmt.Sprintf("%s read by client %d on %s at %s..%s (after %d)", levelName(op.Level), op.Client, op.Node, fmtTime(op.Invoke), fmtTime(op.Return), op.After)
		for i, m := range op.Msgs {
			if m.Seq != op.After+uint64(i)+1 {
				v.fail("%s returned #%d at position %d, want #%d", where, m.Seq, i, op.After+uint64(i)+1)
				break
			}
		}
		for _, m := range op.Msgs {
			seen(where, op.Channel, m)
		}
	}
	for _, s := range segs {
		where := fmt.Sprintf("%s subscription %d on %s at %s..%s (after %d)", levelName(s.Level), s.Subscriber, s.Node, fmtTime(s.Start), fmtTime(s.End), s.After)
		for _, m := range s.Msgs {
			seen(where, s.Channel, m)
		}
	}
	for ch, ms := range f.Log {
		for _, m := range ms {
			s := sends[m.CMID]
			switch {
			case s == nil:
				v.fail("phantom write: final log %s#%d holds %q, which no client sent", ch, m.Seq, m.CMID)
			case s.Channel != ch || !red.sameOrRedacted(ch, m.Seq, m.Sum, m.Redacted, s.Sum):
				v.fail("final log %s#%d holds %s with other channel/payload than sent (%s)", ch, m.Seq, m.CMID, s.Channel)
			case s.Outcome == Failed:
				v.fail("final log %s#%d holds %s, whose send definitely failed (%s)", ch, m.Seq, m.CMID, s.Err)
			}
		}
	}
	return v.done()
}

// CheckSubs is checker 6: every subscription delivered sequences
// After+1, After+2, ... without gap, duplicate or reordering, and none
// ended with an internal error (the client's verdict on a stream that
// skipped a sequence); each subscriber resumed from the last sequence it
// had seen, or from where retention said the channel now starts after a
// subscription ended OutOfRange (SkipTo); and each subscriber finally saw
// its whole channel.
func CheckSubs(segs []Segment, f *Final) Verdict {
	v := Verdict{Name: CheckSubscriptions}
	by := map[int][]Segment{}
	for _, s := range segs {
		by[s.Subscriber] = append(by[s.Subscriber], s)
	}
	ids := make([]int, 0, len(by))
	for id := range by {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		ss := by[id]
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Start < ss[j].Start })
		cursor, skipTo := uint64(0), uint64(0)
		for _, s := range ss {
			v.Checked++
			if s.Code == "Internal" {
				v.fail("subscriber %d %s subscription on %s at %s (after %d) failed: %s", id, levelName(s.Level), s.Node, fmtTime(s.Start), s.After, s.Err)
			}
			if skipTo > cursor && s.After == skipTo {
				cursor = skipTo // retention removed what came next; the stream said so
			}
			skipTo = s.SkipTo
			switch {
			case s.SkipTo > 0 && s.Code != "OutOfRange":
				v.fail("subscriber %d skipped to %d without an OutOfRange: %s", id, s.SkipTo, s.Err)
			case f.LogErr == "" && s.SkipTo > f.Trimmed[s.Channel]:
				v.fail("subscriber %d was told %s starts after %d, but the channel was trimmed only through %d in the end", id, s.Channel, s.SkipTo, f.Trimmed[s.Channel])
			}
			if s.After != cursor {
				v.fail("subscriber %d resumed %s after %d, but had seen up to %d", id, s.Channel, s.After, cursor)
			}
			next := s.After + 1
			for _, m := range s.Msgs {
				if m.Seq != next {
					v.fail("subscriber %d stream on %s at %s (after %d) delivered #%d where #%d was due", id, s.Node, fmtTime(s.Start), s.After, m.Seq, next)
					break
				}
				next++
			}
			if len(s.Msgs) > 0 {
				cursor = s.Msgs[len(s.Msgs)-1].Seq
			}
		}
		if len(ss) > 0 {
			ch := ss[0].Channel
			if n := f.last(ch); f.LogErr == "" && cursor != n {
				v.fail("subscriber %d of %s ended at #%d; the channel holds %d messages", id, ch, cursor, n)
			}
		}
	}
	return v.done()
}

// CheckRYW is checker 9: a read at AtLeast the index of the reader's own
// write, begun after that write was acknowledged, shows the write (its
// sequence is within the answer, or the answer says more follow).
func CheckRYW(ops []Op) Verdict {
	v := Verdict{Name: CheckReadYourWrites}
	for _, op := range ops {
		if op.Kind != KindRead || op.Outcome != OK || op.Level != LevelAtLeast || op.MustSee == 0 || op.MustSee <= op.After {
			continue
		}
		v.Checked++
		if op.After+uint64(len(op.Msgs)) < op.MustSee && !op.HasMore {
			v.fail("client %d read %s after %d at AtLeast(%d) on %s at %s and got %d messages (node applied %d), missing its own write #%d",
				op.Client, op.Channel, op.After, op.MinIndex, op.Node, fmtTime(op.Invoke), len(op.Msgs), op.AppliedIndex, op.MustSee)
		}
	}
	return v.done()
}

// CheckConverged is checker 7: every node's projection was readable, all
// hold the same applied index and digest and the same messages as the
// final log; the nodes stopped (and restarted) cleanly; no process
// crashed or logged a panic.
func CheckConverged(f *Final, anomalies []string) Verdict {
	v := Verdict{Name: CheckConvergence}
	var ref *NodeDump
	for i := range f.Nodes {
		d := &f.Nodes[i]
		v.Checked++
		if d.Err != "" {
			v.fail("%s: projection.db unreadable: %s", d.Node, d.Err)
			continue
		}
		if ref == nil {
			ref = d
			continue
		}
		if d.AppliedIndex != ref.AppliedIndex {
			v.fail("applied_index differs: %s %d, %s %d", ref.Node, ref.AppliedIndex, d.Node, d.AppliedIndex)
		}
		if d.Digest != ref.Digest {
			v.fail("digest differs: %s %s, %s %s", ref.Node, short(ref.Digest), d.Node, short(d.Digest))
		}
	}
	if ref != nil && f.LogErr == "" {
		for ch, ms := range f.Log {
			nm := ref.Messages[ch]
			if len(nm) != len(ms) {
				v.fail("%s: %s holds %d messages, the leader served %d", ref.Node, ch, len(nm), len(ms))
				continue
			}
			for i := range ms {
				if nm[i].Seq != ms[i].Seq || nm[i].CMID != ms[i].CMID || nm[i].Sum != ms[i].Sum {
					v.fail("%s: %s#%d is %s, the leader served %s", ref.Node, ch, ms[i].Seq, nm[i].CMID, ms[i].CMID)
					break
				}
			}
		}
	}
	for _, p := range f.Stop {
		v.fail("%s", p)
	}
	for _, a := range anomalies {
		v.fail("process anomaly: %s", a)
	}
	return v.done()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// LivenessInput is what checker 8 looks at.
type LivenessInput struct {
	Faults        []FaultRecord
	Bound         time.Duration // recovery bound after each heal
	FinalProbe    time.Duration
	FinalProbeOK  bool
	Throughput    float64 // acknowledged writes per second in the calm window
	MinThroughput float64
	CalmWindow    time.Duration
}

// CheckLive is checker 8: after every heal a write succeeded within the
// bound, one succeeded after the last heal, and the calm window kept the
// minimum throughput.
func CheckLive(in LivenessInput) Verdict {
	v := Verdict{Name: CheckLiveness}
	for _, r := range in.Faults {
		v.Checked++
		if !r.Recovered {
			v.fail("no write succeeded within %v after healing %s (%s) at %s", in.Bound, r.Name, r.Detail, fmtTime(int64(r.Heal)))
		}
	}
	v.Checked++
	if !in.FinalProbeOK {
		v.fail("no write succeeded within %v after the final heal", in.Bound)
	}
	if in.Throughput < in.MinThroughput {
		v.fail("throughput %.1f acked writes/s in the last %v, below the minimum %.1f", in.Throughput, in.CalmWindow, in.MinThroughput)
	}
	v.Note = fmt.Sprintf("final write after %v; %.1f acked writes/s in the calm window", in.FinalProbe.Round(time.Millisecond), in.Throughput)
	return v.done()
}

// FormatVerdicts renders verdicts for a human.
func FormatVerdicts(vs []Verdict) string {
	var b strings.Builder
	for _, v := range vs {
		mark := "PASS"
		if !v.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  [%s] %-44s checked %d", mark, v.Name, v.Checked)
		if v.Note != "" {
			fmt.Fprintf(&b, "; %s", v.Note)
		}
		b.WriteString("\n")
		for _, p := range v.Problems {
			fmt.Fprintf(&b, "         - %s\n", p)
		}
		if v.Total > len(v.Problems) {
			fmt.Fprintf(&b, "         ... and %d more\n", v.Total-len(v.Problems))
		}
	}
	return b.String()
}

// firstOr returns seqs[0], or or when seqs is empty.
func firstOr(seqs []uint64, or uint64) uint64 {
	if len(seqs) > 0 {
		return seqs[0]
	}
	return or
}
