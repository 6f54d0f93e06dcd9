package httpapi

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/status"
)

// The status page: GET / serves static/index.html, which loads
// static/status.js and static/status.css (all embedded in the binary) and
// refreshes itself from GET /cluster, the cluster's status as this node
// gathers it (Admin.GetClusterStatus).

// ClusterSource gathers the cluster's status (a *grpcapi.Admin).
type ClusterSource interface {
	GetClusterStatus(ctx context.Context, req *raftogramv1.GetClusterStatusRequest) (*raftogramv1.ClusterStatus, error)
}

//go:embed static
var staticFiles embed.FS

// clusterTimeout bounds one GET /cluster: the slowest peer's answer.
const clusterTimeout = 5 * time.Second

// ClusterView is the JSON body of GET /cluster.
type ClusterView struct {
	// GatheredBy is the node that asked the others (the one serving).
	GatheredBy string `json:"gathered_by"`
	// LeaderID is empty while no node knows a leader.
	LeaderID          string `json:"leader_id"`
	LeaderCommitIndex uint64 `json:"leader_commit_index"`
	// Nodes lists every configured node, in configuration order.
	Nodes []NodeView `json:"nodes"`
}

// NodeView is one node in ClusterView. When Reachable is false, Error says
// why and the figures are zero.
type NodeView struct {
	NodeID          string `json:"node_id"`
	GRPCAddr        string `json:"grpc_addr"`
	Reachable       bool   `json:"reachable"`
	Error           string `json:"error,omitempty"`
	Role            string `json:"role,omitempty"`
	IsLeader        bool   `json:"is_leader"`
	Term            uint64 `json:"term"`
	CommitIndex     uint64 `json:"commit_index"`
	AppliedIndex    uint64 `json:"applied_index"`
	LogAppliedIndex uint64 `json:"log_applied_index"`
	// Lag is the leader's commit index minus LogAppliedIndex.
	Lag             uint64  `json:"lag"`
	SnapshotIndex   uint64  `json:"snapshot_index"`
	LastContactMs   int64   `json:"last_contact_ms"`
	Version         string  `json:"version,omitempty"`
	WritesPerSecond float64 `json:"writes_per_second"`
	WriteP99Ms      float64 `json:"write_p99_ms"`
	Subscribers     uint64  `json:"subscribers"`
	LeaderChanges   uint64  `json:"leader_changes"`
}

// registerStatus adds the status page and GET /cluster to mux; nothing when
// src is nil.
func registerStatus(mux *http.ServeMux, src ClusterSource) {
	if src == nil {
		return
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
		defer cancel()
		cs, err := src.GetClusterStatus(ctx, &raftogramv1.GetClusterStatusRequest{})
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			http.Error(w, "cluster status: "+status.Convert(err).Message(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(clusterView(cs))
	})
}

// clusterView converts a gathered ClusterStatus to its JSON shape.
func clusterView(cs *raftogramv1.ClusterStatus) ClusterView {
	v := ClusterView{GatheredBy: cs.GetNodeId(), LeaderID: cs.GetLeaderId(), LeaderCommitIndex: cs.GetLeaderCommitIndex(), Nodes: []NodeView{}}
	for _, n := range cs.GetNodes() {
		nv := NodeView{NodeID: n.GetNodeId(), GRPCAddr: n.GetGrpcAddr(), Reachable: n.GetReachable(), Lag: n.GetLag()}
		if !n.GetReachable() {
			nv.Error = n.GetError()
		} else {
			st := n.GetStatus()
			nv.Role, nv.IsLeader, nv.Term = st.GetRole(), st.GetRole() == "leader", st.GetTerm()
			nv.CommitIndex, nv.AppliedIndex, nv.SnapshotIndex = st.GetCommitIndex(), st.GetAppliedIndex(), st.GetSnapshotIndex()
			nv.LogAppliedIndex = st.GetLogAppliedIndex()
			nv.LastContactMs, nv.Version = st.GetLastContactMs(), st.GetVersion()
			nv.WritesPerSecond, nv.WriteP99Ms = st.GetWritesPerSecond(), st.GetWriteP99Ms()
			nv.Subscribers, nv.LeaderChanges = st.GetSubscribers(), st.GetLeaderChanges()
		}
		v.Nodes = append(v.Nodes, nv)
	}
	return v
}
