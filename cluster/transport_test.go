package cluster

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// TestSilentRaftConnectionIsClosed: a plaintext connection to the Raft port
// that sends nothing is closed after the wait; one that speaks at once
// keeps working however long it rests afterwards.
func TestSilentRaftConnectionIsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &streamLayer{Listener: ln, advertise: tcpAddr(ln.Addr().String()), log: slog.New(slog.DiscardHandler), silentWait: 100 * time.Millisecond}
	defer sl.Close()

	accept := func() net.Conn {
		t.Helper()
		c, err := sl.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c := accept()
	var b [8]byte
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent client: %v, want a deadline error", err)
	}
	// The node closed it: the client sees EOF.
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("silent client after the wait: %v, want EOF", err)
	}

	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.Write([]byte("rpc1")); err != nil {
		t.Fatal(err)
	}
	c = accept()
	defer c.Close()
	if n, err := io.ReadFull(c, b[:4]); err != nil || string(b[:n]) != "rpc1" {
		t.Fatalf("first read %q, %v", b[:n], err)
	}
	// Rest well past the wait, then speak again: still served.
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, b[4:8])
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read returned while the peer rested: %v", err)
	case <-time.After(300 * time.Millisecond): // the peer rests: three times the wait
	}
	if _, err := peer.Write([]byte("rpc2")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || string(b[4:8]) != "rpc2" {
		t.Fatalf("second read %q, %v", b[4:8], err)
	}
}
