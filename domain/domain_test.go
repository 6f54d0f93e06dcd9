package domain

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 456789, time.UTC)
	in := []Event{
		ChannelCreated{ChannelID: "general", Name: "General", CreatedAt: at},
		ChannelCreated{Name: "auto", CreatedAt: at},
		MessageSent{ChannelID: "general", AuthorID: "alice", Payload: []byte{0, 1, 2}, ClientMessageID: "msg-1", CreatedAt: at},
		MessageSent{ChannelID: "general", AuthorID: "bob", CreatedAt: at},
	}
	data, err := EncodeEvents(in)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != EncodingV1 {
		t.Fatalf("version byte %d", data[0])
	}
	out, err := DecodeEvents(data)
	if err != nil {
		t.Fatal(err)
	}
	// An empty payload decodes as nil; compare with that normalisation.
	want := append([]Event(nil), in...)
	want[3] = MessageSent{ChannelID: "general", AuthorID: "bob", CreatedAt: at}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, want)
	}
}

func TestDecodeRejectsUnknownOrCorruptEntries(t *testing.T) {
	valid, err := EncodeEvents([]Event{MessageSent{ChannelID: "a", AuthorID: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	withCRC := func(body []byte) []byte {
		out := []byte{EncodingV1, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(out[1:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
		return append(out, body...)
	}
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"empty":           {nil, ErrUnknownEncoding},
		"future version":  {append([]byte{2}, valid[1:]...), ErrUnknownEncoding},
		"truncated":       {valid[:len(valid)-2], ErrCorrupt},
		"header only":     {valid[:3], ErrUnknownEncoding},
		"garbage":         {[]byte{EncodingV1, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
		"unknown oneof":   {withCRC([]byte{0x0a, 0x02, 0x7a, 0x00}), ErrUnknownEncoding}, // Event field 15 (unknown kind)
		"bad protobuf":    {withCRC([]byte{0x0a, 0x09, 0x01}), nil},
		"not even protos": {[]byte("hello"), ErrUnknownEncoding},
	} {
		_, err := DecodeEvents(tc.data)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	// Every single-bit flip anywhere in an entry is detected.
	for i := range valid {
		for bit := range 8 {
			flipped := append([]byte(nil), valid...)
			flipped[i] ^= 1 << bit
			if _, err := DecodeEvents(flipped); err == nil {
				t.Fatalf("bit %d of byte %d flipped: decoded without error", bit, i)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 129)
	for _, tc := range []struct {
		ev   Event
		want string // "" means valid
	}{
		{ChannelCreated{ChannelID: "general", Name: "General"}, ""},
		{ChannelCreated{Name: "no id is fine"}, ""},
		{ChannelCreated{ChannelID: "a.b_c:d-E9", Name: "x"}, ""},
		{ChannelCreated{ChannelID: "has space", Name: "x"}, "channel_id has a character outside"},
		{ChannelCreated{ChannelID: "é", Name: "x"}, "channel_id has a character outside"},
		{ChannelCreated{ChannelID: long, Name: "x"}, "channel_id is 129 bytes"},
		{ChannelCreated{ChannelID: "a"}, "name is required"},
		{ChannelCreated{ChannelID: "a", Name: strings.Repeat("n", 257)}, "name is 257 bytes"},
		{ChannelCreated{ChannelID: "a", Name: "tab\there"}, "name contains a control character"},
		{MessageSent{ChannelID: "a", AuthorID: "ålice"}, ""},
		{MessageSent{AuthorID: "a"}, "channel_id is required"},
		{MessageSent{ChannelID: "a"}, "author_id is required"},
		{MessageSent{ChannelID: "a", AuthorID: long}, "author_id is 129 bytes"},
		{MessageSent{ChannelID: "a", AuthorID: "a\xff"}, "author_id is not valid UTF-8"},
		{MessageSent{ChannelID: "a", AuthorID: "a", ClientMessageID: long}, "client_message_id is 129 bytes"},
		{MessageSent{ChannelID: "a", AuthorID: "a", ClientMessageID: "x\ny"}, "client_message_id contains a control character"},
	} {
		err := Validate(tc.ev)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected %v", tc.ev, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || ErrorCode(err) != EINVALID):
			t.Errorf("%+v: got %v, want EINVALID containing %q", tc.ev, err, tc.want)
		}
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	if ErrorCode(nil) != "" || ErrorCode(errors.New("x")) != EINTERNAL || ErrorMessage(errors.New("secret")) != "internal error" {
		t.Fatal("non-domain errors must map to internal without leaking their text")
	}
	wrapped := errors.Join(errors.New("ctx"), Errorf(ENOTFOUND, "channel %q not found", "x"))
	if ErrorCode(wrapped) != ENOTFOUND || ErrorMessage(wrapped) != `channel "x" not found` {
		t.Fatalf("wrapped: %q %q", ErrorCode(wrapped), ErrorMessage(wrapped))
	}
}

// FuzzDecodeEvents: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to something that decodes to the same events.
func FuzzDecodeEvents(f *testing.F) {
	seed, _ := EncodeEvents([]Event{ChannelCreated{ChannelID: "c", Name: "n"}, MessageSent{ChannelID: "c", AuthorID: "a", Payload: []byte("p"), ClientMessageID: "k"}})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{EncodingV1})
	f.Add([]byte{2, 0})
	f.Add([]byte{EncodingV1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := DecodeEvents(data)
		if err != nil {
			return
		}
		again, err := EncodeEvents(events)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := DecodeEvents(again)
		if err != nil || !reflect.DeepEqual(back, events) {
			t.Fatalf("re-decode differs: %v", err)
		}
	})
}

// FuzzValidate: validation never panics and accepts only what the rules
// allow.
func FuzzValidate(f *testing.F) {
	f.Add("general", "General", "alice", "msg-1")
	f.Add("", "", "", "")
	f.Add("a b", "\x00", "\xff", strings.Repeat("k", 200))
	f.Fuzz(func(t *testing.T, channelID, name, author, cmid string) {
		if ValidateChannelID(channelID) == nil {
			if channelID == "" || len(channelID) > MaxChannelIDLen || strings.Trim(channelID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") != "" {
				t.Fatalf("accepted channel id %q", channelID)
			}
		}
		for _, s := range []struct {
			v   string
			err error
			max int
		}{{name, ValidateChannelName(name), MaxChannelNameLen}, {author, ValidateAuthorID(author), MaxAuthorIDLen}, {cmid, ValidateClientMessageID(cmid), MaxClientMessageIDLen}} {
			if s.err == nil && (len(s.v) > s.max || !utf8.ValidString(s.v)) {
				t.Fatalf("accepted %q", s.v)
			}
		}
	})
}
