package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/certs/certgen"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// testPKI is a cluster CA with certificates for node1..node3 and a client,
// plus a foreign CA's node certificate, written under dir.
type testPKI struct {
	dir        string
	ca         *certgen.CA
	caFile     string
	clientCert tls.Certificate
	foreign    tls.Certificate
}

// messenger returns a Messenger client of the node at addr over TLS that
// trusts p's CA (no client certificate), closed when the test ends.
func (p *testPKI) messenger(t *testing.T, addr string) raftogramv1.MessengerClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return raftogramv1.NewMessengerClient(conn)
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certgen.NewCA("raftogram test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.pem")}
	write(t, p.caFile, ca.PEM)
	for _, id := range []string{"node1", "node2", "node3"} {
		pair, err := ca.Node(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := pair.Write(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := ca.Issue(certgen.Options{CommonName: "alice", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.clientCert, err = tls.X509KeyPair(cp.CertPEM, cp.KeyPEM); err != nil {
		t.Fatal(err)
	}
	other, err := certgen.NewCA("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	// A foreign certificate that even claims a peer's name.
	fp, err := other.Node("node2")
	if err != nil {
		t.Fatal(err)
	}
	if p.foreign, err = tls.X509KeyPair(fp.CertPEM, fp.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return p
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := writeFile(name, b); err != nil {
		t.Fatal(err)
	}
}

// tune turns TLS on for a node with its own certificate.
func (p *testPKI) tune(c *config.Config) {
	c.TLS.CAFile = p.caFile
	c.TLS.CertFile = filepath.Join(p.dir, c.NodeID+".pem")
	c.TLS.KeyFile = filepath.Join(p.dir, c.NodeID+"-key.pem")
}

// clientCreds trusts the cluster CA and presents the client certificate.
func (p *testPKI) clientCreds() credentials.TransportCredentials {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{p.clientCert}})
}

func TestTLSCluster(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune, func(c *config.Config) { c.ForwardWrites = true })
	// An election over the Raft port proves mutual TLS between the peers.
	leader := c.leader()
	follower := (leader + 1) % 3

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{
		Addrs:       []string{c.cfgs[follower].GRPCBindAddr},
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(pki.clientCreds())},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// A write sent to a follower is forwarded to the leader over the
	// peers' mutual TLS gRPC, and a linearizable read there asks the
	// leader for a read index the same way.
	if _, err := cl.CreateChannel(ctx, "secure", "Secure"); err != nil {
		t.Fatalf("CreateChannel through a follower: %v", err)
	}
	sent, err := cl.Send(ctx, client.SendRequest{ChannelID: "secure", AuthorID: "alice", Payload: []byte("hello over tls")})
	if err != nil {
		t.Fatalf("Send through a follower: %v", err)
	}
	page, err := cl.ReadHistory(ctx, "secure", client.ReadOptions{})
	if err != nil {
		t.Fatalf("ReadHistory: %v", err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Sequence != sent.Sequence || string(page.Messages[0].Payload) != "hello over tls" {
		t.Fatalf("history = %+v, want the one message sent", page.Messages)
	}

	// A plaintext client gets no service from a TLS port.
	conn, err := grpc.NewClient(c.cfgs[leader].GRPCBindAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	_, err = raftogramv1.NewMessengerClient(conn).GetChannel(pctx, &raftogramv1.GetChannelRequest{ChannelId: "secure"})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("plaintext call on a TLS port: %v, want Unavailable", err)
	}
	c.converged()
}

// TestRaftPortRefusesStrangers plays the attacker of the issue against a TLS
// cluster's leader: a plain-TCP Raft client with a forged higher-term
// AppendEntries, and a TLS client with a certificate from another CA that
// names a peer. Both are refused and logged with their address; the term,
// the leader and the projection are untouched.
func TestRaftPortRefusesStrangers(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune)
	leader := c.leader()
	c.converged()
	st := c.servers[leader].Node().Status()
	before, err := c.servers[leader].Store().Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	target := raft.ServerAddress(c.cfgs[leader].RaftBindAddr)

	// 1. Plain TCP speaking raft's own protocol.
	rogue, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	var resp raft.AppendEntriesResponse
	err = rogue.AppendEntries("node2", target, &raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ID: []byte("node2"), Addr: []byte(rogue.LocalAddr())},
		Term:         st.Term + 100,
		PrevLogEntry: st.LastLogIndex, PrevLogTerm: st.Term,
		Entries:           []*raft.Log{{Index: st.LastLogIndex + 1, Term: st.Term + 100, Type: raft.LogCommand, Data: []byte("forged")}},
		LeaderCommitIndex: st.LastLogIndex + 1,
	}, &resp)
	if err == nil {
		t.Fatalf("a plaintext AppendEntries was answered: %+v", resp)
	}

	// 2. TLS with a foreign CA's certificate that claims to be node2.
	tc, err := tls.Dial("tcp", string(target), &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pki.foreign}})
	if err == nil {
		// TLS 1.3: the refusal arrives on the first read.
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = tc.Write([]byte{0})
		var b [1]byte
		_, err = tc.Read(b[:])
		tc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a foreign certificate reached raft: %v", err)
	}

	waitFor(t, "both refusals logged with the remote address", 5*time.Second, func() error {
		logs := c.logs[leader].String()
		if n := strings.Count(logs, "raft: refused a connection"); n < 2 {
			return fmt.Errorf("%d refusals logged", n)
		}
		return nil
	})
	for _, line := range strings.Split(c.logs[leader].String(), "\n") {
		if strings.Contains(line, "raft: refused a connection") && !strings.Contains(line, "remote=127.0.0.1:") {
			t.Fatalf("refusal logged without the remote address: %s", line)
		}
	}
	after := c.servers[leader].Node().Status()
	if after.Term != st.Term || !after.IsLeader {
		t.Fatalf("leader moved from term %d to %d (leader: %v)", st.Term, after.Term, after.IsLeader)
	}
	if d, err := c.servers[leader].Store().Digest(context.Background()); err != nil || d != before {
		t.Fatalf("projection changed: %v", err)
	}
}

