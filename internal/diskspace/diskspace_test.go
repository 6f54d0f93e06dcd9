package diskspace

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// fakeDisk is an injected free-space function and write probe.
type fakeDisk struct {
	free     atomic.Uint64
	probeErr atomic.Pointer[error]
}

func (d *fakeDisk) Free(string) (uint64, error) { return d.free.Load(), nil }
func (d *fakeDisk) Probe(string) error {
	if p := d.probeErr.Load(); p != nil {
		return *p
	}
	return nil
}

func newFake(t *testing.T, free, min uint64) (*Alarm, *fakeDisk, *time.Time) {
	t.Helper()
	d := &fakeDisk{}
	d.free.Store(free)
	now := time.Unix(1000, 0)
	a := New(Options{NodeID: "node1", Dir: t.TempDir(), MinFree: min, Free: d.Free, Probe: d.Probe,
		Now: func() time.Time { return now }, Interval: time.Second, ProbeEvery: 1})
	return a, d, &now
}

func TestLocalShortageRefusesWritesUntilSpaceReturns(t *testing.T) {
	a, d, _ := newFake(t, 100<<20, 64<<20)
	if err := a.CheckWrite(); err != nil {
		t.Fatalf("100 MiB free, 64 MiB threshold: %v", err)
	}
	d.free.Store(10 << 20)
	if err := a.CheckWrite(); err != nil {
		t.Fatalf("refused before the next measurement: %v", err)
	}
	r := a.Measure()
	if !r.Low() || r.Free != 10<<20 {
		t.Fatalf("report %+v, want low with 10 MiB", r)
	}
	err := a.CheckWrite()
	if domain.ErrorCode(err) != domain.EEXHAUSTED {
		t.Fatalf("CheckWrite = %v, want an EEXHAUSTED error", err)
	}
	for _, want := range []string{"node1 has 10.0 MiB free", "below min_free_bytes 64.0 MiB", "resume by themselves"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	d.free.Store(65 << 20)
	a.Measure()
	if err := a.CheckWrite(); err != nil {
		t.Fatalf("space returned: %v", err)
	}
}

func TestPeerShortageCountsWhileFresh(t *testing.T) {
	a, _, now := newFake(t, 1<<30, 64<<20)
	a.SetPeer(Report{NodeID: "node3", Free: 1 << 20, MinFree: 64 << 20})
	a.SetPeer(Report{NodeID: "node2", Free: 2 << 20, MinFree: 64 << 20})
	err := a.CheckWrite()
	if domain.ErrorCode(err) != domain.EEXHAUSTED || !strings.Contains(err.Error(), "node2 has 2.0 MiB free in its data_dir, below min_free_bytes 64.0 MiB; node3 has 1.0 MiB") {
		t.Fatalf("CheckWrite = %v, want both peers named, by id", err)
	}
	a.SetPeer(Report{NodeID: "node2", Free: 1 << 30, MinFree: 64 << 20})
	if got := a.Short(); len(got) != 1 || !strings.HasPrefix(got[0], "node3 ") {
		t.Fatalf("Short = %q, want node3 alone", got)
	}
	// node3 stops answering: its report goes stale and stops counting.
	*now = now.Add(staleAfter*time.Second + time.Millisecond)
	if err := a.CheckWrite(); err != nil {
		t.Fatalf("a stale report still refuses writes: %v", err)
	}
}

func TestThresholdZeroTurnsTheAlarmOff(t *testing.T) {
	a, _, _ := newFake(t, 0, 0)
	if err := a.CheckWrite(); err != nil || a.Local().Low() {
		t.Fatalf("min_free_bytes 0: CheckWrite = %v, low = %v", err, a.Local().Low())
	}
}

func TestFailedProbeIsAProblemButNotAShortage(t *testing.T) {
	a, d, _ := newFake(t, 1<<30, 64<<20)
	perr := errors.New("read-only file system")
	d.probeErr.Store(&perr)
	r := a.Measure()
	if got := r.Problem(); got != "node1 cannot write its data_dir: read-only file system" {
		t.Fatalf("Problem = %q", got)
	}
	if err := a.CheckWrite(); err != nil {
		t.Fatalf("a failed probe refuses cluster writes: %v", err)
	}
}

func TestRealFreeAndProbe(t *testing.T) {
	dir := t.TempDir()
	free, err := Free(dir)
	if err != nil || free == 0 {
		t.Fatalf("Free(%s) = %d, %v", dir, free, err)
	}
	if err := Probe(dir); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, err := Free(dir + "/missing"); err == nil {
		t.Fatal("Free of a missing directory succeeded")
	}
	if err := Probe(dir + "/missing"); err == nil {
		t.Fatal("Probe of a missing directory succeeded")
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536 << 10: "1.5 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWriteProbeRunsEveryProbeEveryMeasurements(t *testing.T) {
	probes := 0
	a := New(Options{NodeID: "node1", Dir: t.TempDir(), ProbeEvery: 3,
		Free:  func(string) (uint64, error) { return 1 << 30, nil },
		Probe: func(string) error { probes++; return errors.New("read-only file system") }})
	for range 5 {
		if r := a.Measure(); r.WriteErr != "read-only file system" {
			t.Fatalf("report %+v lost the last probe's error", r)
		}
	}
	if probes != 2 { // measurements 0 (in New), 3
		t.Fatalf("%d probes in 6 measurements with ProbeEvery 3, want 2", probes)
	}
}
