package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/internal/certs/certgen"
)

// pki is a cluster CA with files for one node in a temp dir.
type pki struct {
	dir string
	ca  *certgen.CA
	f   Files
}

func newPKI(t *testing.T, node string) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := certgen.NewCA("test cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: dir, ca: ca, f: Files{CA: filepath.Join(dir, "ca.pem")}}
	write(t, p.f.CA, ca.PEM)
	p.f.Cert, p.f.Key = p.issue(t, node, certgen.Options{CommonName: node, DNSNames: []string{node}})
	return p
}

func (p *pki) issue(t *testing.T, name string, o certgen.Options) (cert, key string) {
	t.Helper()
	pair, err := p.ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = pair.Write(p.dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadValidation(t *testing.T) {
	p := newPKI(t, "node1")
	other := newPKI(t, "node1")
	otherCert, otherKey := other.f.Cert, other.f.Key
	expiredCert, expiredKey := p.issue(t, "expired", certgen.Options{CommonName: "node1", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	futureCert, futureKey := p.issue(t, "future", certgen.Options{CommonName: "node1", NotBefore: time.Now().Add(24 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})
	garbage := filepath.Join(p.dir, "garbage.pem")
	write(t, garbage, []byte("not pem"))

	for _, tc := range []struct {
		name string
		f    func(Files) Files
		want string
	}{
		{"valid", func(f Files) Files { return f }, ""},
		{"missing cert", func(f Files) Files { f.Cert = filepath.Join(p.dir, "nope.pem"); return f }, "tls: cert_file: open"},
		{"unset key", func(f Files) Files { f.Key = ""; return f }, "tls: key_file is not set"},
		{"missing CA", func(f Files) Files { f.CA = filepath.Join(p.dir, "nope.pem"); return f }, "tls: ca_file: open"},
		{"CA without certificate", func(f Files) Files { f.CA = garbage; return f }, "no PEM certificate"},
		{"key of another cert", func(f Files) Files { f.Key = otherKey; return f }, "private key does not match public key"},
		{"expired", func(f Files) Files { f.Cert, f.Key = expiredCert, expiredKey; return f }, "certificate expired at"},
		{"not yet valid", func(f Files) Files { f.Cert, f.Key = futureCert, futureKey; return f }, "certificate not valid before"},
		{"signed by another CA", func(f Files) Files { f.Cert, f.Key = otherCert, otherKey; return f }, "is not signed by ca_file"},
		{"missing client CA", func(f Files) Files { f.ClientCA = filepath.Join(p.dir, "nope.pem"); return f }, "tls: client_ca_file: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.f(p.f), nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// handshake runs a TLS handshake between a server and a client config over
// a loopback connection and returns the server's and the client's errors.
func handshake(t *testing.T, server, client *tls.Config) (serr, cerr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte("k"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, client)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	cerr = tc.Handshake()
	if cerr == nil {
		// TLS 1.3: the client finishes before the server has checked its
		// certificate; reading the server's byte surfaces its verdict.
		var b [1]byte
		_, cerr = tc.Read(b[:])
	}
	return <-done, cerr
}

func TestPeerHandshake(t *testing.T) {
	p := newPKI(t, "node1")
	server, err := Load(p.f, nil)
	if err != nil {
		t.Fatal(err)
	}
	peers := []string{"node1", "node2", "node3"}
	load := func(cert, key, ca string) *Store {
		t.Helper()
		s, err := Load(Files{CA: ca, Cert: cert, Key: key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	n2c, n2k := p.issue(t, "node2", certgen.Options{CommonName: "node2", DNSNames: []string{"node2"}})
	rogueC, rogueK := p.issue(t, "rogue", certgen.Options{CommonName: "mallory", DNSNames: []string{"mallory"}})
	foreign := newPKI(t, "node2")

	t.Run("configured peer", func(t *testing.T) {
		serr, cerr := handshake(t, server.PeerServerConfig(peers), load(n2c, n2k, p.f.CA).PeerClientConfig("node1"))
		if serr != nil || cerr != nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
	})
	t.Run("not a configured peer", func(t *testing.T) {
		serr, _ := handshake(t, server.PeerServerConfig(peers), load(rogueC, rogueK, p.f.CA).PeerClientConfig("node1"))
		if !errors.Is(serr, ErrNotPeer) {
			t.Fatalf("server error = %v, want ErrNotPeer", serr)
		}
	})
	t.Run("foreign CA", func(t *testing.T) {
		// The foreign node refuses our server first (unknown authority);
		// our server sees the alert. Either way no session exists.
		serr, cerr := handshake(t, server.PeerServerConfig(peers), load(foreign.f.Cert, foreign.f.Key, foreign.f.CA).PeerClientConfig("node1"))
		if cerr == nil || !strings.Contains(cerr.Error(), "unknown authority") {
			t.Fatalf("client error = %v, want unknown authority", cerr)
		}
		if serr == nil {
			t.Fatal("server completed a handshake with a foreign node")
		}
		// And a foreign certificate presented to our server is refused by
		// its own verification.
		foreignClient := load(foreign.f.Cert, foreign.f.Key, foreign.f.CA).PeerClientConfig("node1")
		foreignClient.VerifyPeerCertificate = nil
		if serr, _ := handshake(t, server.PeerServerConfig(peers), foreignClient); serr == nil || !strings.Contains(serr.Error(), "unknown authority") {
			t.Fatalf("server error = %v, want unknown authority", serr)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		serr, _ := handshake(t, server.PeerServerConfig(peers), &tls.Config{InsecureSkipVerify: true})
		if serr == nil || !strings.Contains(serr.Error(), "certificate") {
			t.Fatalf("server error = %v, want a missing-certificate refusal", serr)
		}
	})
	t.Run("server is not the peer dialed", func(t *testing.T) {
		_, cerr := handshake(t, server.PeerServerConfig(peers), load(n2c, n2k, p.f.CA).PeerClientConfig("node3"))
		if !errors.Is(cerr, ErrNotPeer) {
			t.Fatalf("client error = %v, want ErrNotPeer", cerr)
		}
	})
}

func TestServerConfigClientCerts(t *testing.T) {
	p := newPKI(t, "node1")
	s, err := Load(p.f, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, ck := p.issue(t, "client", certgen.Options{CommonName: "alice", Client: true})
	pair, err := tls.LoadX509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}}
	without := &tls.Config{InsecureSkipVerify: true}

	if serr, cerr := handshake(t, s.ServerConfig(RequireClientCert), withCert); serr != nil || cerr != nil {
		t.Fatalf("require + cert: server %v, client %v", serr, cerr)
	}
	if serr, _ := handshake(t, s.ServerConfig(RequireClientCert), without); serr == nil {
		t.Fatal("require: a client without a certificate got through")
	}
	if serr, cerr := handshake(t, s.ServerConfig(VerifyClientCertIfGiven), without); serr != nil || cerr != nil {
		t.Fatalf("if given, none: server %v, client %v", serr, cerr)
	}
	if serr, cerr := handshake(t, s.ServerConfig(NoClientCert), without); serr != nil || cerr != nil {
		t.Fatalf("none: server %v, client %v", serr, cerr)
	}
}

func TestReloadAndWatch(t *testing.T) {
	p := newPKI(t, "node1")
	s, err := Load(p.f, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := s.Leaf().SerialNumber

	// A broken replacement is refused and the old material stays.
	write(t, p.f.Key, []byte("garbage"))
	if err := s.Reload(); err == nil {
		t.Fatal("Reload accepted a garbage key")
	}
	if s.Leaf().SerialNumber.Cmp(first) != 0 {
		t.Fatal("a failed reload replaced the certificate")
	}

	// A valid rotation is picked up by Watch without a call to Reload.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(ctx, 10*time.Millisecond) }()
	pair, err := p.ca.Issue(certgen.Options{CommonName: "node1", DNSNames: []string{"node1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Write the key first: a cert/key mismatch in between is refused and
	// retried at the next change.
	write(t, p.f.Key, pair.KeyPEM)
	write(t, p.f.Cert, pair.CertPEM)
	deadline := time.Now().Add(10 * time.Second)
	for s.Leaf().SerialNumber.Cmp(first) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the rotated certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
