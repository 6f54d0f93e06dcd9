// Package datadirfixture locates the frozen data directories under the
// repository's testdata/ (a node's data_dir as a released build left it) and
// decodes the history each one must serve. Tests of every later build open
// copies of them: server (open, replay, serve), projection (restore the
// snapshot, crash mid-migration).
package datadirfixture

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// V1 is the name of the data directory written by the first release (log
// encoding v1, schema migration 0001), under testdata/.
const V1 = "datadir-v1"

// NodeID is the id of the one node whose data_dir each fixture holds, in
// the subdirectory of that name; ExpectedFile is the history beside it.
const (
	NodeID       = "node1"
	ExpectedFile = "expected.json"
)

// Expected is what a fixture's node holds: the indexes the generator saw
// and every channel with its whole history, in order.
type Expected struct {
	// SnapshotIndex is the newest snapshot's index; LastIndex the last log
	// index. Entries after SnapshotIndex are only in the log.
	SnapshotIndex uint64    `json:"snapshot_index"`
	LastIndex     uint64    `json:"last_index"`
	Channels      []Channel `json:"channels"`
}

// Channel is one channel of a fixture, with its messages in sequence order;
// Index is the Raft log index that created it.
type Channel struct {
	ID                string    `json:"channel_id"`
	Name              string    `json:"name"`
	CreatedAtUnixNano int64     `json:"created_at_unix_nano"`
	Index             uint64    `json:"index"`
	Messages          []Message `json:"messages"`
}

// Message is one message of a fixture; Index is the Raft log index that
// wrote it.
type Message struct {
	Sequence          uint64 `json:"sequence"`
	AuthorID          string `json:"author_id"`
	Payload           []byte `json:"payload"`
	ClientMessageID   string `json:"client_message_id"`
	CreatedAtUnixNano int64  `json:"created_at_unix_nano"`
	Index             uint64 `json:"index"`
}

// Dir returns the absolute path of the fixture named name (V1) under the
// repository's testdata/, whether or not it exists.
func Dir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", name)
}

// Load returns the expected history of fixture name. It returns an error
// if the file is missing or malformed.
func Load(name string) (Expected, error) {
	var e Expected
	data, err := os.ReadFile(filepath.Join(Dir(name), ExpectedFile))
	if err != nil {
		return e, fmt.Errorf("datadir fixture %s: %w", name, err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("datadir fixture %s: %s: %w", name, ExpectedFile, err)
	}
	if len(e.Channels) == 0 || e.SnapshotIndex == 0 || e.LastIndex <= e.SnapshotIndex {
		return e, fmt.Errorf("datadir fixture %s: %s needs channels and log entries after a snapshot", name, ExpectedFile)
	}
	return e, nil
}

// CopyNode copies the node's data_dir of fixture name to dst (created; it
// must not exist) and returns dst, so a test never writes into testdata.
func CopyNode(name, dst string) (string, error) {
	src := filepath.Join(Dir(name), NodeID)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("copy datadir fixture %s: %w", name, err)
	}
	return dst, nil
}

// SnapshotState returns the path of the newest snapshot's state.bin (a
// SQLite projection file) in fixture name's node directory.
func SnapshotState(name string) (string, error) {
	metas, err := filepath.Glob(filepath.Join(Dir(name), NodeID, "snapshots", "*", "meta.json"))
	if err != nil {
		return "", fmt.Errorf("datadir fixture %s: %w", name, err)
	}
	best, bestIndex := "", uint64(0)
	for _, m := range metas {
		data, err := os.ReadFile(m)
		if err != nil {
			return "", fmt.Errorf("datadir fixture %s: %w", name, err)
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(data, &meta); err != nil {
			return "", fmt.Errorf("datadir fixture %s: %s: %w", name, m, err)
		}
		if meta.Index >= bestIndex {
			best, bestIndex = filepath.Join(filepath.Dir(m), "state.bin"), meta.Index
		}
	}
	if best == "" {
		return "", fmt.Errorf("datadir fixture %s: no snapshot", name)
	}
	return best, nil
}
