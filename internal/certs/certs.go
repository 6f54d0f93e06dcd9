// Package certs owns a node's TLS material: it loads and validates the
// node's certificate, key and the cluster CA from PEM files, reloads them
// when the files change (or on demand, for SIGHUP) without a restart, and
// builds the tls.Configs the Raft transport, the gRPC server, the health
// listener and the node's own gRPC clients use. Every tls.Config it returns
// reads the current material on each handshake, so a rotation takes effect
// for new connections at once.
package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// Files names the PEM files of a node's TLS identity.
type Files struct {
	// CA holds the certificate(s) of the cluster CA: it signs every node's
	// certificate and is what peers are verified against.
	CA string
	// Cert is the node's certificate chain (leaf first); Key its private key.
	Cert, Key string
	// ClientCA, when set, holds the CA(s) that sign client certificates on
	// the gRPC port; empty means the cluster CA.
	ClientCA string
}

// material is one consistent load of Files.
type material struct {
	cert      tls.Certificate
	leaf      *x509.Certificate
	roots     *x509.CertPool
	clientCAs *x509.CertPool
	stamp     string // the files' sizes and modification times
}

// Store holds the node's current TLS material. It is safe for concurrent
// use.
type Store struct {
	files Files
	now   func() time.Time
	log   *slog.Logger

	mu  sync.RWMutex
	cur *material
}

// Load reads and validates files and returns a Store holding them. It
// returns an error naming the file and the problem when a file is missing or
// unreadable, holds no PEM certificate, the key does not match the
// certificate, the certificate is expired or not yet valid, or the CA does
// not sign it. log may be nil.
func Load(files Files, log *slog.Logger) (*Store, error) {
	return load(files, log, time.Now)
}

func load(files Files, log *slog.Logger, now func() time.Time) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{files: files, now: now, log: log}
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur = m
	return s, nil
}

// Reload re-reads the files and, when they are valid, makes them current
// for new handshakes. On error the previous material stays in use and the
// error says why (as [Load]'s).
func (s *Store) Reload() error {
	m, err := s.read()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = m
	s.mu.Unlock()
	s.log.Info("tls material reloaded", "cert", s.files.Cert, "not_after", m.leaf.NotAfter)
	return nil
}

// Watch polls the files every interval and reloads them when their sizes or
// modification times change, until ctx ends. A failed reload is logged and
// retried at the next change; the previous material stays in use.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := s.files.stamp()
		if err != nil || stamp == s.current().stamp {
			continue
		}
		if err := s.Reload(); err != nil {
			s.log.Error("tls material changed on disk but does not load; keeping the previous one", "err", err)
			// Remember the stamp so a broken file is reported once, not
			// at every tick; the next change tries again.
			s.mu.Lock()
			c := *s.cur
			c.stamp = stamp
			s.cur = &c
			s.mu.Unlock()
		}
	}
}

// Leaf returns the node's current certificate.
func (s *Store) Leaf() *x509.Certificate { return s.current().leaf }

func (s *Store) current() *material {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

func (f Files) stamp() (string, error) {
	var b bytes.Buffer
	for _, name := range []string{f.CA, f.Cert, f.Key, f.ClientCA} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s:%d:%d;", name, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (s *Store) read() (*material, error) {
	stamp, _ := s.files.stamp()
	certPEM, err := readFile("cert_file", s.files.Cert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile("key_file", s.files.Key)
	if err != nil {
		return nil, err
	}
	roots, err := readPool("ca_file", s.files.CA)
	if err != nil {
		return nil, err
	}
	// Client certificates on the gRPC port chain to the client CA or to
	// the cluster CA (peers call each other there too).
	clientCAs := roots
	if s.files.ClientCA != "" {
		if clientCAs, err = readPool("client_ca_file", s.files.ClientCA, s.files.CA); err != nil {
			return nil, err
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: cert_file %s and key_file %s: %w", s.files.Cert, s.files.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: cert_file %s: %w", s.files.Cert, err)
		}
	}
	now := s.now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls: cert_file %s: certificate expired at %s", s.files.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls: cert_file %s: certificate not valid before %s", s.files.Cert, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("tls: cert_file %s is not signed by ca_file %s: %w", s.files.Cert, s.files.CA, err)
	}
	cert.Leaf = leaf
	return &material{cert: cert, leaf: leaf, roots: roots, clientCAs: clientCAs, stamp: stamp}, nil
}

func readFile(key, name string) ([]byte, error) {
	if name == "" {
		return nil, fmt.Errorf("tls: %s is not set", key)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("tls: %s: %w", key, err)
	}
	return b, nil
}

