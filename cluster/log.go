package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// hclogSink forwards hashicorp/raft's hclog output to slog, so a node writes
// one log stream in one format. An error line that reports the intended
// effect of something this node did on purpose (expected returns true for
// it) is logged at debug instead.
type hclogSink struct {
	log      *slog.Logger
	expected func(msg string, args []any) bool
}

func (s *hclogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	var l slog.Level
	switch {
	case level >= hclog.Error && s.expected != nil && s.expected(msg, args):
		l = slog.LevelDebug
	case level >= hclog.Error:
		l = slog.LevelError
	case level == hclog.Warn:
		l = slog.LevelWarn
	case level == hclog.Info:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, l) {
		return
	}
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	s.log.Log(ctx, l, msg, args...)
}

// newHCLogger returns the hclog.Logger raft writes to: its lines go to log
// with component=raft; expected (may be nil) picks the error lines to
// demote to debug.
func newHCLogger(log *slog.Logger, expected func(msg string, args []any) bool) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Debug})
	il.RegisterSink(&hclogSink{log: log.With("component", "raft"), expected: expected})
	return il
}

// Error lines raft writes during a clean stop, as the effect of the stop
// itself (see expectedRaftError).
const (
	// A leader's replication to a peer met a newer term: after the
	// leadership transfer Close starts, that is the transfer working.
	handOverDeposedMsg = "peer has newer term, stopping replication"
	// An inbound RPC arrived after raft stopped and was answered with
	// raft.ErrTransportShutdown when the transport closed under it, or an
	// idle inbound connection was closed by the stream layer's drain.
	inboundAbortedMsg = "failed to decode incoming command"
	// The drain closed an inbound connection while its handler was
	// answering an RPC that arrived as raft stopped.
	inboundUnansweredMsg = "failed to flush response"
)

// expectedRaftError reports whether an error line raft logs (msg with its
// key/value args) is the expected effect of this node stopping cleanly, so
// it is debug rather than an error: the hand-over's "newer term" line, and
// inbound RPCs cut by the transport's shutdown or the stream layer's drain.
// The same lines at any other time (another node deposed this one; a peer
// sent garbage) stay errors.
func (n *Node) expectedRaftError(msg string, args []any) bool {
	if !n.stopping.Load() {
		return false
	}
	switch msg {
	case handOverDeposedMsg:
		return true
	case inboundAbortedMsg, inboundUnansweredMsg:
		for i := 0; i+1 < len(args); i += 2 {
			// ErrTransportShutdown: the transport closed under it;
			// net.ErrClosed: drain closed its connection after raft
			// stopped.
			if err, ok := args[i+1].(error); ok && args[i] == "error" && (errors.Is(err, raft.ErrTransportShutdown) || errors.Is(err, net.ErrClosed)) {
				return true
			}
		}
	}
	return false
}
