package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// CompactLog leaves no entry at or below the snapshot in the log, the
// redacted message's entry included, and restores trailing_logs.
func TestCompactLogDropsEveryCoveredEntry(t *testing.T) {
	n, _ := openSingleNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := n.Apply(ctx, []domain.Event{domain.ChannelCreated{ChannelID: "c", Name: "c", CreatedAt: time.Now()}})
	if err != nil || rs[0].Err != nil {
		t.Fatal(err, rs)
	}
	rs, err = n.Apply(ctx, []domain.Event{domain.MessageSent{ChannelID: "c", AuthorID: "a", Payload: []byte("secret"), CreatedAt: time.Now()}})
	if err != nil || rs[0].Err != nil {
		t.Fatal(err, rs)
	}
	sentAt := rs[0].Index
	if rs, err = n.Apply(ctx, []domain.Event{domain.MessageRedacted{ChannelID: "c", Sequence: 1, RedactedAt: time.Now()}}); err != nil || !rs[0].Redacted {
		t.Fatal(err, rs)
	}
	var l raft.Log
	if err := n.logs.GetLog(sentAt, &l); err != nil {
		t.Fatalf("before compaction the entry is in the log: %v", err)
	}
	index, err := n.CompactLog(ctx)
	if err != nil || index < rs[0].Index {
		t.Fatalf("CompactLog: %d %v (redaction at %d)", index, err, rs[0].Index)
	}
	if err := n.logs.GetLog(sentAt, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry %d after compaction: %v", sentAt, err)
	}
	if first, err := n.logs.FirstIndex(); err != nil || (first != 0 && first <= index) {
		t.Fatalf("first index %d after a snapshot at %d: %v", first, index, err)
	}
	if got := n.raft.ReloadableConfig().TrailingLogs; got != n.cfg.TrailingLogs {
		t.Fatalf("trailing_logs %d after compaction, want %d", got, n.cfg.TrailingLogs)
	}
}
