package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// openChildEnv names a raft.db a child test process opens the way Open
// does, without checkLogFile (TestBoltStillDiesOnTruncatedFile).
const openChildEnv = "RAFTOGRAM_TEST_BOLT_OPEN"

func TestMain(m *testing.M) {
	if path := os.Getenv(openChildEnv); path != "" {
		store, err := raftboltdb.New(raftboltdb.Options{Path: path,
			BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err == nil {
			store.Close()
		}
		fmt.Printf("bbolt returned: %v\n", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeLog writes a raft.db of 2000 entries at path and returns its bytes.
func writeLog(t *testing.T, path string) []byte {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 2000; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: make([]byte, 200)})
	}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	store.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestBoltStillDiesOnTruncatedFile is why checkLogFile exists: bbolt
// (v1.3.5: SIGBUS; v1.4.3: an assertion panic while it rebuilds the
// freelist) kills the process opening a truncated file rather than
// returning an error. When a bbolt upgrade makes this test fail, bbolt
// answers with an error itself: re-check, and checkLogFile may go.
func TestBoltStillDiesOnTruncatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), LogFileName)
	data := writeLog(t, path)
	if err := os.WriteFile(path, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), openChildEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("bbolt opened a truncated raft.db without dying (%v): %s; "+
			"re-check whether cluster/boltcheck.go is still needed", err, firstLine(out))
	}
	if !strings.Contains(string(out), "panic") && !strings.Contains(exit.String(), "bus error") {
		t.Fatalf("child died unexpectedly (%v): %s", exit, firstLine(out))
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

func TestCheckLogFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LogFileName)
	if err := checkLogFile(path); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	data := writeLog(t, path)
	if err := checkLogFile(path); err != nil {
		t.Fatalf("healthy file: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data[:len(data)/3], "is truncated"},
		{"both metas damaged", append(make([]byte, 2*4096), data[2*4096:]...), "no valid bbolt meta page"},
	} {
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := checkLogFile(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
