package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// Log stores (config raft.log_store). Each keeps raft's log and stable
// store in its own place in the data directory: boltdb in the file
// LogFileName, wal in the directory WALDirName (raft-wal's segment files
// and its wal-meta.db). A data directory holds one of them; Open refuses
// one that holds the other's files.
const (
	LogStoreBoltDB = "boltdb"
	LogStoreWAL    = "wal"
	WALDirName     = "raft-wal"
)

// LogStores lists the valid values of raft.log_store; the first is the
// default.
var LogStores = []string{LogStoreBoltDB, LogStoreWAL}

// logStore is raft's log and stable store in one, as both stores are.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// ErrOtherLogStore is wrapped by Open's error when the data directory holds
// the raft log of the store not configured.
var ErrOtherLogStore = errors.New("the data directory holds another log store's raft log")

// checkNoOtherLogStore returns an error wrapping ErrOtherLogStore when dir
// holds the files of a log store other than kind, naming them and the
// setting that would open them, so a node never starts an empty log
// beside an existing one.
func checkNoOtherLogStore(dir, kind string) error {
	bolt := filepath.Join(dir, LogFileName)
	walDir := filepath.Join(dir, WALDirName)
	var found, other string
	switch kind {
	case LogStoreWAL:
		if exists(bolt) {
			found, other = bolt, LogStoreBoltDB
		}
	default:
		if exists(walDir) {
			found, other = walDir, LogStoreWAL
		}
	}
	if found == "" {
		return nil
	}
	return fmt.Errorf("%w: raft.log_store is %q but %s is a %s raft log; set raft.log_store: %s (RAFTOGRAM_RAFT_LOG_STORE=%s) to use it, or move it away to start this node with an empty log",
		ErrOtherLogStore, kind, found, other, other, other)
}

// walStore is raft-wal with its meta database closed on Close: raft-wal
// v0.4.0's Close leaves wal-meta.db open and locked, so the same process
// could not open the directory again (a node restarted in-process).
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

// GetLog returns the entry at index, or raft.ErrLogNotFound when index is
// outside FirstIndex..LastIndex. raft-wal v0.4.0 still serves entries a
// head truncation (log compaction) removed while they sit in its open
// segment; raft's contract, and CompactLog's, is that they are gone.
func (w walStore) GetLog(index uint64, out *raft.Log) error {
	first, err := w.WAL.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	return w.WAL.GetLog(index, out)
}

// Close closes the log, then its meta database; it returns the first error.
func (w walStore) Close() error {
	return errors.Join(w.WAL.Close(), w.meta.Close())
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// openLogStore opens the log store kind ("" is boltdb) in dir, after
// checking that dir holds no other store's log. It returns the store, or an
// error naming the file or directory that could not be opened.
func openLogStore(dir, kind string, hlog hclog.Logger) (logStore, error) {
	if err := checkNoOtherLogStore(dir, kind); err != nil {
		return nil, err
	}
	switch kind {
	case "", LogStoreBoltDB:
		path := filepath.Join(dir, LogFileName)
		if err := checkLogFile(path); err != nil {
			return nil, err
		}
		store, err := raftboltdb.New(raftboltdb.Options{
			Path:        path,
			BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
		})
		if err != nil {
			return nil, fmt.Errorf("open raft log %s: %w", path, err)
		}
		return store, nil
	case LogStoreWAL:
		path := filepath.Join(dir, WALDirName)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("create raft log directory %s: %w", path, err)
		}
		meta := &metadb.BoltMetaDB{}
		store, err := wal.Open(path, wal.WithLogger(hlog.Named("wal")), wal.WithMetaStore(meta))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("open raft log %s: %w", path, err), meta.Close())
		}
		return walStore{WAL: store, meta: meta}, nil
	default:
		return nil, fmt.Errorf("unknown raft.log_store %q (want one of %v)", kind, LogStores)
	}
}
