package domain

// Golden fixtures of the Raft log entry encoding. The files under
// testdata/log/ are log entries exactly as a released build wrote them; every
// later build must decode them to the values below, forever. They are never
// rewritten: a new event kind, field or encoding version gets a NEW case in
// goldenEntries, and its file is made once with
//
//	go test ./domain -run TestGoldenLogEntries -update
//
// which writes the files that do not exist yet and leaves every existing one
// alone. Commit the new file with the change that introduces the kind.

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/raftogram/raftogram/api/proto/raftogram/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var update = flag.Bool("update", false, "write the golden files that do not exist yet (never rewrites one)")

// goldenTime is the leader's stamp in every fixture: nanosecond precision,
// so a change of time resolution shows.
var goldenTime = time.Date(2026, 12, 1, 9, 30, 15, 123456789, time.UTC)

// goldenEntries are the fixtures: file name (under testdata/log/, named
// v<encoding>_<what>.hex) → the events that entry decodes to. Append only.
var goldenEntries = []struct {
	file   string
	events []Event
}{
	{"v1_channel_created.hex", []Event{
		ChannelCreated{ChannelID: "general", Name: "General chat", CreatedAt: goldenTime},
	}},
	{"v1_channel_created_assigned_id.hex", []Event{
		ChannelCreated{Name: "auto", CreatedAt: goldenTime}, // the FSM assigns channel-<index>
	}},
	{"v1_message_sent.hex", []Event{
		MessageSent{ChannelID: "general", AuthorID: "alice", Payload: []byte("hello \x00\xff world"),
			ClientMessageID: "msg-0001", CreatedAt: goldenTime},
	}},
	{"v1_message_sent_minimal.hex", []Event{
		MessageSent{ChannelID: "general", AuthorID: "bob", CreatedAt: goldenTime}, // no payload, no client_message_id
	}},
	{"v1_batch_mixed.hex", []Event{
		ChannelCreated{ChannelID: "ops", Name: "Ops ☎", CreatedAt: goldenTime},
		ChannelCreated{Name: "second auto", CreatedAt: goldenTime.Add(time.Nanosecond)},
		MessageSent{ChannelID: "ops", AuthorID: "ålice", Payload: []byte{0x01, 0x02}, ClientMessageID: "k-1", CreatedAt: goldenTime.Add(time.Millisecond)},
		MessageSent{ChannelID: "ops", AuthorID: "ålice", Payload: []byte{0x01, 0x02}, ClientMessageID: "k-1", CreatedAt: goldenTime.Add(2 * time.Millisecond)}, // a retry: deduplicated by the FSM
		MessageSent{ChannelID: "missing", AuthorID: "carol", Payload: []byte("rejected by the FSM"), CreatedAt: goldenTime.Add(3 * time.Millisecond)},
	}},
	{"v1_channel_updated.hex", []Event{
		ChannelUpdated{ChannelID: "general", Name: "General (renamed)", UpdatedAt: goldenTime},
	}},
	{"v1_channel_deleted.hex", []Event{
		ChannelDeleted{ChannelID: "general", DeletedAt: goldenTime},
	}},
	{"v1_message_redacted.hex", []Event{
		MessageRedacted{ChannelID: "general", Sequence: 7, Reason: "spam", RedactedAt: goldenTime},
	}},
	{"v1_pre_epoch_time.hex", []Event{
		MessageSent{ChannelID: "c", AuthorID: "a", Payload: []byte("p"), CreatedAt: time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)}, // negative Unix nanoseconds
	}},
	{"v1_channel_created_retention.hex", []Event{
		ChannelCreated{ChannelID: "recent", Name: "Recent", CreatedAt: goldenTime,
			Retention: Retention{MaxMessages: 1000, MaxAge: 72 * time.Hour, MaxBytes: 1 << 30}},
	}},
	{"v1_channel_updated_retention.hex", []Event{
		ChannelUpdated{ChannelID: "recent", UpdatedAt: goldenTime, Retention: &Retention{MaxMessages: 10}},
		ChannelUpdated{ChannelID: "recent", UpdatedAt: goldenTime, Retention: &Retention{}}, // keep everything again
	}},
	{"v1_messages_expired.hex", []Event{
		MessagesExpired{Now: goldenTime, DedupHorizon: 24 * time.Hour},
		MessagesExpired{Now: goldenTime.Add(time.Second)}, // dedup rows kept forever
	}},
}

