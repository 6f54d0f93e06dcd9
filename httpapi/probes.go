package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/internal/diskspace"
)

// Liveness reports whether a node's own loops tick (a *cluster.Node).
type Liveness interface {
	Liveness(ctx context.Context) []cluster.Check
}

// Projection reports whether the node's projection can serve (a
// *projection.Store).
type Projection interface {
	Err() error
}

// DefaultReadyMaxLag is readyz_max_lag's default: how many log entries a
// ready node's applied index may trail the leader's commit index.
const DefaultReadyMaxLag = 100

// Commit stall bounds: how long the projection's committed index may stay
// below an applied index it has seen before /readyz, and then /livez, fail.
// The projection commits within 250 ms of applying.
const (
	readyCommitStall = 5 * time.Second
	liveCommitStall  = 30 * time.Second
)

// probes serves GET /livez and GET /readyz (see registerProbes).
type probes struct {
	node   Node
	opts   Options
	commit commitWatch
}

// registerProbes adds /livez and /readyz to mux.
//
// /livez answers whether to restart the process: its loops tick
// (Options.Live: the watchdog, raft's main loop, the state machine; see
// cluster.Node.Liveness) and the projection's commit loop commits ("commit":
// committed_index reaches, within 30 s, an applied_index it was seen below).
// It does not depend on other nodes.
//
// /readyz answers whether to route traffic here:
//
//   - leader: a leader is known;
//   - applied: applied_index trails the leader's commit index (as this node
//     knows it) by at most Options.ReadyMaxLag entries;
//   - projection: the projection is usable and commits (committed_index
//     reaches, within 5 s, an applied_index it was seen below);
//   - disk: the write probe of data_dir succeeds;
//   - space: data_dir has at least min_free_bytes free.
//
// Both answer 200 "ok" when every check passes and 503 otherwise, listing
// each failed check with its reason as "[-]name failed: reason"; with
// ?verbose every check is listed, passing ones as "[+]name ok" (etcd's
// format). ?exclude=name (repeatable) skips a check.
func registerProbes(mux *http.ServeMux, n Node, opts Options) {
	p := &probes{node: n, opts: opts}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		writeChecks(w, r, "livez", p.live(r.Context()))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeChecks(w, r, "readyz", p.ready())
	})
}

func (p *probes) live(ctx context.Context) []cluster.Check {
	var checks []cluster.Check
	if p.opts.Live != nil {
		checks = p.opts.Live.Liveness(ctx)
	}
	st := p.node.Status()
	return append(checks, cluster.Check{Name: "commit", Err: p.commit.stalled(st, liveCommitStall)})
}

func (p *probes) ready() []cluster.Check {
	st := p.node.Status()
	checks := []cluster.Check{{Name: "leader"}, {Name: "applied"}, {Name: "projection"}, {Name: "disk"}, {Name: "space"}}
	if st.LeaderID == "" {
		checks[0].Err = fmt.Errorf("%s is %s in term %d and knows no leader", st.NodeID, st.Role, st.Term)
	}
	maxLag := p.opts.ReadyMaxLag
	if st.CommitIndex > st.AppliedIndex && st.CommitIndex-st.AppliedIndex > maxLag {
		checks[1].Err = fmt.Errorf("applied index %d is %d entries behind the leader's commit index %d (readyz_max_lag %d)",
			st.AppliedIndex, st.CommitIndex-st.AppliedIndex, st.CommitIndex, maxLag)
	}
	if p.opts.Projection != nil {
		checks[2].Err = p.opts.Projection.Err()
	}
	if checks[2].Err == nil {
		checks[2].Err = p.commit.stalled(st, readyCommitStall)
	}
	if p.opts.Space != nil {
		r := p.opts.Space.Local()
		if r.WriteErr != "" {
			checks[3].Err = fmt.Errorf("data_dir is not writable: %s", r.WriteErr)
		}
		if r.Low() {
			checks[4].Err = fmt.Errorf("data_dir has %s free, below min_free_bytes %s", diskspace.Bytes(r.Free), diskspace.Bytes(r.MinFree))
		}
	}
	return checks
}

// writeChecks answers a probe: 200 "ok" or 503 with the failed checks, in
// the text format registerProbes describes.
func writeChecks(w http.ResponseWriter, r *http.Request, name string, checks []cluster.Check) {
	q := r.URL.Query()
	_, verbose := q["verbose"]
	excluded := map[string]bool{}
	for _, e := range q["exclude"] {
		excluded[e] = true
	}
	var b strings.Builder
	failed := false
	for _, c := range checks {
		switch {
		case excluded[c.Name]:
			if verbose {
				fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.Name)
			}
		case c.Err != nil:
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %s\n", c.Name, oneLine(c.Err.Error()))
		case verbose:
			fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(&b, "%s check failed\n", name)
	} else {
		b.WriteString("ok\n")
	}
	_, _ = w.Write([]byte(b.String()))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// commitWatch tells a projection that commits (late at most by its commit
// delay) from one that stopped committing: it remembers the first applied
// index it saw uncommitted and when, and reports a stall once that index
// stays uncommitted for longer than a bound. It needs no goroutine: each
// probe advances it.
type commitWatch struct {
	mu     sync.Mutex
	target uint64    // an applied index seen above committed_index; 0: none
	since  time.Time // when target was seen
}

// stalled returns an error when the projection's committed index has not
// reached an applied index seen more than limit ago.
func (c *commitWatch) stalled(st cluster.Status, limit time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.target != 0 && st.CommittedIndex >= c.target {
		c.target = 0
	}
	if c.target == 0 {
		if st.CommittedIndex < st.AppliedIndex {
			c.target, c.since = st.AppliedIndex, now
		}
		return nil
	}
	if waited := now.Sub(c.since); waited > limit {
		return fmt.Errorf("the projection has not committed index %d, applied %s ago (committed_index %d, applied_index %d)",
			c.target, waited.Round(time.Millisecond), st.CommittedIndex, st.AppliedIndex)
	}
	return nil
}
