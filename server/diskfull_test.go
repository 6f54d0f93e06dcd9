package server

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/diskspace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// when the test ends (register it before anything that writes there, so it
// is unmounted last). It skips the test, saying why, where it cannot mount.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: mounting a tmpfs needs root; this test runs as uid", os.Geteuid())
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("SKIP: cannot mount a tmpfs on %s (%v: %s)", dir, err, strings.TrimSpace(string(out)))
	}
	t.Logf("mounted a %s tmpfs on %s", diskspace.Bytes(uint64(size)), dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// A follower whose data_dir fills: before its disk runs out the leader
// refuses writes with ResourceExhausted naming it, the follower reports not
// ready and /health says why (also after a restart), reads keep working,
// nobody hits ENOSPC, and once space returns writes resume by themselves
// with nothing acknowledged lost.
func TestFullDiskRefusesWritesBeforeENOSPCAndResumes(t *testing.T) {
	const (
		tmpfsSize = 64 << 20
		minFree   = 16 << 20
		margin    = 8 << 20 // free space above the threshold left by the ballast
		payload   = 32 << 10
	)
	mnt := mountTmpfs(t, tmpfsSize)
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.MinFreeBytes = minFree
		if cfg.NodeID == "node2" {
			cfg.DataDir = filepath.Join(mnt, "node2")
		}
	})
	const small = 1 // node2
	l := c.leader()
	if l == small {
		if err := c.servers[l].Node().TransferLeadershipTo("node1"); err != nil {
			t.Fatalf("move leadership off node2: %v", err)
		}
		l = c.leader()
	}
	mustCreate(t, c.client(l), "general")

	// Fill the tmpfs with a ballast file until margin above the threshold.
	free, err := diskspace.Free(mnt)
	if err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{1}, int(free-minFree-margin)), 0o600); err != nil {
		t.Fatalf("write ballast: %v", err)
	}
	free, _ = diskspace.Free(mnt)
	t.Logf("node2's data_dir has %s free, min_free_bytes %s", diskspace.Bytes(free), diskspace.Bytes(minFree))

	// Send until the leader refuses.
	var acked []string
	var refusal error
	body := bytes.Repeat([]byte{'x'}, payload)
	for i := 0; refusal == nil; i++ {
		if i > 2000 {
			t.Fatalf("2000 writes of %d bytes and no refusal; node2 has %s free", payload, diskspace.Bytes(free))
		}
		cmid := fmt.Sprintf("m%04d", i)
		switch err := sendOrRefused(t, c, cmid, body); status.Code(err) {
		case codes.OK:
			acked = append(acked, cmid)
		case codes.ResourceExhausted:
			refusal = err
		}
	}
	free, _ = diskspace.Free(mnt)
	t.Logf("refused after %d acknowledged writes, node2 has %s free: %v", len(acked), diskspace.Bytes(free), refusal)
	if msg := status.Convert(refusal).Message(); !strings.Contains(msg, "node2 has ") || !strings.Contains(msg, "below min_free_bytes 16.0 MiB") {
		t.Errorf("refusal %q does not name node2 and the threshold", msg)
	}
	// Every node still runs and keeps serving reads.
	for i, s := range c.servers {
		if st := s.Node().Status(); st.LeaderID == "" {
			t.Errorf("%s knows no leader during the alarm", c.cfgs[i].NodeID)
		}
	}
	if msgs := readAll(t, c.client(c.leader()), "general"); len(msgs) != len(acked) {
		t.Fatalf("read during the alarm: %d messages for %d acknowledged", len(msgs), len(acked))
	}
	waitHTTP(t, c.cfgs[small].HealthBindAddr, "/readyz", http.StatusServiceUnavailable, "[-]space failed: data_dir has ", "below min_free_bytes 16.0 MiB")
	waitHTTP(t, c.cfgs[small].HealthBindAddr, "/health", http.StatusOK, `"disk_problem": "node2 has `)
	l = c.leader()
	waitHTTP(t, c.cfgs[l].HealthBindAddr, "/health", http.StatusOK, `"writes_refused": "node2 has `)
	waitHTTP(t, c.cfgs[0].HealthBindAddr, "/readyz", http.StatusOK) // node1 has space (and may not lead)
	waitHTTP(t, c.cfgs[small].HealthBindAddr, "/livez", http.StatusOK)

	// Restarted while still short of space, node2 comes back not ready and
	// says why, rather than healthy while behind.
	// (A clean stop checkpoints and removes SQLite's WAL, which frees some
	// space: take it back with more ballast.)
	c.stop(small)
	if free, err := diskspace.Free(mnt); err == nil && free > minFree-(1<<20) {
		if err := os.WriteFile(filepath.Join(mnt, "ballast2"), bytes.Repeat([]byte{1}, int(free-(minFree-(1<<20)))), 0o600); err != nil {
			t.Fatalf("write more ballast: %v", err)
		}
	}
	c.start(small)
	waitHTTP(t, c.cfgs[small].HealthBindAddr, "/readyz?verbose", http.StatusServiceUnavailable, "[+]leader ok", "[-]space failed: data_dir has ")
	waitHTTP(t, c.cfgs[small].HealthBindAddr, "/health", http.StatusOK, `"disk_problem": "node2 has `)
	waitHTTP(t, c.cfgs[c.leader()].HealthBindAddr, "/health", http.StatusOK, `"writes_refused": "node2 has `)
	if err := sendOrRefused(t, c, "refused", body); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("write with node2 restarted and still short: %v, want ResourceExhausted", err)
	}

	// Space returns: writes resume by themselves.
	for _, f := range []string{ballast, filepath.Join(mnt, "ballast2")} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	waitFor(t, "a write after space returned", 20*time.Second, func() error {
		return sendOrRefused(t, c, "after", body)
	})
	acked = append(acked, "after")
	waitHTTP(t, c.cfgs[small].HealthBindAddr, "/readyz", http.StatusOK)
	c.converged()

	// Nothing acknowledged was lost, nothing refused was stored, and no node
	// met ENOSPC.
	msgs := readAll(t, c.client(c.leader()), "general")
	if len(msgs) != len(acked) {
		t.Fatalf("history holds %d messages, %d were acknowledged", len(msgs), len(acked))
	}
	for i, m := range msgs {
		if m.GetClientMessageId() != acked[i] || m.GetSequence() != uint64(i+1) {
			t.Fatalf("message %d is %s at sequence %d, want %s at %d", i, m.GetClientMessageId(), m.GetSequence(), acked[i], i+1)
		}
	}
	for i := range c.cfgs {
		if log := c.logs[i].String(); strings.Contains(log, "no space left on device") {
			t.Errorf("%s met ENOSPC", c.cfgs[i].NodeID)
		}
	}
}

