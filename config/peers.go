package config

import (
	"fmt"
	"strings"
)

// Peers is the static member list.
//
// Besides the YAML list form (a sequence of {node_id, raft_addr, grpc_addr,
// peer_grpc_addr} mappings, the last optional) it has a one-line text form,
// used by RAFTOGRAM_CLUSTER_PEERS and also accepted when cluster.peers is a
// YAML string:
//
//	node_id=raft_addr/grpc_addr[/peer_grpc_addr][,node_id=...]
//
// for example
//
//	RAFTOGRAM_CLUSTER_PEERS=node1=127.0.0.1:7000/127.0.0.1:9000,node2=127.0.0.1:7001/127.0.0.1:9001,node3=127.0.0.1:7002/127.0.0.1:9002
//
// Whitespace around entries and around each of their parts is ignored.
// IPv6 addresses are written in brackets ("[::1]:7000"). The text form only
// fixes the syntax; ids and addresses are checked by [Config.Validate].
// Peers implements encoding.TextUnmarshaler.
type Peers []Peer

// String returns the one-line form, e.g.
// "node1=127.0.0.1:7000/127.0.0.1:9000,node2=127.0.0.1:7001/127.0.0.1:9001",
// or "" for an empty list. For well-formed peers
// (p2.UnmarshalText([]byte(p.String()))) yields p again.
func (p Peers) String() string {
	var b strings.Builder
	for i, peer := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(peer.NodeID)
		b.WriteByte('=')
		b.WriteString(peer.RaftAddr)
		b.WriteByte('/')
		b.WriteString(peer.GRPCAddr)
		if peer.PeerGRPCAddr != "" {
			b.WriteByte('/')
			b.WriteString(peer.PeerGRPCAddr)
		}
	}
	return b.String()
}

// UnmarshalText parses the one-line form described on [Peers] and replaces
// *p with the result. Empty (or all-blank) text yields an empty list, which
// Load treats as "this node alone".
//
// It returns an error naming the 1-based entry number and the entry's text
// when an entry is empty (e.g. "a,,b" or a trailing comma), has no "=", has an
// empty node_id, has no "/" or more than two, or has an empty raft_addr,
// grpc_addr or (when given) peer_grpc_addr. On error *p is left unchanged.
func (p *Peers) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	if text == "" {
		*p = nil
		return nil
	}
	const want = "want node_id=raft_addr/grpc_addr[/peer_grpc_addr]"
	items := strings.Split(text, ",")
	out := make(Peers, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		n := i + 1
		if item == "" {
			return fmt.Errorf("peer entry %d is empty (stray comma?); %s", n, want)
		}
		id, addrs, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("peer entry %d %q has no \"=\"; %s", n, item, want)
		}
		id = strings.TrimSpace(id)
		if id == "" {
			return fmt.Errorf("peer entry %d %q has an empty node_id; %s", n, item, want)
		}
		parts := strings.Split(addrs, "/")
		if len(parts) != 2 && len(parts) != 3 {
			return fmt.Errorf("peer entry %d %q has %d \"/\" separators, need 1 or 2; %s", n, item, len(parts)-1, want)
		}
		raft, grpc := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
		if raft == "" {
			return fmt.Errorf("peer entry %d %q has an empty raft_addr; %s", n, item, want)
		}
		if grpc == "" {
			return fmt.Errorf("peer entry %d %q has an empty grpc_addr; %s", n, item, want)
		}
		peer := Peer{NodeID: id, RaftAddr: raft, GRPCAddr: grpc}
		if len(parts) == 3 {
			if peer.PeerGRPCAddr = strings.TrimSpace(parts[2]); peer.PeerGRPCAddr == "" {
				return fmt.Errorf("peer entry %d %q has an empty peer_grpc_addr; %s", n, item, want)
			}
		}
		out = append(out, peer)
	}
	*p = out
	return nil
}
