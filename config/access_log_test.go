package config

import (
	"math"
	"strings"
	"testing"
)

func TestAccessLogSampleRate(t *testing.T) {
	t.Parallel()
	if got := Default().AccessLogSampleRate; got != 0 {
		t.Fatalf("default access_log_sample_rate = %v, want 0 (off)", got)
	}
	cfg, err := Load("", false, map[string]string{"RAFTOGRAM_ACCESS_LOG_SAMPLE_RATE": "0.25"})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if cfg.AccessLogSampleRate != 0.25 {
		t.Fatalf("access_log_sample_rate from env = %v, want 0.25", cfg.AccessLogSampleRate)
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
		c := Default()
		c.Cluster.Peers = Peers{c.selfFromBindAddrs()}
		c.AccessLogSampleRate = bad
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "access_log_sample_rate must be between 0 and 1") {
			t.Errorf("Validate(access_log_sample_rate=%v) = %v, want the range error", bad, err)
		}
	}
}
