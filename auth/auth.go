// Package auth decides who is calling and what they may do: it
// authenticates a gRPC call from its bearer token (a static token stored
// hashed, or a JWT) or its verified client certificate, and authorizes
// actions on channels against roles and per-principal grants with glob
// patterns. Rules come from the node's config and an optional rules file
// that is re-read on change or on demand (SIGHUP).
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftogram/raftogram/config"
	"gopkg.in/yaml.v3"
)

// Action is something a principal may be allowed to do.
type Action int

// The actions of the permission model.
const (
	// Create a channel (checked against the channel id).
	Create Action = iota
	// Publish messages to a channel.
	Publish
	// Read a channel: history, info, list, subscribe.
	Read
	// Admin: cluster operations.
	Admin
	// Impersonate: send with another author_id.
	Impersonate
)

func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Publish:
		return "publish"
	case Read:
		return "read"
	case Admin:
		return "admin"
	case Impersonate:
		return "impersonate"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Principal is an authenticated caller.
type Principal struct {
	// Name is who the caller is: the token's principal, the JWT's subject
	// claim, or the client certificate's identity.
	Name string
	// Roles the credential carries (tokens and JWTs).
	Roles []string
	// Via says how it authenticated: "token", "jwt", "cert" or "peer".
	Via string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries and whether it carries one.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// rules is one compiled, consistent set of tokens, roles and principals.
type rules struct {
	tokens     map[[32]byte]config.Token
	roles      map[string]config.Grant
	principals map[string]config.Grant
	stamp      string
}

// Policy authorizes principals. It is safe for concurrent use; Reload
// swaps the rules atomically.
type Policy struct {
	cfg config.Auth
	log *slog.Logger

	mu  sync.RWMutex
	cur *rules
}

// NewPolicy compiles the rules of cfg and its rules file. It returns an
// error listing every problem: an unreadable or malformed rules file, a
// token without principal or with a hash that is not 64 hex digits, the
// same hash twice, a reference to an unknown role, a malformed channel
// pattern. log may be nil.
func NewPolicy(cfg config.Auth, log *slog.Logger) (*Policy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Policy{cfg: cfg, log: log}
	r, err := p.compile()
	if err != nil {
		return nil, err
	}
	p.cur = r
	return p, nil
}

// rulesFile is the shape of auth.rules_file.
type rulesFile struct {
	Tokens     []config.Token          `yaml:"tokens"`
	Roles      map[string]config.Grant `yaml:"roles"`
	Principals map[string]config.Grant `yaml:"principals"`
}

func (p *Policy) compile() (*rules, error) {
	tokens := slices.Clone(p.cfg.Tokens)
	roles := map[string]config.Grant{}
	principals := map[string]config.Grant{}
	var errs []error
	merge := func(where string, src, dst map[string]config.Grant) {
		for k, v := range src {
			if _, dup := dst[k]; dup {
				errs = append(errs, fmt.Errorf("auth: %s: %q is defined twice", where, k))
			}
			dst[k] = v
		}
	}
	merge("roles", p.cfg.Roles, roles)
	merge("principals", p.cfg.Principals, principals)
	stamp := ""
	if f := p.cfg.RulesFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("auth: rules_file: %w", err)
		}
		if fi, err := os.Stat(f); err == nil {
			stamp = fileStamp(fi)
		}
		var rf rulesFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&rf); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("auth: rules_file %s: %w", f, err)
		}
		tokens = append(tokens, rf.Tokens...)
		merge("rules_file roles", rf.Roles, roles)
		merge("rules_file principals", rf.Principals, principals)
	}
	r := &rules{tokens: map[[32]byte]config.Token{}, roles: roles, principals: principals, stamp: stamp}
	checkGrant := func(where string, g config.Grant) {
		for _, role := range g.Roles {
			if _, ok := roles[role]; !ok {
				errs = append(errs, fmt.Errorf("auth: %s: unknown role %q", where, role))
			}
		}
		for _, pats := range [][]string{g.Create, g.Publish, g.Read} {
			for _, pat := range pats {
				if _, err := path.Match(pat, ""); err != nil {
					errs = append(errs, fmt.Errorf("auth: %s: channel pattern %q: %w", where, pat, err))
				}
			}
		}
	}
	for name, g := range roles {
		if len(g.Roles) > 0 {
			errs = append(errs, fmt.Errorf("auth: role %q: roles cannot include roles", name))
		}
		checkGrant("role "+name, g)
	}
	for name, g := range principals {
		checkGrant("principal "+name, g)
	}
	for i, t := range tokens {
		where := fmt.Sprintf("tokens[%d]", i)
		if t.Principal == "" {
			errs = append(errs, fmt.Errorf("auth: %s: principal is empty", where))
		}
		h, err := hex.DecodeString(t.SHA256)
		if err != nil || len(h) != sha256.Size {
			errs = append(errs, fmt.Errorf("auth: %s (%s): sha256 must be 64 hex digits (the SHA-256 of the token, e.g. `printf %%s TOKEN | sha256sum`)", where, t.Principal))
			continue
		}
		var k [32]byte
		copy(k[:], h)
		if _, dup := r.tokens[k]; dup {
			errs = append(errs, fmt.Errorf("auth: %s (%s): the same token is configured twice", where, t.Principal))
		}
		r.tokens[k] = t
		checkGrant(where, config.Grant{Roles: t.Roles})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Reload re-reads the rules file and swaps the rules in when they compile;
// otherwise the previous rules stay and the error says why.
func (p *Policy) Reload() error {
	r, err := p.compile()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
	p.log.Info("auth rules reloaded", "tokens", len(r.tokens), "roles", len(r.roles), "principals", len(r.principals))
	return nil
}

// Watch polls the rules file every interval and reloads it when it changes,
// until ctx ends. A failed reload is logged; the previous rules stay.
func (p *Policy) Watch(ctx context.Context, interval time.Duration) {
	if p.cfg.RulesFile == "" {
		return
	}
	watchFile(ctx, p.cfg.RulesFile, p.current().stamp, interval, func() {
		if err := p.Reload(); err != nil {
			p.log.Error("auth rules_file changed but does not load; keeping the previous rules", "error", err)
		}
	})
}

func (p *Policy) current() *rules {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cur
}

// token returns the static token whose SHA-256 matches secret.
func (p *Policy) token(secret string) (config.Token, bool) {
	sum := sha256.Sum256([]byte(secret))
	r := p.current()
	t, ok := r.tokens[sum]
	if ok {
		// The map lookup already compared the hash; compare again in
		// constant time so the hit is not a timing oracle.
		want, _ := hex.DecodeString(t.SHA256)
		ok = subtle.ConstantTimeCompare(want, sum[:]) == 1
	}
	return t, ok
}

// Allowed reports whether p may do a on channelID (ignored for Admin and
// Impersonate). Peers (other nodes of the cluster) may do everything.
func (p *Policy) Allowed(who Principal, a Action, channelID string) bool {
	if who.Via == "peer" {
		return true
	}
	r := p.current()
	grants := make([]config.Grant, 0, 1+len(who.Roles))
	pg, hasPrincipal := r.principals[who.Name]
	if hasPrincipal {
		grants = append(grants, pg)
	}
	for _, role := range append(slices.Clone(who.Roles), pg.Roles...) {
		if g, ok := r.roles[role]; ok {
			grants = append(grants, g)
		}
	}
	for _, g := range grants {
		if allows(g, a, channelID) {
			return true
		}
	}
	return false
}

func allows(g config.Grant, a Action, channelID string) bool {
	var pats []string
	switch a {
	case Admin:
		return g.Admin
	case Impersonate:
		return g.Impersonate
	case Create:
		pats = g.Create
	case Publish:
		pats = g.Publish
	case Read:
		pats = g.Read
	}
	for _, pat := range pats {
		if ok, _ := path.Match(pat, channelID); ok {
			return true
		}
	}
	return false
}
