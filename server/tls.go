package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/raftogram/raftogram/auth"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/grpcapi"
	"github.com/raftogram/raftogram/internal/certs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// loadTLS returns the node's TLS material when cfg turns TLS on, nil when
// it is off, or the validation error naming the file and the problem.
func loadTLS(cfg config.Config, log *slog.Logger) (*certs.Store, error) {
	if !cfg.TLS.Enabled() {
		return nil, nil
	}
	st, err := certs.Load(certs.Files{CA: cfg.TLS.CAFile, Cert: cfg.TLS.CertFile, Key: cfg.TLS.KeyFile, ClientCA: cfg.TLS.ClientCAFile}, log)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	log.Info("tls on: raft is mutual TLS between peers, grpc serves TLS",
		"client_certs", cfg.TLS.ClientCerts, "health_tls", cfg.TLS.Health, "not_after", st.Leaf().NotAfter)
	return st, nil
}

// clientAuth maps tls.client_certs to the certs policy.
func clientAuth(v string) certs.ClientAuth {
	switch v {
	case config.ClientCertsRequire:
		return certs.RequireClientCert
	case config.ClientCertsNone:
		return certs.NoClientCert
	default:
		return certs.VerifyClientCertIfGiven
	}
}

// grpcTLSOption returns the server option that makes the gRPC port serve
// TLS with st, or nil when st is nil.
func grpcTLSOption(cfg config.Config, st *certs.Store) []grpc.ServerOption {
	if st == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(st.ServerConfig(clientAuth(cfg.TLS.ClientCerts))))}
}

// peerCredentials returns how the node dials its peers' gRPC ports: mutual
// TLS with its own certificate, the peer's certificate required to name the
// peer's node_id. It returns nil (plaintext) when st is nil.
func peerCredentials(cfg config.Config, st *certs.Store) func(string) (credentials.TransportCredentials, error) {
	if st == nil {
		return nil
	}
	ids := make(map[string]string, len(cfg.Cluster.Peers))
	for _, p := range cfg.Cluster.Peers {
		ids[p.GRPCAddr] = p.NodeID
	}
	return func(addr string) (credentials.TransportCredentials, error) {
		id, ok := ids[addr]
		if !ok {
			return nil, fmt.Errorf("%s is no configured peer's grpc_addr", addr)
		}
		return credentials.NewTLS(st.PeerClientConfig(id)), nil
	}
}

// healthListener wraps the health listener in TLS when tls.health is on.
func healthListener(cfg config.Config, st *certs.Store, ln net.Listener) net.Listener {
	if st == nil || !cfg.TLS.Health {
		return ln
	}
	return tls.NewListener(ln, st.ServerConfig(certs.NoClientCert))
}

// warnIfExposed logs a warning for every bind address that is not loopback
// while the node runs without TLS: anyone who reaches those ports can
// drive the node.
func warnIfExposed(cfg config.Config, log *slog.Logger) {
	if cfg.TLS.Enabled() {
		return
	}
	for _, b := range []struct{ key, addr string }{{"raft_bind_addr", cfg.RaftBindAddr}, {"grpc_bind_addr", cfg.GRPCBindAddr}, {"health_bind_addr", cfg.HealthBindAddr}} {
		if !isLoopback(b.addr) {
			log.Warn("listening beyond loopback without tls: anyone who reaches this port can drive the node (see docs/security.md)", "key", b.key, "addr", b.addr)
		}
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Reload re-reads the node's certificate, key and CAs, its auth rules file
// and its JWT key file now (the SIGHUP path; the files are also polled). It returns an
// error when neither tls nor auth is configured, or the errors of the
// files that do not load, whose previous contents stay in use.
func (s *Server) Reload() error {
	if s.certs == nil && s.policy == nil {
		return errors.New("neither tls nor auth is configured: nothing to reload")
	}
	var errs []error
	if s.certs != nil {
		errs = append(errs, s.certs.Reload())
	}
	if s.policy != nil {
		errs = append(errs, s.policy.Reload(), s.authn.Reload())
	}
	return errors.Join(errs...)
}

// watchFiles polls the TLS files, the auth rules file and the JWT key file
// until ctx ends.
func (s *Server) watchFiles(ctx context.Context) {
	if s.certs != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.certs.Watch(ctx, s.cfg.TLS.ReloadInterval)
		}()
	}
	if s.policy != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.policy.Watch(ctx, s.cfg.TLS.ReloadInterval)
		}()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.authn.Watch(ctx, s.cfg.TLS.ReloadInterval)
		}()
	}
}

// loadAuth returns the policy, the authenticator and the gRPC interceptors
// of cfg.Auth, or nils when auth is off. It returns an error listing what
// is wrong with the rules or the JWT key.
func loadAuth(cfg config.Config, st *certs.Store, log *slog.Logger) (*auth.Policy, *auth.Authenticator, []grpc.ServerOption, error) {
	if !cfg.Auth.Enabled() {
		return nil, nil, nil, nil
	}
	policy, err := auth.NewPolicy(cfg.Auth, log)
	if err != nil {
		return nil, nil, nil, err
	}
	ids := make([]string, len(cfg.Cluster.Peers))
	for i, p := range cfg.Cluster.Peers {
		ids[i] = p.NodeID
	}
	authn, err := auth.NewAuthenticator(cfg.Auth, policy, st, ids, log)
	if err != nil {
		return nil, nil, nil, err
	}
	log.Info("auth on: every call authenticates and is authorized",
		"tokens", len(cfg.Auth.Tokens), "rules_file", cfg.Auth.RulesFile, "jwt", cfg.Auth.JWT.Algorithm, "client_certs", cfg.Auth.CertAuth)
	return policy, authn, grpcapi.NewGuard(authn, policy, log).ServerOptions(), nil
}

// peerTLS returns st as the Raft transport's TLS, or a nil interface when
// st is nil (so the transport stays plaintext).
func peerTLS(st *certs.Store) cluster.PeerTLS {
	if st == nil {
		return nil
	}
	return st
}
