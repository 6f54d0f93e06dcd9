package domain

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// lifecycleGolden are the log entries of the event kinds issue 12 added,
// one fixture file each. The files pin the log format: an entry written
// today must decode the same forever. Regenerate them only for a new kind:
//
//	RAFTOGRAM_WRITE_LIFECYCLE_GOLDEN=1 go test -run TestLifecycleEventsGolden ./domain
var lifecycleGolden = map[string]Event{
	"channel_updated_v1.bin": ChannelUpdated{ChannelID: "general", Name: "General chat",
		UpdatedAt: time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)},
	"channel_deleted_v1.bin": ChannelDeleted{ChannelID: "general",
		DeletedAt: time.Date(2026, 12, 1, 10, 0, 1, 0, time.UTC)},
	"message_redacted_v1.bin": MessageRedacted{ChannelID: "general", Sequence: 42, Reason: "erasure request",
		RedactedAt: time.Date(2026, 12, 1, 10, 0, 2, 5, time.UTC)},
}

func TestLifecycleEventsGolden(t *testing.T) {
	for name, ev := range lifecycleGolden {
		path := filepath.Join("testdata", "events", name)
		enc, err := EncodeEvents([]Event{ev})
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("RAFTOGRAM_WRITE_LIFECYCLE_GOLDEN") == "1" {
			if err := os.WriteFile(path, enc, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		golden, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEvents(golden)
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], ev) {
			t.Errorf("%s decodes to %+v, %v; want %+v", name, got, err, ev)
		}
		if !bytes.Equal(enc, golden) {
			t.Errorf("%s: encoding changed:\n got %x\nwant %x", name, enc, golden)
		}
	}
}
