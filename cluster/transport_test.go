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

// drain unblocks raft's connection handlers (closing their connections)
// and returns once each has returned and closed its connection, so the
// stores never close under a handler still writing the term; a handler
// that does not return makes it give up after its bound.
func TestDrainWaitsForConnectionHandlers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &streamLayer{Listener: ln, advertise: tcpAddr(ln.Addr().String()), log: slog.New(slog.DiscardHandler)}
	defer sl.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.Write([]byte("rpc1")); err != nil {
		t.Fatal(err)
	}
	c, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// A handler like raft's: read until an error, then close.
	handlerDone := make(chan error, 1)
	go func() {
		defer c.Close()
		_, err := io.Copy(io.Discard, c)
		handlerDone <- err
	}()
	if !sl.drain(5 * time.Second) {
		t.Fatal("drain gave up on a handler that returns once its connection closes")
	}
	select {
	case <-handlerDone:
	default:
		t.Fatal("drain returned before the handler did")
	}

	// A handler that never closes its connection: drain gives up.
	stuckPeer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuckPeer.Close()
	stuck, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if sl.drain(50 * time.Millisecond) {
		t.Fatal("drain reported done while a handler had not closed its connection")
	}
	stuck.Close()
	if !sl.drain(time.Second) {
		t.Fatal("drain after the last handler closed")
	}
}
