package client

import (
	"testing"
	"time"
)

// TestRetryPauseStopsGrowingWhileSearching checks that the pause after an
// attempt that found no leader or no reachable node stays below
// BaseBackoff·2^searchSteps however many attempts came before, while other
// failures keep growing it up to MaxBackoff.
func TestRetryPauseStopsGrowingWhileSearching(t *testing.T) {
	c := &Client{cfg: Config{BaseBackoff: 25 * time.Millisecond, MaxBackoff: time.Second}}
	searchCeil := c.cfg.BaseBackoff << searchSteps
	var hiSearch, hiOther time.Duration
	for attempt := range 40 {
		for range 500 {
			d := c.retryPause(attempt, true)
			if d < 0 || d > searchCeil {
				t.Fatalf("searching, attempt %d: pause %v outside [0, %v]", attempt, d, searchCeil)
			}
			hiSearch = max(hiSearch, d)
			o := c.retryPause(attempt, false)
			if o < 0 || o > c.cfg.MaxBackoff {
				t.Fatalf("attempt %d: pause %v outside [0, %v]", attempt, o, c.cfg.MaxBackoff)
			}
			hiOther = max(hiOther, o)
		}
	}
	if hiSearch < searchCeil*9/10 {
		t.Errorf("searching pauses reached only %v of %v", hiSearch, searchCeil)
	}
	if hiOther < c.cfg.MaxBackoff*9/10 {
		t.Errorf("other pauses reached only %v, want close to MaxBackoff %v", hiOther, c.cfg.MaxBackoff)
	}
}
