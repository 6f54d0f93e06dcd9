package torture

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/certs/certgen"
)

// Security is the TLS and auth material of a secure run (Options.Secure):
// a throwaway cluster CA, one certificate per node (CN and DNS SAN its
// node id, plus 127.0.0.1, which the clients dial) and three bearer tokens
// with the roles of `make dev-cluster-secure`, all written under Dir.
// Every node then runs mutual TLS on Raft (through the link proxies, which
// pass the bytes through), TLS on gRPC and token auth with the tokens
// stored as SHA-256; /health stays plain HTTP (tls.health false) because
// the harness polls it.
type Security struct {
	// Dir holds ca.pem, nodeN.pem, nodeN-key.pem and admin.token,
	// writer.token, reader.token.
	Dir    string
	CAFile string
	// Admin may do everything (the harness's setup and final-state
	// client); Writer may create, publish and read, without impersonation
	// (every workload client); Reader may only read.
	Admin, Writer, Reader string

	tls *tls.Config
}

// roleGrants are the roles of `make dev-cluster-secure`.
var roleGrants = map[string]config.Grant{
	"admin":  {Create: []string{"*"}, Publish: []string{"*"}, Read: []string{"*"}, Admin: true, Impersonate: true},
	"writer": {Create: []string{"*"}, Publish: []string{"*"}, Read: []string{"*"}},
	"reader": {Read: []string{"*"}},
}

// NewSecurity generates the material for nodes node1..nodeN into dir
// (created). It returns an error when a key cannot be generated or a file
// cannot be written.
func NewSecurity(dir string, nodes int) (*Security, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("torture: secure: %w", err)
	}
	ca, err := certgen.NewCA("raftogram torture CA (throwaway)")
	if err != nil {
		return nil, fmt.Errorf("torture: secure: %w", err)
	}
	s := &Security{Dir: dir, CAFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(s.CAFile, ca.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("torture: secure: %w", err)
	}
	for i := range nodes {
		id := nodeID(i)
		pair, err := ca.Node(id)
		if err != nil {
			return nil, fmt.Errorf("torture: secure: %w", err)
		}
		if _, _, err := pair.Write(dir, id); err != nil {
			return nil, fmt.Errorf("torture: secure: %w", err)
		}
	}
	for _, t := range []struct {
		name string
		tok  *string
	}{{"admin", &s.Admin}, {"writer", &s.Writer}, {"reader", &s.Reader}} {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("torture: secure: %w", err)
		}
		*t.tok = hex.EncodeToString(b)
		if err := os.WriteFile(filepath.Join(dir, t.name+".token"), []byte(*t.tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("torture: secure: %w", err)
		}
	}
	if s.tls, err = client.LoadTLS(client.TLSFiles{CA: s.CAFile}); err != nil {
		return nil, fmt.Errorf("torture: secure: %w", err)
	}
	return s, nil
}

// nodeID is the id proccluster gives node i.
func nodeID(i int) string { return fmt.Sprintf("node%d", i+1) }

// configure turns on TLS and auth in node i's configuration.
func (s *Security) configure(i int, cfg *config.Config) {
	id := nodeID(i)
	cfg.TLS.CAFile = s.CAFile
	cfg.TLS.CertFile = filepath.Join(s.Dir, id+".pem")
	cfg.TLS.KeyFile = filepath.Join(s.Dir, id+"-key.pem")
	cfg.TLS.ClientCerts = config.ClientCertsVerifyIfGiven // peers prove who they are
	cfg.TLS.Health = false                                // the harness polls /health in plain HTTP
	cfg.Auth = config.Auth{Roles: roleGrants}
	for _, t := range []struct{ principal, tok string }{{"admin", s.Admin}, {"writer", s.Writer}, {"reader", s.Reader}} {
		sum := sha256.Sum256([]byte(t.tok))
		cfg.Auth.Tokens = append(cfg.Auth.Tokens, config.Token{Principal: t.principal, SHA256: hex.EncodeToString(sum[:]), Roles: []string{t.principal}})
	}
}

// credentials sets TLS and the token on a client configuration (nothing
// when s is nil).
func (s *Security) credentials(cfg *client.Config, token string) {
	if s == nil {
		return
	}
	cfg.TLS, cfg.Token = s.tls.Clone(), token
}

// writerToken is the token of the workload's clients ("" on a plaintext
// cluster).
func (c *Cluster) writerToken() string {
	if c.sec == nil {
		return ""
	}
	return c.sec.Writer
}

// adminToken is the token of the harness's own client ("" on a plaintext
// cluster).
func (c *Cluster) adminToken() string {
	if c.sec == nil {
		return ""
	}
	return c.sec.Admin
}

// author is the author_id user id sends with: "client-<id>", or empty on
// a secure cluster, where the node fills in the caller's principal (the
// writer token may not impersonate).
func (c *Cluster) author(id int) string {
	if c.sec != nil {
		return ""
	}
	return fmt.Sprintf("client-%d", id)
}