func TestOpenRefusesBadTLS(t *testing.T) {
	pki := newTestPKI(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Cluster.Peers = config.Peers{{NodeID: "node1", RaftAddr: "127.0.0.1:1", GRPCAddr: "127.0.0.1:2"}}
	pki.tune(&cfg)
	cfg.TLS.KeyFile = filepath.Join(pki.dir, "node2-key.pem") // not node1's key
	ls := Listeners{Raft: mustListen(t), GRPC: mustListen(t), HTTP: mustListen(t)}
	_, err := Open(context.Background(), cfg, ls, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("Open = %v, want the key mismatch named", err)
	}
	// The listeners were released.
	l, err := net.Listen("tcp", ls.GRPC.Addr().String())
	if err != nil {
		t.Fatalf("grpc listener still held: %v", err)
	}
	l.Close()
}

func writeFile(name string, b []byte) error { return os.WriteFile(name, b, 0o600) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestClientCertificatesRequired: with tls.client_certs require, a client
// without a certificate, with an expired one or with one from another CA
// gets no service (the handshake fails: Unavailable) and changes nothing;
// a valid certificate is served.
func TestClientCertificatesRequired(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune, func(c *config.Config) { c.TLS.ClientCerts = config.ClientCertsRequire })
	leader := c.leader()
	addr := c.cfgs[leader].GRPCBindAddr
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca.Cert)
	expired, err := pki.ca.Issue(certgen.Options{CommonName: "old", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expiredCert, err := tls.X509KeyPair(expired.CertPEM, expired.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	create := func(certs ...tls.Certificate) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: certs})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = raftogramv1.NewMessengerClient(conn).CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "C"})
		return err
	}
	c.converged()
	before, err := c.servers[leader].Store().Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no certificate", nil},
		{"expired certificate", []tls.Certificate{expiredCert}},
		{"another CA's certificate", []tls.Certificate{pki.foreign}},
	} {
		if err := create(tc.certs...); status.Code(err) != codes.Unavailable {
			t.Fatalf("%s: %v, want Unavailable (no TLS session)", tc.name, err)
		}
		if d, err := c.servers[leader].Store().Digest(context.Background()); err != nil || d != before {
			t.Fatalf("%s changed the state (%v)", tc.name, err)
		}
	}
	if err := create(pki.clientCert); err != nil {
		t.Fatalf("a valid client certificate: %v", err)
	}
}
