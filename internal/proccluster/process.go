package proccluster

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
)

// ExitWait bounds how long Kill, Terminate and Stop wait for a signalled
// process to exit.
const ExitWait = 15 * time.Second

// ProcessOptions configures [StartProcess].
type ProcessOptions struct {
	Bin  string   // the executable
	Args []string // its arguments
	Env  []string // its whole environment (testbin.BaseEnv() for a clean one)
	Dir  string   // its working directory; empty: the caller's
	// LogPath is the file stdout and stderr are appended to, after a header
	// line naming the command.
	LogPath string
	// OnLine, when set, sees every output line (without its newline) after
	// it was written to the log, on the goroutine that copies the output.
	OnLine func(line string)
}

// Process is one started process whose output goes, line by line, to a log
// file. Its methods are safe for concurrent use.
type Process struct {
	cmd      *exec.Cmd
	pid      int
	started  time.Time
	done     chan struct{} // closed once Wait returned and the output is drained
	err      error         // Wait's result, valid once done is closed
	expected atomic.Bool   // the harness asked it to stop
}

// StartProcess starts o.Bin and the goroutines that copy its output to
// o.LogPath and reap it. It returns an error when the log file cannot be
// opened or the process cannot be started.
func StartProcess(o ProcessOptions) (*Process, error) {
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	fmt.Fprintf(logf, "=== %s harness: start %s %s\n", time.Now().Format(time.RFC3339Nano), o.Bin, strings.Join(o.Args, " "))
	cmd := exec.Command(o.Bin, o.Args...)
	cmd.Env = o.Env
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	pw.Close()
	p := &Process{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), done: make(chan struct{})}
	scanned := make(chan struct{})
	go func() {
		copyLines(pr, logf, o.OnLine)
		close(scanned)
	}()
	go func() {
		p.err = cmd.Wait()
		<-scanned
		pr.Close()
		fmt.Fprintf(logf, "=== %s harness: pid %d exited: %v\n", time.Now().Format(time.RFC3339Nano), p.pid, p.err)
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// copyLines copies r to w line by line, handing each line to onLine.
func copyLines(r io.Reader, w io.Writer, onLine func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		if onLine != nil {
			onLine(line)
		}
	}
	io.Copy(w, r) // a line longer than the buffer: the rest unscanned
}

// PID returns the process id.
func (p *Process) PID() int { return p.pid }

// Started returns when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Done returns a channel closed once the process has exited and its
// output is in the log.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Expected reports whether the process was told to stop by Signal (with
// SIGTERM, SIGINT or SIGKILL), Kill or Terminate: an exit without it is the
// process's own doing.
func (p *Process) Expected() bool { return p.expected.Load() }

// Err returns the error of os/exec's Wait once the process has exited (nil
// for exit code 0), nil before.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// ExitCode returns the exit code once the process has exited: -1 when a
// signal killed it, -2 when Wait failed otherwise or it still runs.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -2
	}
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

// Signal sends sig to the process (by its pid); SIGTERM, SIGINT and
// SIGKILL mark the exit as expected. It returns nil when the process has
// exited already, otherwise os.Process.Signal's error.
func (p *Process) Signal(sig syscall.Signal) error {
	if sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGKILL {
		p.expected.Store(true)
	}
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !p.Exited() {
		return fmt.Errorf("send %v to pid %d: %w", sig, p.pid, err)
	}
	return nil
}

// Wait waits up to d for the exit and returns the exit code (-1: killed by
// a signal). It returns an error when the process still runs after d.
func (p *Process) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.ExitCode(), nil
	case <-time.After(d):
		return -2, fmt.Errorf("pid %d did not exit within %v", p.pid, d)
	}
}

// Kill sends SIGKILL and waits up to [ExitWait] for the exit. It returns
// Signal's or Wait's error.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, err := p.Wait(ExitWait)
	return err
}

// Terminate sends SIGCONT (in case it is stopped) and SIGTERM, a graceful
// stop, and waits up to [ExitWait] for the exit, returning the exit code.
// A process that outlives the wait is killed and an error returned.
func (p *Process) Terminate() (int, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return -2, err
	}
	p.Signal(syscall.SIGCONT)
	code, err := p.Wait(ExitWait)
	if err != nil {
		p.Kill()
		return -1, fmt.Errorf("%w after SIGTERM; killed", err)
	}
	return code, nil
}
