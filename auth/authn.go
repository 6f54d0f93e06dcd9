package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

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
}

// NewAuthenticator returns the authenticator cfg describes, checking tokens
// against policy and recognizing the nodes peers by their certificates
// through pid. It returns an error when the JWT key cannot be read or
// parsed for its algorithm.
func NewAuthenticator(cfg config.Auth, policy *Policy, pid PeerIdentifier, peers []string) (*Authenticator, error) {
	a := &Authenticator{policy: policy, clientCerts: cfg.CertAuth, peers: peers, peerID: pid}
	if cfg.JWT.VerifyKeyFile != "" {
		v, err := newJWTVerifier(cfg.JWT)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
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

// jwtVerifier checks JWT bearer tokens.
type jwtVerifier struct {
	cfg    config.JWT
	key    any
	parser *jwt.Parser
}

func newJWTVerifier(cfg config.JWT) (*jwtVerifier, error) {
	b, err := os.ReadFile(cfg.VerifyKeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: jwt.key_file: %w", err)
	}
	v := &jwtVerifier{cfg: cfg}
	switch cfg.Algorithm {
	case "HS256":
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 32 {
			return nil, fmt.Errorf("auth: jwt.key_file %s: an HS256 secret needs at least 32 bytes, got %d", cfg.VerifyKeyFile, len(secret))
		}
		v.key = secret
	case "RS256":
		if v.key, err = jwt.ParseRSAPublicKeyFromPEM(b); err != nil {
			return nil, fmt.Errorf("auth: jwt.key_file %s: %w", cfg.VerifyKeyFile, err)
		}
	case "EdDSA":
		if v.key, err = jwt.ParseEdPublicKeyFromPEM(b); err != nil {
			return nil, fmt.Errorf("auth: jwt.key_file %s: %w", cfg.VerifyKeyFile, err)
		}
	default:
		return nil, fmt.Errorf("auth: jwt.algorithm %q is unknown", cfg.Algorithm)
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

func (v *jwtVerifier) verify(token string) (Principal, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return v.key, nil })
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
