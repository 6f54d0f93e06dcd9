// Package httpapi serves a node's HTTP endpoints: GET /health with the
// node's Raft role, the leader it knows and its indexes, and the probes
// GET /livez and GET /readyz (probes.go).
package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/internal/diskspace"
)

// Node is what /health reports on (a *cluster.Node).
type Node interface {
	Status() cluster.Status
}

// Health is the JSON body of GET /health. The leader_* fields are omitted
// while no leader is known. applied_index is the last entry applied to the
// projection; committed_index the last one committed to its file, which
// trails applied_index by at most the projection's commit delay (250 ms by
// default) while the node applies.
type Health struct {
	NodeID         string `json:"node_id"`
	Role           string `json:"role"`
	IsLeader       bool   `json:"is_leader"`
	LeaderID       string `json:"leader_id,omitempty"`
	LeaderRaftAddr string `json:"leader_raft_addr,omitempty"`
	LeaderGRPCAddr string `json:"leader_grpc_addr,omitempty"`
	Term           uint64 `json:"term"`
	CommitIndex    uint64 `json:"commit_index"`
	AppliedIndex   uint64 `json:"applied_index"`
	CommittedIndex uint64 `json:"committed_index"`
	LastLogIndex   uint64 `json:"last_log_index"`
	SnapshotIndex  uint64 `json:"snapshot_index"`
	// DiskProblem says why this node cannot write its data_dir (the write
	// probe failed, or free space is below min_free_bytes); omitted while
	// it can.
	DiskProblem string `json:"disk_problem,omitempty"`
	// WritesRefused says why the cluster refuses writes, as this node
	// sees it: every node whose data_dir is below its min_free_bytes;
	// omitted while writes are taken.
	WritesRefused string `json:"writes_refused,omitempty"`
}

// Options selects optional endpoints and what the probes consult.
type Options struct {
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Cluster, when set, serves the status page (GET /) and its data
	// (GET /cluster): see status.go.
	Cluster ClusterSource
	// Metrics, when set, serves GET /metrics (Prometheus text format).
	Metrics http.Handler
	// Live is what /livez asks about the node's loops; nil: only the
	// projection's commit loop is checked.
	Live Liveness
	// Projection is what /readyz asks whether the projection can serve.
	Projection Projection
	// Space is the node's free-space alarm (/readyz's disk and space
	// checks, /health's disk_problem and writes_refused); nil: none.
	Space *diskspace.Alarm
	// ReadyMaxLag is readyz_max_lag: the most entries a ready node's
	// applied index may trail the leader's commit index.
	ReadyMaxLag uint64
}

// Handler returns the HTTP handler of a node: GET (or HEAD) /health answers
// 200 with a Health body whenever the process serves; /livez and /readyz
// are the probes registerProbes describes; with opts.Metrics, GET /metrics
// serves it; with opts.Cluster, GET / is the status page; with opts.Pprof, /debug/pprof/
// serves Go's runtime profiles; other methods get 405 and other paths 404.
func Handler(n Node, opts Options) http.Handler {
	mux := http.NewServeMux()
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	registerStatus(mux, opts.Cluster)
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	registerProbes(mux, n, opts)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		st := n.Status()
		var diskProblem, refused string
		if opts.Space != nil {
			diskProblem = opts.Space.Local().Problem()
			refused = strings.Join(opts.Space.Short(), "; ")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Health{
			NodeID:         st.NodeID,
			Role:           st.Role,
			IsLeader:       st.IsLeader,
			LeaderID:       st.LeaderID,
			LeaderRaftAddr: st.LeaderRaftAddr,
			LeaderGRPCAddr: st.LeaderGRPCAddr,
			Term:           st.Term,
			CommitIndex:    st.CommitIndex,
			AppliedIndex:   st.AppliedIndex,
			CommittedIndex: st.CommittedIndex,
			LastLogIndex:   st.LastLogIndex,
			SnapshotIndex:  st.SnapshotIndex,
			DiskProblem:    diskProblem,
			WritesRefused:  refused,
		})
	})
	return mux
}
