package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/domain"
)

// Credentials are what a call presents.
type Credentials struct {
	// Bearer is the token of an "authorization: Bearer …" header ("" if
	// none).
	Bearer string
	// Chain is the client certificate chain the TLS handshake verified
	// (leaf first), nil without one.
	Chain []*x509.Certificate
}

// PeerIdentifier tells a peer node's certificate from a client's (a
// *certs.Store).
type PeerIdentifier interface {
	PeerIdentity(chain []*x509.Certificate, peers []string) (string, bool)
}

// Authenticator turns credentials into a principal.
type Authenticator struct {
	policy      *Policy
	jwt         *jwtVerifier
	clientCerts bool
	peers       []string
	peerID      PeerIdentifier
	log         *slog.Logger
}

// NewAuthenticator returns the authenticator cfg describes, checking tokens
// against policy and recognizing the nodes peers by their certificates
// through pid; log (nil discards) takes what Reload and Watch report. It
// returns an error when jwt.key_file cannot be read, holds no key, or holds
// one that does not parse for jwt.algorithm.
func NewAuthenticator(cfg config.Auth, policy *Policy, pid PeerIdentifier, peers []string, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{policy: policy, clientCerts: cfg.CertAuth, peers: peers, peerID: pid, log: log}
	if cfg.JWT.VerifyKeyFile != "" {
		v, err := newJWTVerifier(cfg.JWT)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Reload re-reads jwt.key_file now (the SIGHUP path) and swaps its keys
// in. It returns nil without JWTs configured, and the error of a file that
// does not load, whose previous keys stay in use.
func (a *Authenticator) Reload() error {
	if a.jwt == nil {
		return nil
	}
	if err := a.jwt.reload(); err != nil {
		return err
	}
	a.log.Info("jwt keys reloaded", "key_file", a.jwt.cfg.VerifyKeyFile, "keys", len(a.jwt.keys.Load().set.Keys))
	return nil
}

// Watch polls jwt.key_file every interval and reloads it when it changes,
// until ctx ends. A failed reload is logged; the previous keys stay. It
// returns at once without JWTs configured.
func (a *Authenticator) Watch(ctx context.Context, interval time.Duration) {
	if a.jwt == nil {
		return
	}
	watchFile(ctx, a.jwt.cfg.VerifyKeyFile, a.jwt.keys.Load().stamp, interval, func() {
		if err := a.Reload(); err != nil {
			a.log.Error("auth jwt.key_file changed but does not load; keeping the previous keys", "error", err)
		}
	})
}

// watchFile calls changed each time path's size or modification time
// (fileStamp) differs from the last seen, starting from last, polling
// every interval until ctx ends. A file it cannot stat is skipped until it
// can.
func watchFile(ctx context.Context, path, last string, interval time.Duration, changed func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil || fileStamp(fi) == last {
			continue
		}
		last = fileStamp(fi)
		changed()
	}
}

func unauthenticated(format string, args ...any) error {
	return domain.Errorf(domain.EUNAUTHENTICATED, format, args...)
}

// Authenticate returns the caller c stands for: a peer node (its
// certificate chains to the cluster CA and names a peer), the holder of a
// bearer token (a JWT when it has the JWT shape and JWTs are configured,
// else a static token), or a client certificate's identity (when
// client_certs is on). It returns an EUNAUTHENTICATED *domain.Error saying
// what was wrong when none applies; a bad bearer token is refused even
// when a certificate would have authenticated.
func (a *Authenticator) Authenticate(c Credentials) (Principal, error) {
	if a.peerID != nil {
		if id, ok := a.peerID.PeerIdentity(c.Chain, a.peers); ok {
			return Principal{Name: id, Via: "peer"}, nil
		}
	}
	if c.Bearer != "" {
		if a.jwt != nil && strings.Count(c.Bearer, ".") == 2 {
			return a.jwt.verify(c.Bearer)
		}
		t, ok := a.policy.token(c.Bearer)
		if !ok {
			return Principal{}, unauthenticated("invalid bearer token")
		}
		return Principal{Name: t.Principal, Roles: t.Roles, Via: "token"}, nil
	}
	if a.clientCerts && len(c.Chain) > 0 {
		if ids := identities(c.Chain[0]); len(ids) > 0 {
			return Principal{Name: ids[0], Via: "cert"}, nil
		}
		return Principal{}, unauthenticated("the client certificate names nobody (no SAN, no common name)")
	}
	return Principal{}, unauthenticated("authentication required: send 'authorization: Bearer <token>'%s", map[bool]string{true: " or a client certificate", false: ""}[a.clientCerts])
}

// identities is certs.Identities without the import cycle risk.
func identities(c *x509.Certificate) []string {
	var ids []string
	ids = append(ids, c.DNSNames...)
	for _, u := range c.URIs {
		ids = append(ids, u.String())
	}
	ids = append(ids, c.EmailAddresses...)
	if c.Subject.CommonName != "" {
		ids = append(ids, c.Subject.CommonName)
	}
	return ids
}

// jwtVerifier checks JWT bearer tokens against the keys of jwt.key_file,
// which reload swaps atomically.
type jwtVerifier struct {
	cfg    config.JWT
	keys   atomic.Pointer[jwtKeys]
	parser *jwt.Parser
}

// jwtKeys are the verification keys read from jwt.key_file and the file's
// size and modification time when it was read.
type jwtKeys struct {
	set   jwt.VerificationKeySet
	stamp string
}

func newJWTVerifier(cfg config.JWT) (*jwtVerifier, error) {
	switch cfg.Algorithm {
	case "HS256", "RS256", "EdDSA":
	default:
		return nil, fmt.Errorf("auth: jwt.algorithm %q is unknown", cfg.Algorithm)
	}
	v := &jwtVerifier{cfg: cfg}
	if err := v.reload(); err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{cfg.Algorithm}), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// reload reads jwt.key_file and swaps its keys in. For HS256 the file is
// one shared secret of at least 32 bytes; for RS256 and EdDSA it holds one
// or more PEM public keys (several while keys rotate: a token verifies
// with any of them). A file that is unreadable, holds no key, or holds a
// key that does not parse for the algorithm is an error, and the keys in
// use stay.
func (v *jwtVerifier) reload() error {
	f := v.cfg.VerifyKeyFile
	fi, err := os.Stat(f)
	if err != nil {
		return fmt.Errorf("auth: jwt.key_file: %w", err)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("auth: jwt.key_file: %w", err)
	}
	var keys []jwt.VerificationKey
	if v.cfg.Algorithm == "HS256" {
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 32 {
			return fmt.Errorf("auth: jwt.key_file %s: an HS256 secret needs at least 32 bytes, got %d", f, len(secret))
		}
		keys = append(keys, secret)
	} else {
		for rest := b; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			one := pem.EncodeToMemory(block)
			var key jwt.VerificationKey
			if v.cfg.Algorithm == "RS256" {
				key, err = jwt.ParseRSAPublicKeyFromPEM(one)
			} else {
				key, err = jwt.ParseEdPublicKeyFromPEM(one)
			}
			if err != nil {
				return fmt.Errorf("auth: jwt.key_file %s: key %d: %w", f, len(keys)+1, err)
			}
			keys = append(keys, key)
		}
		if len(keys) == 0 {
			return fmt.Errorf("auth: jwt.key_file %s: no PEM public key in it", f)
		}
	}
	v.keys.Store(&jwtKeys{set: jwt.VerificationKeySet{Keys: keys}, stamp: fileStamp(fi)})
	return nil
}