// readAll reads a channel's whole history from c, page by page (a page is
// cut at about 3 MiB of payload).
func readAll(t *testing.T, c raftogramv1.MessengerClient, ch string) []*raftogramv1.Message {
	t.Helper()
	var out []*raftogramv1.Message
	for {
		var after uint64
		if len(out) > 0 {
			after = out[len(out)-1].GetSequence()
		}
		h, err := c.ReadHistory(ctxT(t), &raftogramv1.ReadHistoryRequest{ChannelId: ch, AfterSequence: after, Limit: 1000})
		if err != nil {
			t.Fatalf("read %s after %d: %v", ch, after, err)
		}
		out = append(out, h.GetMessages()...)
		if !h.GetHasMore() {
			return out
		}
	}
}

// sendOrRefused sends cmid through whichever node leads, retrying with the
// same client_message_id while leadership moves, and returns nil once it is
// acknowledged or the ResourceExhausted refusal; any other error fails the
// test.
func sendOrRefused(t *testing.T, c *testCluster, cmid string, payload []byte) error {
	t.Helper()
	var refused error
	waitFor(t, "send "+cmid, 20*time.Second, func() error {
		_, err := c.client(c.leader()).SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "alice", Payload: payload, ClientMessageId: cmid})
		switch code := status.Code(err); code {
		case codes.OK:
			return nil
		case codes.ResourceExhausted:
			refused = err
			return nil
		case codes.Unavailable, codes.FailedPrecondition:
			return err
		}
		t.Fatalf("send %s: %v", cmid, err)
		return nil
	})
	return refused
}
