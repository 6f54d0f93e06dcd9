package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/domain"
)

func hash(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestPolicyRejectsBadRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config.Auth
		want string
	}{
		{"unknown role on a token", config.Auth{Tokens: []config.Token{{Principal: "a", SHA256: hash("t"), Roles: []string{"ghost"}}}}, `tokens[0]: unknown role "ghost"`},
		{"short hash", config.Auth{Tokens: []config.Token{{Principal: "a", SHA256: "abc"}}}, "sha256 must be 64 hex digits"},
		{"no principal", config.Auth{Tokens: []config.Token{{SHA256: hash("t")}}}, "tokens[0]: principal is empty"},
		{"same token twice", config.Auth{Tokens: []config.Token{{Principal: "a", SHA256: hash("t")}, {Principal: "b", SHA256: hash("t")}}}, "the same token is configured twice"},
		{"bad pattern", config.Auth{Roles: map[string]config.Grant{"r": {Read: []string{"room-["}}}}, `channel pattern "room-["`},
		{"nested roles", config.Auth{Roles: map[string]config.Grant{"r": {Roles: []string{"r"}}}}, "roles cannot include roles"},
		{"missing rules file", config.Auth{RulesFile: "/nonexistent/rules.yaml"}, "auth: rules_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPolicy(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewPolicy = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	p, err := NewPolicy(config.Auth{
		Roles: map[string]config.Grant{"reader": {Read: []string{"*"}}},
		Principals: map[string]config.Grant{
			"bot": {Roles: []string{"reader"}, Publish: []string{"room-*", "lobby"}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bot := Principal{Name: "bot", Via: "token"}
	for _, tc := range []struct {
		who  Principal
		a    Action
		ch   string
		want bool
	}{
		{bot, Publish, "room-1", true},
		{bot, Publish, "lobby", true},
		{bot, Publish, "lobby2", false},
		{bot, Read, "anything", true}, // through its role
		{bot, Create, "room-1", false},
		{bot, Admin, "", false},
		{Principal{Name: "x", Roles: []string{"reader"}}, Read, "a", true}, // role from the credential
		{Principal{Name: "x"}, Read, "a", false},
		{Principal{Name: "node2", Via: "peer"}, Admin, "", true},
	} {
		if got := p.Allowed(tc.who, tc.a, tc.ch); got != tc.want {
			t.Errorf("Allowed(%s, %s, %q) = %v, want %v", tc.who.Name, tc.a, tc.ch, got, tc.want)
		}
	}
}

func TestRulesFileReload(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "rules.yaml")
	writeRules := func(body string) {
		t.Helper()
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRules("tokens:\n  - {principal: alice, sha256: " + hash("one") + "}\n")
	p, err := NewPolicy(config.Auth{RulesFile: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{policy: p}
	if who, err := a.Authenticate(Credentials{Bearer: "one"}); err != nil || who.Name != "alice" {
		t.Fatalf("token one: %v %v", who, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); p.Watch(ctx, 10*time.Millisecond) }()

	// A broken file is refused; the old rules stay.
	writeRules("tokens: [ {principal: alice, sha256: nothex} ]\n")
	if err := p.Reload(); err == nil {
		t.Fatal("Reload accepted a broken rules file")
	}
	if _, err := a.Authenticate(Credentials{Bearer: "one"}); err != nil {
		t.Fatalf("old token refused after a failed reload: %v", err)
	}
	// Rotation: token two replaces token one, picked up by Watch.
	writeRules("tokens:\n  - {principal: alice, sha256: " + hash("two") + "}\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := a.Authenticate(Credentials{Bearer: "two"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the new rules")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := a.Authenticate(Credentials{Bearer: "one"}); domain.ErrorCode(err) != domain.EUNAUTHENTICATED {
		t.Fatalf("revoked token: %v, want EUNAUTHENTICATED", err)
	}
	cancel()
	<-done
}

func TestJWTAlgorithms(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := func(name string, pub any) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	claims := jwt.MapClaims{"sub": "svc", "roles": []string{"writer"}, "exp": time.Now().Add(time.Minute).Unix()}
	for _, tc := range []struct {
		alg    string
		key    string
		method jwt.SigningMethod
		sign   any
	}{
		{"RS256", pubPEM("rsa.pem", &rsaKey.PublicKey), jwt.SigningMethodRS256, rsaKey},
		{"EdDSA", pubPEM("ed.pem", edPub), jwt.SigningMethodEdDSA, edPriv},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			a, err := NewAuthenticator(config.Auth{JWT: config.JWT{VerifyKeyFile: tc.key, Algorithm: tc.alg}}, &Policy{cur: &rules{}}, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.NewWithClaims(tc.method, claims).SignedString(tc.sign)
			if err != nil {
				t.Fatal(err)
			}
			who, err := a.Authenticate(Credentials{Bearer: tok})
			if err != nil || who.Name != "svc" || len(who.Roles) != 1 || who.Roles[0] != "writer" || who.Via != "jwt" {
				t.Fatalf("Authenticate = %+v, %v", who, err)
			}
			// A token signed with HS256 using the public key as the
			// secret (the classic algorithm confusion) is refused.
			pub, _ := os.ReadFile(tc.key)
			forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pub)
			if _, err := a.Authenticate(Credentials{Bearer: forged}); domain.ErrorCode(err) != domain.EUNAUTHENTICATED {
				t.Fatalf("algorithm confusion: %v", err)
			}
		})
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthenticator(config.Auth{JWT: config.JWT{VerifyKeyFile: short, Algorithm: "HS256"}}, &Policy{cur: &rules{}}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("short HS256 secret: %v", err)
	}
}

// Rotating JWT keys: key_file may hold several PEM keys (a token verifies
// with any), is picked up by Watch when it changes and by Reload (SIGHUP),
// and a file that does not load keeps the keys in use.
func TestJWTKeyRotation(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "jwt.pub")
	type pair struct {
		pub  []byte
		sign ed25519.PrivateKey
	}
	newPair := func() pair {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pair{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), priv}
	}
	old, next := newPair(), newPair()
	write := func(parts ...[]byte) {
		t.Helper()
		if err := os.WriteFile(f, bytes.Join(parts, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	token := func(p pair) string {
		t.Helper()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(p.sign)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oldTok, nextTok := token(old), token(next)
	write(old.pub)
	authn, err := NewAuthenticator(config.Auth{JWT: config.JWT{VerifyKeyFile: f, Algorithm: "EdDSA"}}, &Policy{cur: &rules{}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(tok string) error {
		who, err := authn.Authenticate(Credentials{Bearer: tok})
		if err == nil && (who.Name != "svc" || who.Via != "jwt") {
			t.Fatalf("principal %+v", who)
		}
		return err
	}
	if err := check(oldTok); err != nil {
		t.Fatalf("token of the configured key: %v", err)
	}
	if err := check(nextTok); domain.ErrorCode(err) != domain.EUNAUTHENTICATED || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("token of a key not configured yet: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); authn.Watch(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	// Step 1 of a rotation: publish the new key beside the old one.
	write(old.pub, next.pub)
	deadline := time.Now().Add(10 * time.Second)
	for check(nextTok) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the second key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := check(oldTok); err != nil {
		t.Fatalf("old key's token during the overlap: %v", err)
	}

	// Files that do not load are refused and change nothing.
	for name, body := range map[string][]byte{
		"no key":            []byte("not pem\n"),
		"broken key":        append(append([]byte{}, next.pub...), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})...),
		"missing":           nil,
		"RSA key for EdDSA": rsaPublicPEM(t),
	} {
		if body == nil {
			os.Remove(f)
		} else {
			write(body)
		}
		if err := authn.Reload(); err == nil {
			t.Fatalf("%s: Reload accepted it", name)
		}
		if check(oldTok) != nil || check(nextTok) != nil {
			t.Fatalf("%s: the keys in use changed after a failed reload", name)
		}
	}

	// Step 2: drop the old key (SIGHUP path).
	write(next.pub)
	if err := authn.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := check(oldTok); domain.ErrorCode(err) != domain.EUNAUTHENTICATED {
		t.Fatalf("token of the retired key: %v", err)
	}
	if err := check(nextTok); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
}

// rsaPublicPEM returns an RSA public key in PEM, which an EdDSA key_file
// must refuse.
func rsaPublicPEM(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
