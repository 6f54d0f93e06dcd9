package metrics

import (
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/projection"
)

// Raft is the raft side a node's gauges are read from (a *cluster.Node).
type Raft interface {
	Status() cluster.Status
	LastContact() time.Time
	LeaderChanges() uint64
	EntriesInFlight() int
}

// Projection is the projection a node's gauges are read from (a
// *projection.Store).
type Projection interface {
	Stats() projection.Stats
}

// Fanout is the fan-out hub a node's gauges are read from (a *fanout.Hub).
type Fanout interface {
	Stats() fanout.Stats
}

// Sources are the parts of a node read at each scrape. A nil part is not
// reported; an empty DataDir reports no free space.
type Sources struct {
	Raft       Raft
	Projection Projection
	Fanout     Fanout
	DataDir    string
}

// Watch has every later scrape read src: raft's term, indexes, role, last
// contact and leader changes, group-commit entries in flight, the
// projection's files, checkpoints and open transaction, the hub's
// subscribers, window bytes and projection reads, and data_dir's free
// space. Until it is called those metrics are absent.
func (m *Metrics) Watch(src Sources) { m.node.src.Store(&src) }

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_"+name, help, nil, nil)
}

var (
	descTerm          = desc("raft_term", "Current raft term of this node.")
	descCommitIndex   = desc("raft_commit_index", "Last raft log index this node knows committed.")
	descAppliedIndex  = desc("raft_applied_index", "Last raft log index applied to this node's projection.")
	descIsLeader      = desc("raft_is_leader", "1 while this node leads, 0 otherwise.")
	descLastContact   = desc("raft_last_contact_seconds", "Time since this follower last heard from the leader; 0 while it leads; absent while it never has.")
	descLeaderChanges = desc("raft_leader_changes_total", "Times this node learned of a leader (a new one, or one known again after a spell without), its first election included.")
	descInflight      = desc("cluster_entries_in_flight", "Group-commit entries this node has proposed to raft and not yet seen applied.")
	descOpenTxAge     = desc("projection_open_transaction_age_seconds", "Age of the projection's open (not yet committed) transaction; 0 when none is open.")
	descDBBytes       = desc("projection_db_bytes", "Size of the projection's SQLite database file.")
	descWALBytes      = desc("projection_wal_bytes", "Size of the projection's SQLite write-ahead log file.")
	descCheckpoints   = desc("projection_checkpoints_total", "WAL checkpoint passes run on the projection since the node started.")
	descSubscribers   = desc("fanout_subscribers", "Open Subscribe subscriptions on this node.")
	descWindowBytes   = desc("fanout_window_bytes", "Message payload bytes held in the fan-out windows.")
	descProjReads     = desc("fanout_projection_reads_total", "Times a subscriber stream fell back to reading the projection (SQLite) because the fan-out window did not reach back to its cursor (catch-up from history included).")
	descFreeBytes     = desc("data_dir_free_bytes", "Bytes available to this process on the file system holding data_dir.")
)

// nodeCollector reads a node's state at each scrape.
type nodeCollector struct{ src atomic.Pointer[Sources] }

// Describe sends every descriptor the collector may emit.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommitIndex, descAppliedIndex, descIsLeader, descLastContact,
		descLeaderChanges, descInflight, descOpenTxAge, descDBBytes, descWALBytes, descCheckpoints,
		descSubscribers, descWindowBytes, descProjReads, descFreeBytes} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	if r := src.Raft; r != nil {
		st := r.Status()
		gauge(descTerm, float64(st.Term))
		gauge(descCommitIndex, float64(st.CommitIndex))
		gauge(descAppliedIndex, float64(st.AppliedIndex))
		leader := 0.0
		if st.IsLeader {
			leader = 1
		}
		gauge(descIsLeader, leader)
		if last := r.LastContact(); st.IsLeader {
			gauge(descLastContact, 0)
		} else if !last.IsZero() {
			gauge(descLastContact, time.Since(last).Seconds())
		}
		counter(descLeaderChanges, float64(r.LeaderChanges()))
		gauge(descInflight, float64(r.EntriesInFlight()))
	}
	if p := src.Projection; p != nil {
		st := p.Stats()
		gauge(descOpenTxAge, st.OpenTxAge.Seconds())
		gauge(descDBBytes, float64(st.DBBytes))
		gauge(descWALBytes, float64(st.WALBytes))
		counter(descCheckpoints, float64(st.Checkpoints))
	}
	if f := src.Fanout; f != nil {
		st := f.Stats()
		gauge(descSubscribers, float64(st.Subscribers))
		gauge(descWindowBytes, float64(st.WindowBytes))
		counter(descProjReads, float64(st.ProjectionReads))
	}
	if src.DataDir != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(src.DataDir, &fs); err == nil {
			gauge(descFreeBytes, float64(fs.Bavail)*float64(fs.Bsize))
		}
	}
}
