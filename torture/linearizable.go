package torture

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The model of one channel for porcupine: the state is the channel's
// length N. A write that returned sequence s is legal only as the
// (N+1)-th message. A ReadHistory(after=a) that returned m messages
// observes a prefix: with m>0 and no more, N must be a+m; with has_more,
// N > a+m; with m=0, N <= a.

type linInput struct {
	Write bool
	CMID  string
	After uint64
}

type linOutput struct {
	Seq     uint64 // write: the sequence it got
	N       int    // read: messages returned
	HasMore bool
	Pending bool // write whose outcome the client never learned
}

var channelModel = porcupine.Model{
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		n := state.(uint64)
		in, out := input.(linInput), output.(linOutput)
		if in.Write {
			if out.Seq == n+1 {
				return true, n + 1
			}
			return false, n
		}
		if out.N == 0 {
			return !out.HasMore && n <= in.After, n
		}
		last := in.After + uint64(out.N)
		if out.HasMore {
			return n > last, n
		}
		return n == last, n
	},
	Equal: func(a, b any) bool { return a.(uint64) == b.(uint64) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if in.Write {
			if out.Pending {
				return fmt.Sprintf("send(%s) -> #%d (outcome unknown to client; from final log)", in.CMID, out.Seq)
			}
			return fmt.Sprintf("send(%s) -> #%d", in.CMID, out.Seq)
		}
		if out.N == 0 {
			return fmt.Sprintf("read(after %d) -> none", in.After)
		}
		return fmt.Sprintf("read(after %d) -> #%d..#%d%s", in.After, in.After+1, in.After+uint64(out.N), ifs(out.HasMore, " +more"))
	},
	DescribeState: func(state any) string { return fmt.Sprintf("len=%d", state.(uint64)) },
}

// levelName is a read's level as reports spell it.
func levelName(level string) string {
	if level == "" {
		return LevelLeader
	}
	return level
}

// channelHistory builds the porcupine history of channel ch: its writes
// and its reads at a linearizable level (leader, linearizable on any
// node); reads at AtLeast and Local may lag by design and are checked by
// CheckReads and CheckReadYourWrites instead. Writes whose
// outcome the client never learned are resolved from the final log: if
// their id is there, they are writes of that sequence that may take effect
// any time after their invoke; if not, they never happened.
func channelHistory(ops []Op, f *Final, ch string) []porcupine.Operation {
	ix := indexLog(f.Log)
	clients := map[int]int{}
	cid := func(c int) int {
		if id, ok := clients[c]; ok {
			return id
		}
		clients[c] = len(clients)
		return clients[c]
	}
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	var hist []porcupine.Operation
	for _, op := range ops {
		if op.Channel != ch {
			continue
		}
		switch {
		case op.Kind == KindSend && op.Outcome == OK:
			hist = append(hist, porcupine.Operation{ClientId: cid(op.Client), Input: linInput{Write: true, CMID: op.CMID},
				Call: op.Invoke, Return: op.Return, Output: linOutput{Seq: op.Seq}})
		case op.Kind == KindSend:
			places := ix.byCMID[op.CMID]
			if len(places) == 0 || places[0].channel != ch {
				continue
			}
			hist = append(hist, porcupine.Operation{ClientId: cid(op.Client), Input: linInput{Write: true, CMID: op.CMID},
				Call: op.Invoke, Return: end + 1, Output: linOutput{Seq: places[0].seq, Pending: true}})
		case op.Kind == KindRead && op.Outcome == OK && linearizableLevel(op.Level):
			hist = append(hist, porcupine.Operation{ClientId: cid(op.Client), Input: linInput{After: op.After},
				Call: op.Invoke, Return: op.Return, Output: linOutput{N: len(op.Msgs), HasMore: op.HasMore},
				Metadata: fmt.Sprintf("client %d on %s at %s, op %d", op.Client, op.Node, levelName(op.Level), op.ID)})
		}
	}
	return hist
}

// tightenPending bounds the return of writes resolved from the final log:
// sequences are assigned in apply order, so write #s had taken effect by
// the time any write of a higher sequence returned, or any read that
// observed a length of at least s returned.
func tightenPending(hist []porcupine.Operation) {
	// An observation says: by ret, every sequence <= n had been applied.
	type obs struct {
		n   uint64
		ret int64
	}
	var seen []obs
	for _, op := range hist {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		switch {
		case in.Write && !out.Pending && out.Seq > 0:
			seen = append(seen, obs{out.Seq - 1, op.Return}) // #Seq itself may be another claim of s
		case !in.Write && out.N > 0:
			seen = append(seen, obs{in.After + uint64(out.N), op.Return})
		}
	}
	// suffix[i] = the earliest return among observations i and above.
	sort.Slice(seen, func(i, j int) bool { return seen[i].n < seen[j].n })
	suffix := make([]int64, len(seen)+1)
	suffix[len(seen)] = math.MaxInt64
	for i := len(seen) - 1; i >= 0; i-- {
		suffix[i] = min(suffix[i+1], seen[i].ret)
	}
	for i := range hist {
		in, out := hist[i].Input.(linInput), hist[i].Output.(linOutput)
		if !in.Write || !out.Pending {
			continue
		}
		k := sort.Search(len(seen), func(j int) bool { return seen[j].n >= out.Seq })
		bound := suffix[k]
		if bound < hist[i].Return && bound >= hist[i].Call {
			hist[i].Return = bound
		}
	}
}

