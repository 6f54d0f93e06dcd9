package client_test

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
)

// Generated ids are 32 hex digits in UUIDv7's layout, never repeat, and an
// id made in a later millisecond sorts after every earlier one.
func TestNewClientMessageIDIsTimeOrdered(t *testing.T) {
	seen := map[string]bool{}
	var prev string
	for i := 0; i < 20000; i++ {
		id := client.NewClientMessageID()
		b, err := hex.DecodeString(id)
		if err != nil || len(b) != 16 || b[6]>>4 != 7 || b[8]>>6 != 2 {
			t.Fatalf("id %q: not a hex UUIDv7 (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("id %q generated twice", id)
		}
		seen[id] = true
		// Ids within one millisecond are random among themselves; across
		// milliseconds the clock prefix orders them.
		if prev != "" && id[:12] != prev[:12] && id < prev {
			t.Fatalf("id %q made after %q sorts before it", id, prev)
		}
		prev = id
	}
	first := client.NewClientMessageID()
	deadline := time.Now().Add(time.Second)
	for client.NewClientMessageID()[:12] == first[:12] {
		if time.Now().After(deadline) {
			t.Fatal("the clock prefix did not move in a second")
		}
	}
	if later := client.NewClientMessageID(); later <= first {
		t.Fatalf("id %q from a later millisecond sorts before %q", later, first)
	}
}
