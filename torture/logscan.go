package torture

import (
	"strings"
)

// logWatch is a one-shot trigger on a node's log: fired when a line holds
// every one of its substrings.
type logWatch struct {
	subs []string
	ch   chan string
}

// logTail keeps the last lines of a node's log for reports.
type logTail struct {
	lines []string
	next  int
}

func (t *logTail) add(s string) {
	const keep = 40
	if len(t.lines) < keep {
		t.lines = append(t.lines, s)
		return
	}
	t.lines[t.next] = s
	t.next = (t.next + 1) % keep
}

func (t *logTail) get() []string {
	out := append([]string(nil), t.lines[t.next:]...)
	return append(out, t.lines[:t.next]...)
}

// evidencePatterns are log substrings counted per node for the summary.
var evidencePatterns = map[string]string{
	"snapshots taken":       `msg="snapshot complete up to"`,
	"snapshots sent":        `msg="installing snapshot on"`,
	"snapshots installed":   `msg="Installed remote snapshot"`,
	"projection restores":   `msg="projection restored from snapshot"`,
	"leadership transfers":  `msg="leadership transferred before shutdown"`,
	"failed transfers":      `msg="leadership transfer before shutdown failed"`,
	"snapshot failures":     `msg="snapshot failed"`,
	"failed snapshot sends": `msg="failed to send snapshot to"`,
}

// anomalyPatterns are log substrings that are product anomalies whenever
// they appear.
var anomalyPatterns = []string{
	"panic:",
	"fatal error:",
	"state machine cannot continue",
	`msg="failed to restore snapshot"`,
	"DATA RACE",
}

// onLine sees one line of the node's output (the harness has written it to
// the log already): it fires watches, counts evidence and records
// anomalies.
func (n *Node) onLine(line string) {
	n.mu.Lock()
	n.tail.add(line)
	for name, pat := range evidencePatterns {
		if strings.Contains(line, pat) {
			n.evidence[name]++
		}
	}
	kept := n.watches[:0]
	for _, wt := range n.watches {
		hit := true
		for _, s := range wt.subs {
			if !strings.Contains(line, s) {
				hit = false
				break
			}
		}
		if hit {
			wt.ch <- line
			close(wt.ch)
		} else {
			kept = append(kept, wt)
		}
	}
	n.watches = kept
	n.mu.Unlock()
	for _, pat := range anomalyPatterns {
		if strings.Contains(line, pat) {
			n.c.anomaly("%s log: %s", n.ID, line)
			break
		}
	}
}

// Watch returns a channel that receives the next log line of n holding
// every one of subs. Cancel it with the returned function.
func (n *Node) Watch(subs ...string) (<-chan string, func()) {
	wt := &logWatch{subs: subs, ch: make(chan string, 1)}
	n.mu.Lock()
	n.watches = append(n.watches, wt)
	n.mu.Unlock()
	return wt.ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for i, w := range n.watches {
			if w == wt {
				n.watches = append(n.watches[:i], n.watches[i+1:]...)
				return
			}
		}
	}
}

// Evidence returns the node's log evidence counters.
func (n *Node) Evidence() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int, len(n.evidence))
	for k, v := range n.evidence {
		out[k] = v
	}
	return out
}

// Tail returns the last lines of the node's log.
func (n *Node) Tail() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tail.get()
}
