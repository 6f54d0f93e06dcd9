package domain

import (
	"testing"
	"time"
)

func BenchmarkEncodeDecodeMessageSent(b *testing.B) {
	events := []Event{MessageSent{ChannelID: "general", AuthorID: "alice", Payload: make([]byte, 128), ClientMessageID: "msg-123456", CreatedAt: time.Now()}}
	for b.Loop() {
		data, err := EncodeEvents(events)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeEvents(data); err != nil {
			b.Fatal(err)
		}
	}
}