// knownEncodings are the version bytes this build decodes; each needs at
// least one fixture.
var knownEncodings = []byte{EncodingV1}

func goldenPath(file string) string { return filepath.Join("testdata", "log", file) }

func readGolden(t *testing.T, file string) []byte {
	t.Helper()
	text, err := os.ReadFile(goldenPath(file))
	if err != nil {
		t.Fatalf("golden %s: %v (a new case? run: go test ./domain -run TestGoldenLogEntries -update)", file, err)
	}
	data, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
	if err != nil {
		t.Fatalf("golden %s: not hex: %v", file, err)
	}
	return data
}

// writeGolden writes data as hex, 32 bytes a line, unless file exists.
func writeGolden(t *testing.T, file string, data []byte) {
	t.Helper()
	path := goldenPath(file)
	if _, err := os.Stat(path); err == nil {
		return // released fixtures are never rewritten
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var b strings.Builder
	for chunk := range slices.Chunk(data, 32) {
		b.WriteString(hex.EncodeToString(chunk))
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote new golden file %s: commit it", path)
}

// TestGoldenLogEntries decodes every committed log entry fixture and checks
// the values, and that this build's encoding of the same events still
// decodes to them.
func TestGoldenLogEntries(t *testing.T) {
	if *update {
		for _, g := range goldenEntries {
			data, err := EncodeEvents(g.events)
			if err != nil {
				t.Fatalf("%s: %v", g.file, err)
			}
			writeGolden(t, g.file, data)
		}
	}
	for _, g := range goldenEntries {
		t.Run(g.file, func(t *testing.T) {
			data := readGolden(t, g.file)
			if prefix := fmt.Sprintf("v%d_", data[0]); !strings.HasPrefix(g.file, prefix) {
				t.Fatalf("file holds version byte %d, so its name must start with %q", data[0], prefix)
			}
			got, err := DecodeEvents(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, g.events) {
				t.Fatalf("decoded\n got %#v\nwant %#v", got, g.events)
			}
			fresh, err := EncodeEvents(g.events)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeEvents(fresh)
			if err != nil || !reflect.DeepEqual(again, g.events) {
				t.Fatalf("this build's encoding does not round-trip: %v", err)
			}
		})
	}
}

// TestGoldenLogEntriesCoverEveryKind fails when an event kind, a field of
// one, or an encoding version is added without a fixture that exercises
// it: every oneof case of eventsv1.Event and every field of its message
// must be set in at least one fixture, and every known version byte must
// start one.
func TestGoldenLogEntriesCoverEveryKind(t *testing.T) {
	versions := map[byte]bool{}
	set := map[protoreflect.FullName]bool{} // oneof cases and message fields seen set
	for _, g := range goldenEntries {
		data := readGolden(t, g.file)
		versions[data[0]] = true
		var batch eventsv1.Batch
		if err := proto.Unmarshal(data[headerLen:], &batch); err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		for _, ev := range batch.GetEvents() {
			ev.ProtoReflect().Range(func(kind protoreflect.FieldDescriptor, v protoreflect.Value) bool {
				set[kind.FullName()] = true
				v.Message().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
					set[fd.FullName()] = true
					return true
				})
				return true
			})
		}
	}
	for _, v := range knownEncodings {
		if !versions[v] {
			t.Errorf("encoding version %d has no golden fixture", v)
		}
	}
	kinds := (&eventsv1.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	if kinds.Len() < 2 {
		t.Fatalf("eventsv1.Event.kind has %d cases; the descriptor walk is broken", kinds.Len())
	}
	for i := range kinds.Len() {
		kind := kinds.Get(i)
		if !set[kind.FullName()] {
			t.Errorf("event kind %s has no golden fixture: add a case to goldenEntries and run with -update", kind.Name())
			continue
		}
		fields := kind.Message().Fields()
		for j := range fields.Len() {
			if fd := fields.Get(j); !set[fd.FullName()] {
				t.Errorf("field %s is set in no golden fixture: add a case to goldenEntries and run with -update", fd.FullName())
			}
		}
	}
	// The Event messages' other fields (outside the oneof) would be new
	// wire too.
	if all := (&eventsv1.Event{}).ProtoReflect().Descriptor().Fields().Len(); all != kinds.Len() {
		t.Errorf("eventsv1.Event has %d fields outside its kind oneof: give them golden fixtures and extend this test", all-kinds.Len())
	}
}
