package projection

import (
	"context"
	"testing"
)

// DigestAt pairs the digest with the applied index of the state it covers,
// including entries still in the open transaction, and matches Digest.
func TestDigestAtReportsTheAppliedIndexItCovers(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	d0, idx0, err := s.DigestAt(ctx)
	if err != nil || idx0 != 0 {
		t.Fatalf("empty store: %q at %d, %v", d0, idx0, err)
	}
	mustApply(t, s, create(1, "a", "A"), send(2, "a", "m1"))
	d2, idx2, err := s.DigestAt(ctx)
	if err != nil || idx2 != 2 || d2 == d0 || d2 != mustDigest(t, s) {
		t.Fatalf("after two entries: %q at %d (%v); empty was %q", d2, idx2, err, d0)
	}
	// A rejected entry advances the index but not the content.
	mustApply(t, s, send(3, "missing", "x"))
	d3, idx3, err := s.DigestAt(ctx)
	if err != nil || idx3 != 3 || d3 != d2 {
		t.Fatalf("after a rejection: %q at %d (%v), want %q at 3", d3, idx3, err, d2)
	}
}
