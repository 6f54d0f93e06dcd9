package projection

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkApplyClientIDs applies batches of 64 sends spread over 64
// channels, committing as the server does (CommitDelay 100 ms), with the
// client message ids a client generates: random hex (every insert lands on
// a random page of the dedup index) against time-ordered hex (a millisecond
// clock first, so inserts land at the end). ns/op is per message; run long
// enough that the dedup index outgrows a few pages:
//
//	go test -run '^$' -bench ApplyClientIDs -benchtime 300000x ./projection
func BenchmarkApplyClientIDs(b *testing.B) {
	random := func(uint64) string {
		var id [16]byte
		rand.Read(id[:])
		return hex.EncodeToString(id[:])
	}
	ordered := func(i uint64) string {
		var id [16]byte
		binary.BigEndian.PutUint64(id[:8], uint64(time.Unix(0, int64(i)*int64(time.Millisecond)/8).UnixMilli())<<16)
		rand.Read(id[6:])
		return hex.EncodeToString(id[:])
	}
	for _, gen := range []struct {
		name string
		id   func(uint64) string
	}{{"random", random}, {"time-ordered", ordered}} {
		b.Run(gen.name, func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), FileName), Options{CommitDelay: 100 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			applySpread(b, s, gen.id)
		})
	}
}
