package domain

import (
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on client input. They are part of the API contract and of the state
// machine: changing them changes which log entries are accepted, so they are
// constants, never configuration.
const (
	MaxChannelIDLen       = 128 // bytes of [A-Za-z0-9._:-]
	MaxChannelNameLen     = 256 // bytes of UTF-8
	MaxAuthorIDLen        = 128 // bytes of UTF-8
	MaxClientMessageIDLen = 128 // bytes of UTF-8
	MaxRedactionReasonLen = 512 // bytes of UTF-8
)

// ValidateChannelID returns an EINVALID *Error unless id is 1 to
// MaxChannelIDLen characters of [A-Za-z0-9._:-].
func ValidateChannelID(id string) error {
	if id == "" {
		return Errorf(EINVALID, "channel_id is required")
	}
	if len(id) > MaxChannelIDLen {
		return Errorf(EINVALID, "channel_id is %d bytes; the maximum is %d", len(id), MaxChannelIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !channelIDByte(id[i]) {
			return Errorf(EINVALID, "channel_id has a character outside [A-Za-z0-9._:-] at byte %d", i)
		}
	}
	return nil
}

func channelIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// ValidateChannelName returns an EINVALID *Error unless name is 1 to
// MaxChannelNameLen bytes of printable UTF-8.
func ValidateChannelName(name string) error {
	return validateText("name", name, MaxChannelNameLen, true)
}

// ValidateAuthorID returns an EINVALID *Error unless id is 1 to
// MaxAuthorIDLen bytes of printable UTF-8.
func ValidateAuthorID(id string) error {
	return validateText("author_id", id, MaxAuthorIDLen, true)
}

// ValidateClientMessageID returns an EINVALID *Error unless id is empty (no
// deduplication) or up to MaxClientMessageIDLen bytes of printable UTF-8.
func ValidateClientMessageID(id string) error {
	return validateText("client_message_id", id, MaxClientMessageIDLen, false)
}

// MinMaxAge is the shortest retention max_age: ages are enforced by events
// the leader proposes every few seconds, so less would promise too much.
const MinMaxAge = time.Second

// ValidateRetention returns an EINVALID *Error if r's MaxAge is negative or
// shorter than MinMaxAge (0, no limit, is fine), or a count or byte limit
// does not fit an int64 (the projection's column type).
func ValidateRetention(r Retention) error {
	switch {
	case r.MaxAge < 0 || r.MaxAge > 0 && r.MaxAge < MinMaxAge:
		return Errorf(EINVALID, "retention max_age is %v; it must be 0 (no limit) or at least %v", r.MaxAge, MinMaxAge)
	case r.MaxMessages > math.MaxInt64:
		return Errorf(EINVALID, "retention max_messages is %d; the maximum is %d", r.MaxMessages, int64(math.MaxInt64))
	case r.MaxBytes > math.MaxInt64:
		return Errorf(EINVALID, "retention max_bytes is %d; the maximum is %d", r.MaxBytes, int64(math.MaxInt64))
	}
	return nil
}

// ValidateRedactionReason returns an EINVALID *Error unless reason is empty
// or up to MaxRedactionReasonLen bytes of printable UTF-8.
func ValidateRedactionReason(reason string) error {
	return validateText("reason", reason, MaxRedactionReasonLen, false)
}

func validateText(field, s string, maxLen int, required bool) error {
	switch {
	case s == "" && required:
		return Errorf(EINVALID, "%s is required", field)
	case len(s) > maxLen:
		return Errorf(EINVALID, "%s is %d bytes; the maximum is %d", field, len(s), maxLen)
	case !utf8.ValidString(s):
		return Errorf(EINVALID, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return Errorf(EINVALID, "%s contains a control character", field)
		}
	}
	return nil
}

// Validate checks an event as the state machine must: with rules that are
// the same on every node. It returns an EINVALID *Error or nil. The payload
// size limit is configuration, so it is enforced by the API, not here.
func Validate(ev Event) error {
	switch ev := ev.(type) {
	case ChannelCreated:
		if ev.ChannelID != "" {
			if err := ValidateChannelID(ev.ChannelID); err != nil {
				return err
			}
		}
		if err := ValidateChannelName(ev.Name); err != nil {
			return err
		}
		return ValidateRetention(ev.Retention)
	case MessageSent:
		if err := ValidateChannelID(ev.ChannelID); err != nil {
			return err
		}
		if err := ValidateAuthorID(ev.AuthorID); err != nil {
			return err
		}
		return ValidateClientMessageID(ev.ClientMessageID)
	case ChannelUpdated:
		if err := ValidateChannelID(ev.ChannelID); err != nil {
			return err
		}
		if ev.Name != "" {
			if err := ValidateChannelName(ev.Name); err != nil {
				return err
			}
		}
		if ev.Retention != nil {
			return ValidateRetention(*ev.Retention)
		}
		return nil
	case ChannelDeleted:
		return ValidateChannelID(ev.ChannelID)
	case MessageRedacted:
		if err := ValidateChannelID(ev.ChannelID); err != nil {
			return err
		}
		if ev.Sequence == 0 {
			return Errorf(EINVALID, "sequence is required (sequences start at 1)")
		}
		return ValidateRedactionReason(ev.Reason)
	case MessagesExpired:
		if ev.DedupHorizon < 0 {
			return Errorf(EINVALID, "dedup horizon must not be negative")
		}
		return nil
	default:
		return Errorf(EINVALID, "unknown event type %T", ev)
	}
}
