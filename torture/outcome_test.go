package torture

import (
	"context"
	"fmt"
	"testing"

	"github.com/raftogram/raftogram/client"
)

// A call is Failed only when its error proves nothing was written; one its
// context ended is Unknown even if an earlier attempt was refused, because
// the attempt cut by the deadline may have committed.
func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want Outcome
	}{
		{"success", nil, OK},
		{"rejected", fmt.Errorf("Send on n1: %w", client.ErrInvalidArgument), Failed},
		{"not leader", fmt.Errorf("Send on n1: %w", client.ErrNotLeader), Failed},
		{"unavailable", fmt.Errorf("Send on n1: %w", client.ErrUnavailable), Unknown},
		{"deadline after a refusal", fmt.Errorf("Send: %w (last attempt: %w)", context.DeadlineExceeded, client.ErrNotLeader), Unknown},
		{"canceled", fmt.Errorf("Send: %w", context.Canceled), Unknown},
	} {
		if got := outcomeOf(tc.err); got != tc.want {
			t.Errorf("%s: outcomeOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
