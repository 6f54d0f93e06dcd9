package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkLogFile catches a truncated raft-boltdb file before bbolt maps it:
// bbolt trusts its metadata and touches pages past the end of a short file,
// which kills the process (v1.3.5 with SIGBUS, v1.4.3 with an assertion
// panic while it rebuilds the freelist) instead of returning an error;
// TestBoltStillDiesOnTruncatedFile tells when an upgrade changes that. A
// missing file is fine (a new node). The check reads bbolt's two meta pages
// (a stable, documented layout), takes the newest valid one and compares
// the file size with the page high-water mark it records.
func checkLogFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft log %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("raft log %s: %w", path, err)
	}
	size := info.Size()
	if size == 0 {
		return nil // created but never written: bbolt initialises it
	}
	var best *boltMeta
	pageSize := int64(4096)
	for i := int64(0); i < 2; i++ {
		m, err := readBoltMeta(f, i*pageSize)
		if err != nil {
			continue
		}
		if i == 0 {
			pageSize = int64(m.pageSize)
		}
		if best == nil || m.txid > best.txid {
			best = m
		}
	}
	if best == nil {
		return fmt.Errorf("raft log %s is damaged: no valid bbolt meta page (%d bytes); "+
			"restore this node's data_dir, or empty it to rejoin as a new copy", path, size)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need {
		return fmt.Errorf("raft log %s is truncated: %d bytes, its metadata needs %d; "+
			"restore this node's data_dir, or empty it to rejoin as a new copy", path, size, need)
	}
	return nil
}

type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// readBoltMeta decodes and verifies the meta page at off: a 16-byte page
// header, then magic, version, page size, flags, root bucket (16 bytes),
// freelist page, high-water page, txid and an FNV-64a checksum of the
// fields before it.
func readBoltMeta(r io.ReaderAt, off int64) (*boltMeta, error) {
	const header, metaLen = 16, 64
	buf := make([]byte, header+metaLen)
	if _, err := r.ReadAt(buf, off); err != nil {
		return nil, err
	}
	m := buf[header:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 {
		return nil, errors.New("not a bbolt meta page")
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return nil, errors.New("meta checksum mismatch")
	}
	return &boltMeta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}
