package projection

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestErrIsNilWhileUsableAndSaysWhyAfterClose(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("open store: Err = %v", err)
	}
	broken := errors.New("disk I/O error")
	s.wmu.Lock()
	got := s.breakLocked(broken)
	s.wmu.Unlock()
	if err := s.Err(); !errors.Is(err, ErrBroken) || !errors.Is(err, broken) || err.Error() != got.Error() {
		t.Fatalf("broken store: Err = %v, want the break %v", err, got)
	}
	if err := s.Close(); err != nil && !errors.Is(err, ErrBroken) {
		t.Fatal(err)
	}
}

func TestErrAfterClose(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); err == nil {
		t.Fatal("closed store: Err = nil")
	}
}