// readPool returns a pool of the certificates in the file name and in the
// files extra (already validated elsewhere). It is an error when name holds
// none.
func readPool(key, name string, extra ...string) (*x509.CertPool, error) {
	b, err := readFile(key, name)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, e := range extra {
		if eb, err := os.ReadFile(e); err == nil {
			pool.AppendCertsFromPEM(eb)
		}
	}
	n := 0
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: %s %s: %w", key, name, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tls: %s %s: no PEM certificate in the file", key, name)
	}
	return pool, nil
}

// ErrNotPeer is wrapped by the verification error of a certificate that
// chains to the cluster CA but names no configured peer.
var ErrNotPeer = errors.New("certificate names no configured peer")

// Identities returns the names a certificate can be known by: its DNS and
// URI SANs, its email SANs and its subject common name, in that order,
// without duplicates.
func Identities(c *x509.Certificate) []string {
	var ids []string
	add := func(s string) {
		if s != "" && !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	for _, d := range c.DNSNames {
		add(d)
	}
	for _, u := range c.URIs {
		add(u.String())
	}
	for _, e := range c.EmailAddresses {
		add(e)
	}
	add(c.Subject.CommonName)
	return ids
}

// verifyChain checks that the presented chain leads to a root in pool for
// usage and returns the leaf.
func verifyChain(raw [][]byte, pool *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, errors.New("no certificate presented")
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse presented certificate: %w", err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, err
	}
	return certs[0], nil
}

// PeerServerConfig returns the tls.Config of a listener only cluster peers
// may use (the Raft port): TLS 1.3, the node's current certificate, and a
// client certificate required, chained to the cluster CA, naming one of
// peers (see [Identities]).
func (s *Store) PeerServerConfig(peers []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{m.cert},
				ClientAuth:   tls.RequireAnyClientCert,
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					leaf, err := verifyChain(raw, m.roots, s.now(), x509.ExtKeyUsageClientAuth)
					if err != nil {
						return fmt.Errorf("peer certificate: %w", err)
					}
					return namesOneOf(leaf, peers)
				},
			}, nil
		},
	}
}

// PeerClientConfig returns the tls.Config to dial the peer known as
// peerID: the node's current certificate as the client certificate, and the
// server's certificate verified against the cluster CA and required to name
// peerID.
func (s *Store) PeerClientConfig(peerID string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := s.current().cert
			return &c, nil
		},
		// Verification against the current roots happens below; the
		// standard one would pin the roots at config creation.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := verifyChain(raw, s.current().roots, s.now(), x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("peer %s certificate: %w", peerID, err)
			}
			return namesOneOf(leaf, []string{peerID})
		},
	}
}

func namesOneOf(leaf *x509.Certificate, want []string) error {
	ids := Identities(leaf)
	for _, id := range ids {
		if slices.Contains(want, id) {
			return nil
		}
	}
	return fmt.Errorf("%w: it names %q, peers are %q", ErrNotPeer, ids, want)
}

// ClientAuth says whether a server asks its clients for certificates.
type ClientAuth int

// The client certificate policies of [Store.ServerConfig].
const (
	// NoClientCert: clients are not asked for a certificate.
	NoClientCert ClientAuth = iota
	// VerifyClientCertIfGiven: a certificate a client presents must chain
	// to the client CA; clients without one are let through (they may
	// authenticate otherwise).
	VerifyClientCertIfGiven
	// RequireClientCert: every client must present a certificate chained
	// to the client CA.
	RequireClientCert
)

// ServerConfig returns the tls.Config of a client-facing listener (gRPC,
// health): TLS 1.2 or later with the node's current certificate, and client
// certificates per auth, verified against the client CA and the cluster CA
// (which signs the peers that call in too).
func (s *Store) ServerConfig(auth ClientAuth) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.current()
			c := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{m.cert},
				NextProtos:   []string{"h2", "http/1.1"},
			}
			switch auth {
			case VerifyClientCertIfGiven:
				c.ClientAuth = tls.VerifyClientCertIfGiven
			case RequireClientCert:
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
			c.ClientCAs = m.clientCAs
			return c, nil
		},
	}
}

// PeerIdentity returns the node ID of a verified client certificate chain
// (leaf first) when it chains to the cluster CA and names one of peers,
// so a call from another node can be told from a client's, even when
// client certificates come from another CA.
func (s *Store) PeerIdentity(chain []*x509.Certificate, peers []string) (string, bool) {
	if len(chain) == 0 {
		return "", false
	}
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	leaf, err := verifyChain(raw, s.current().roots, s.now(), x509.ExtKeyUsageClientAuth)
	if err != nil {
		return "", false
	}
	for _, id := range Identities(leaf) {
		if slices.Contains(peers, id) {
			return id, true
		}
	}
	return "", false
}