// fileStamp is what tells a changed file from the one read before.
func fileStamp(fi os.FileInfo) string {
	return fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
}

func (v *jwtVerifier) verify(token string) (Principal, error) {
	claims := jwt.MapClaims{}
	set := v.keys.Load().set
	_, err := v.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return set, nil })
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return Principal{}, unauthenticated("jwt: token expired")
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return Principal{}, unauthenticated("jwt: token not valid yet")
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			return Principal{}, unauthenticated("jwt: wrong audience")
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			return Principal{}, unauthenticated("jwt: wrong issuer")
		case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
			return Principal{}, unauthenticated("jwt: bad signature")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return Principal{}, unauthenticated("jwt: exp claim required")
		}
		return Principal{}, unauthenticated("jwt: invalid token")
	}
	pc := v.cfg.PrincipalClaim
	if pc == "" {
		pc = "sub"
	}
	name, _ := claims[pc].(string)
	if name == "" {
		return Principal{}, unauthenticated("jwt: claim %q (the principal) is missing or not a string", pc)
	}
	rc := v.cfg.RolesClaim
	if rc == "" {
		rc = "roles"
	}
	var roles []string
	if list, ok := claims[rc].([]any); ok {
		for _, r := range list {
			if s, ok := r.(string); ok {
				roles = append(roles, s)
			}
		}
	}
	return Principal{Name: name, Roles: roles, Via: "jwt"}, nil
}
