// Package diskspace is the free-space alarm of a node's data directory,
// in the spirit of etcd's space quota: below a threshold of free bytes the
// cluster refuses new writes (ResourceExhausted) before any node's disk
// fills, and takes them again by itself once space returns.
//
// An [Alarm] holds its own data_dir's latest measurement (free bytes and a
// write probe; [Alarm.Measure], every interval) and the latest reports
// other nodes gave it (a node that takes writes polls its peers over the
// Peer service). [Alarm.CheckWrite] refuses a write while any fresh report
// is below the threshold.
package diskspace

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// DefaultInterval is how often an Alarm measures its data_dir and how often
// peers are polled.
const DefaultInterval = 500 * time.Millisecond

// DefaultProbeEvery is how many measurements share one write probe (5 s at
// the default interval); the first measurement probes.
const DefaultProbeEvery = 10

// staleAfter is how many intervals a peer's report counts for: a node that
// stopped answering is not known to be short of space any more.
const staleAfter = 4

// FreeFunc returns the bytes an unprivileged writer may still use on the
// file system holding dir.
type FreeFunc func(dir string) (uint64, error)

// Free is the real FreeFunc: statfs(2)'s available blocks times the block
// size. It returns the statfs error.
func Free(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Probe is the real write probe: it creates, writes and removes a small
// file in dir, and returns the first error.
func Probe(dir string) error {
	f, err := os.CreateTemp(dir, ".space-probe-*")
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	for _, e := range []error{werr, cerr, rerr} {
		if e != nil {
			return e
		}
	}
	return nil
}

// Report is one node's data_dir as last measured.
type Report struct {
	NodeID   string
	Free     uint64 // bytes available
	MinFree  uint64 // the node's min_free_bytes; 0: no alarm
	WriteErr string // the write probe or the free-space query failed: why
	At       time.Time
}

// Low reports whether free space is below the node's threshold.
func (r Report) Low() bool { return r.MinFree > 0 && r.Free < r.MinFree }

// Problem returns why the node cannot take writes (its write probe failed,
// or it is short of space), or "" when it can.
func (r Report) Problem() string {
	switch {
	case r.WriteErr != "":
		return fmt.Sprintf("%s cannot write its data_dir: %s", r.NodeID, r.WriteErr)
	case r.Low():
		return fmt.Sprintf("%s has %s free in its data_dir, below min_free_bytes %s", r.NodeID, Bytes(r.Free), Bytes(r.MinFree))
	}
	return ""
}

// Bytes formats n as a byte count with a binary unit (1.5 MiB).
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Options configures an Alarm.
type Options struct {
	NodeID   string
	Dir      string             // the data_dir
	MinFree  uint64             // min_free_bytes; 0 turns the alarm off (the write probe still runs)
	Free     FreeFunc           // Free when nil
	Probe    func(string) error // Probe when nil
	Now      func() time.Time   // time.Now when nil
	Interval time.Duration      // DefaultInterval when 0
	// ProbeEvery is how many measurements share one write probe;
	// DefaultProbeEvery when 0.
	ProbeEvery int
}

// Alarm is a node's view of the cluster's free space: its own data_dir and
// the reports of its peers. It is safe for concurrent use.
type Alarm struct {
	opts Options

	mu       sync.Mutex
	local    Report
	peers    map[string]Report
	measures int    // Measure calls so far
	probeErr string // the latest write probe's error
}

// New returns an Alarm that has measured its data_dir once.
func New(opts Options) *Alarm {
	if opts.Free == nil {
		opts.Free = Free
	}
	if opts.Probe == nil {
		opts.Probe = Probe
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = DefaultProbeEvery
	}
	a := &Alarm{opts: opts, peers: map[string]Report{}}
	a.Measure()
	return a
}

// Interval returns how often the alarm measures and peers are polled.
func (a *Alarm) Interval() time.Duration { return a.opts.Interval }

// Measure measures the data_dir now and returns the report it stores.
func (a *Alarm) Measure() Report {
	r := Report{NodeID: a.opts.NodeID, MinFree: a.opts.MinFree, At: a.opts.Now()}
	free, err := a.opts.Free(a.opts.Dir)
	if err != nil {
		r.WriteErr = err.Error()
	}
	r.Free = free
	// The probe writes a few bytes; it runs every ProbeEvery measurements
	// (its file system calls cost more than statfs), and not when the disk
	// is already known short (it would only take the last of it).
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && !r.Low() {
		if a.measures%a.opts.ProbeEvery == 0 {
			a.probeErr = ""
			if err := a.opts.Probe(a.opts.Dir); err != nil {
				a.probeErr = err.Error()
			}
		}
		r.WriteErr = a.probeErr
	}
	a.measures++
	a.local = r
	return r
}

// Local returns this node's latest report.
func (a *Alarm) Local() Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.local
}

// SetPeer stores a peer's report (replacing its previous one). A report
// counts for a few intervals after it was stored.
func (a *Alarm) SetPeer(r Report) {
	r.At = a.opts.Now()
	a.mu.Lock()
	a.peers[r.NodeID] = r
	a.mu.Unlock()
}

// Short returns why writes are refused now: one line per node (this node
// first, then peers by id) whose fresh report is below its min_free_bytes.
// It is empty when writes may proceed. A node whose write probe fails is
// not short (its own readiness says so); raft commits without it while a
// majority writes.
func (a *Alarm) Short() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	if a.local.Low() {
		out = append(out, a.local.Problem())
	}
	ids := make([]string, 0, len(a.peers))
	for id := range a.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	oldest := a.opts.Now().Add(-staleAfter * a.opts.Interval)
	for _, id := range ids {
		r := a.peers[id]
		if r.At.Before(oldest) {
			continue
		}
		if r.Low() {
			out = append(out, r.Problem())
		}
	}
	return out
}

// CheckWrite returns nil while writes may proceed, or an EEXHAUSTED
// *domain.Error naming every node that is short of space (see Short).
func (a *Alarm) CheckWrite() error {
	ps := a.Short()
	if len(ps) == 0 {
		return nil
	}
	msg := ps[0]
	for _, p := range ps[1:] {
		msg += "; " + p
	}
	return domain.Errorf(domain.EEXHAUSTED, "write refused: %s; writes resume by themselves once space is freed (min_free_bytes)", msg)
}