// chunk is a piece of a channel's history separated in real time from the
// rest: every operation before it returned before any of its operations
// was invoked. The model's state at its start is base, the writes before
// it.
type chunk struct {
	ops  []porcupine.Operation
	base uint64
}

// splitQuiescent cuts hist where nothing is in flight. For this model the
// cut is exact: operations after a cut must be linearized after every
// operation before it, and the state there is the number of writes before
// it, whatever the order.
func splitQuiescent(hist []porcupine.Operation) []chunk {
	sort.SliceStable(hist, func(i, j int) bool { return hist[i].Call < hist[j].Call })
	var out []chunk
	var cur []porcupine.Operation
	var base, writes uint64
	maxRet := int64(math.MinInt64)
	for _, op := range hist {
		if len(cur) > 0 && op.Call > maxRet {
			out = append(out, chunk{ops: cur, base: base})
			base += writes
			cur, writes = nil, 0
		}
		cur = append(cur, op)
		if op.Input.(linInput).Write {
			writes++
		}
		maxRet = max(maxRet, op.Return)
	}
	if len(cur) > 0 {
		out = append(out, chunk{ops: cur, base: base})
	}
	return out
}

func modelFrom(base uint64) porcupine.Model {
	m := channelModel
	m.Init = func() any { return base }
	return m
}

// CheckLinear is checker 5: per channel, the history of writes and
// ReadHistory calls is linearizable against the channel model. Each
// channel's history is split at quiescent points and the pieces checked in
// turn. On a violation it writes porcupine's visualization of the failing
// piece to outDir (when set). A piece whose check times out is reported as
// inconclusive, not failed.
func CheckLinear(ops []Op, f *Final, channels []string, timeout time.Duration, outDir string) Verdict {
	v := Verdict{Name: CheckLinearizable}
	if f.LogErr != "" {
		v.fail("final log unreadable, cannot resolve unknown writes: %s", f.LogErr)
		return v.done()
	}
	var inconclusive []string
	chs := append([]string(nil), channels...)
	sort.Strings(chs)
	pieces, largest := 0, 0
	for _, ch := range chs {
		hist := channelHistory(ops, f, ch)
		v.Checked += len(hist)
		tightenPending(hist)
		for _, c := range splitQuiescent(hist) {
			pieces++
			largest = max(largest, len(c.ops))
			model := modelFrom(c.base)
			res := porcupine.CheckOperationsTimeout(model, c.ops, timeout)
			if res == porcupine.Unknown {
				inconclusive = append(inconclusive, fmt.Sprintf("%s@%s", ch, fmtTime(c.ops[0].Call)))
				continue
			}
			if res != porcupine.Illegal {
				continue
			}
			msg := fmt.Sprintf("channel %s: the %d operations from %s to %s (length %d before them) are not linearizable",
				ch, len(c.ops), fmtTime(c.ops[0].Call), fmtTime(lastReturn(c.ops)), c.base)
			if outDir != "" {
				_, info := porcupine.CheckOperationsVerbose(model, c.ops, timeout)
				path := filepath.Join(outDir, fmt.Sprintf("linearizability-%s-%d.html", ch, c.ops[0].Call/int64(time.Millisecond)))
				if err := os.MkdirAll(outDir, 0o755); err == nil {
					if err := porcupine.VisualizePath(model, info, path); err == nil {
						msg += "; visualization: " + path
					} else {
						msg += "; visualization failed: " + err.Error()
					}
				}
			}
			msg += "; " + explainStaleReads(c.ops, c.base)
			v.fail("%s", msg)
			break // later pieces start from a state this one never reached
		}
	}
	v.Note = fmt.Sprintf("%d quiescent pieces, largest %d ops", pieces, largest)
	if len(inconclusive) > 0 {
		v.Note += fmt.Sprintf("; inconclusive within %v: %s", timeout, strings.Join(inconclusive, ","))
	}
	return v.done()
}

func lastReturn(ops []porcupine.Operation) int64 {
	var r int64
	for _, op := range ops {
		if op.Return != math.MaxInt64 {
			r = max(r, op.Return)
		}
	}
	return r
}

// explainStaleReads names the first read that returned fewer messages than
// a write acknowledged before the read began, the usual shape of a
// violation (a stale read).
func explainStaleReads(hist []porcupine.Operation, base uint64) string {
	type ack struct {
		ret int64
		seq uint64
	}
	var acks []ack
	for _, op := range hist {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		if in.Write && !out.Pending {
			acks = append(acks, ack{op.Return, out.Seq})
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].ret < acks[j].ret })
	reads := append([]porcupine.Operation(nil), hist...)
	sort.Slice(reads, func(i, j int) bool { return reads[i].Call < reads[j].Call })
	best := base
	k := 0
	for _, op := range reads {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		for k < len(acks) && acks[k].ret < op.Call {
			best = max(best, acks[k].seq)
			k++
		}
		if in.Write || out.HasMore {
			continue
		}
		seen := in.After + uint64(out.N)
		if out.N == 0 {
			seen = min(seen, in.After)
		}
		if (out.N > 0 && seen < best) || (out.N == 0 && in.After < best) {
			return fmt.Sprintf("e.g. stale read (%v) invoked at %s saw length %d after #%d had been acknowledged",
				op.Metadata, fmtTime(op.Call), seen, best)
		}
	}
	return "no simple stale read found; see the visualization"
}
