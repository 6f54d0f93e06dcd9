package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// A clean stop makes raft log two error lines that are the stop working:
// "peer has newer term" after the hand-over and inbound RPCs cut by the
// transport's shutdown. They are debug while the node stops and stay
// errors otherwise, as do all other error lines.
func TestStopEffectsAreDebugOnlyWhileStopping(t *testing.T) {
	var buf bytes.Buffer
	n := &Node{}
	log := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), n.expectedRaftError)

	log.Error(handOverDeposedMsg, "peer", "node2")
	log.Error(inboundAbortedMsg, "error", raft.ErrTransportShutdown)
	n.stopping.Store(true)
	log.Error(handOverDeposedMsg, "peer", "node2")
	log.Error(inboundAbortedMsg, "error", raft.ErrTransportShutdown)
	log.Error(inboundAbortedMsg, "error", errors.New("msgpack decode error"))
	log.Error("failed to appendEntries to", "peer", "node2")
	// The stream layer's drain closing inbound connections.
	closed := &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}
	log.Error(inboundAbortedMsg, "error", closed)
	log.Error(inboundUnansweredMsg, "error", closed)
	log.Error(inboundUnansweredMsg, "error", errors.New("broken pipe"))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 9 {
		t.Fatalf("logged %d lines, want 9:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"level=ERROR", "level=ERROR", "level=DEBUG", "level=DEBUG", "level=ERROR", "level=ERROR",
		"level=DEBUG", "level=DEBUG", "level=ERROR"} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "component=raft") {
			t.Errorf("line %d = %q, want %s and component=raft", i, lines[i], want)
		}
	}
}
