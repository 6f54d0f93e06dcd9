package torture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raftogram/raftogram/internal/testbin"
)

// process is one started raftogram process. Its stdout and stderr go
// through a pipe that the harness scans line by line (for log triggers and
// evidence) and appends to the node's log file.
type process struct {
	cmd      *exec.Cmd
	pid      int
	started  time.Time
	done     chan struct{} // closed once Wait returned and the log is drained
	err      error         // Wait's result, valid once done is closed
	expected atomic.Bool   // the harness signalled it to stop
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit code once done is closed: -1 when killed by a
// signal.
func (p *process) exitCode() int {
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		return -2
	}
}

func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

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

// scanLog copies r to w line by line, firing watches, counting evidence
// and recording anomalies.
func (n *Node) scanLog(r io.Reader, w io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
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
	io.Copy(w, r)
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

// start launches the node's process. It is an error if it already runs.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("%s is already running (pid %d)", n.ID, n.proc.pid)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return err
	}
	fmt.Fprintf(logf, "=== %s harness: start %s -config %s -dev\n", time.Now().Format(time.RFC3339Nano), n.c.bin, n.CfgPath)
	cmd := exec.Command(n.c.bin, "-config", n.CfgPath, "-dev")
	cmd.Env = testbin.BaseEnv()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logf.Close()
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	pw.Close()
	p := &process{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), done: make(chan struct{})}
	n.proc = p
	n.paused = false
	n.starts++
	scanned := make(chan struct{})
	go func() {
		n.scanLog(pr, logf)
		close(scanned)
	}()
	go func() {
		p.err = cmd.Wait()
		<-scanned
		pr.Close()
		fmt.Fprintf(logf, "=== %s harness: pid %d exited: %v\n", time.Now().Format(time.RFC3339Nano), p.pid, p.err)
		logf.Close()
		close(p.done)
		if !p.expected.Load() {
			n.c.anomaly("%s (pid %d) exited on its own with code %d; last log lines:\n    %s",
				n.ID, p.pid, p.exitCode(), strings.Join(n.Tail(), "\n    "))
		}
	}()
	return nil
}

// current returns the node's latest process (nil if never started).
func (n *Node) current() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Running reports whether the node's process is alive (it may be paused).
func (n *Node) Running() bool {
	p := n.current()
	return p != nil && !p.exited()
}

// Paused reports whether the node was SIGSTOPped and not yet continued.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Kill sends SIGKILL and waits for the exit.
func (n *Node) Kill() error {
	p := n.current()
	if p == nil || p.exited() {
		return nil
	}
	p.expected.Store(true)
	if err := p.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL %s pid %d: %w", n.ID, p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(exitWait):
		return fmt.Errorf("%s pid %d did not exit within %v of SIGKILL", n.ID, p.pid, exitWait)
	}
}

// Terminate sends SIGTERM (a graceful stop: a leader hands leadership over
// first) and waits up to exitWait for the exit. It returns the exit code;
// if the process outlives the wait it is killed and an error returned.
func (n *Node) Terminate() (int, error) {
	p := n.current()
	if p == nil || p.exited() {
		return 0, nil
	}
	p.expected.Store(true)
	if n.Paused() {
		n.Continue()
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return -2, fmt.Errorf("SIGTERM %s pid %d: %w", n.ID, p.pid, err)
	}
	select {
	case <-p.done:
		return p.exitCode(), nil
	case <-time.After(exitWait):
		p.signal(syscall.SIGKILL)
		<-p.done
		return -1, fmt.Errorf("%s pid %d did not exit within %v of SIGTERM; killed", n.ID, p.pid, exitWait)
	}
}

// Pause sends SIGSTOP.
func (n *Node) Pause() error {
	p := n.current()
	if p == nil || p.exited() {
		return fmt.Errorf("%s is not running", n.ID)
	}
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	return p.signal(syscall.SIGSTOP)
}

// Continue sends SIGCONT to a paused node.
func (n *Node) Continue() error {
	p := n.current()
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	if p == nil || p.exited() {
		return nil
	}
	return p.signal(syscall.SIGCONT)
}

// Wipe removes the node's data directory. The node must be stopped.
func (n *Node) Wipe() error {
	if n.Running() {
		return fmt.Errorf("wipe %s: still running", n.ID)
	}
	return os.RemoveAll(n.DataDir)
}
