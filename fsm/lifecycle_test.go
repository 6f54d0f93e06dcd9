package fsm

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// A redaction empties the live window (no subscriber reads the old payload
// from it again) and a message redacted in the batch that sent it is
// published blank; a deleted channel's messages are not published.
func TestRedactionAndDeletionReachTheWindow(t *testing.T) {
	f, _, hub := mustFSM(t)
	subA, subB := hub.Subscribe("a"), hub.Subscribe("b")
	defer subA.Close()
	defer subB.Close()
	now := time.Unix(1700000000, 0)
	send := func(ch string) domain.Event {
		return domain.MessageSent{ChannelID: ch, AuthorID: "u", Payload: []byte("secret"), CreatedAt: now}
	}
	f.ApplyBatch([]*raft.Log{
		cmd(t, 1, domain.ChannelCreated{ChannelID: "a", Name: "A", CreatedAt: now}, domain.ChannelCreated{ChannelID: "b", Name: "B", CreatedAt: now}),
		cmd(t, 2, send("a"), send("a"), send("b")),
	})
	if got, ok := subA.Since(0, 10, 1<<20); !ok || len(got) != 2 {
		t.Fatalf("window of a before: %+v %v", got, ok)
	}
	<-subA.C
	<-subB.C
	f.ApplyBatch([]*raft.Log{
		cmd(t, 3, domain.MessageRedacted{ChannelID: "a", Sequence: 1}, send("a"), domain.MessageRedacted{ChannelID: "a", Sequence: 3}),
		cmd(t, 4, send("b"), domain.ChannelDeleted{ChannelID: "b"}),
	})
	// a: the old window is gone (it held message 1's payload); message 3
	// is published blank.
	if _, ok := subA.Since(0, 10, 1<<20); ok {
		t.Fatal("window of a still answers from before the redaction")
	}
	got, ok := subA.Since(2, 10, 1<<20)
	if !ok || len(got) != 1 || got[0].Sequence != 3 || !got[0].Redacted || len(got[0].Payload) != 0 {
		t.Fatalf("a after redaction: %+v %v", got, ok)
	}
	// b: rung, and nothing in its window: subscribers read the projection,
	// which says the channel is gone.
	select {
	case <-subB.C:
	default:
		t.Fatal("subscriber of the deleted channel was not rung")
	}
	if got, ok := subB.Since(0, 10, 1<<20); ok {
		t.Fatalf("window of deleted b: %+v", got)
	}
}
