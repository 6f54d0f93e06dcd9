package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	adminToken  = "admin-token-0123456789abcdef"
	writerToken = "writer-token-0123456789abcdef"
	readerToken = "reader-token-0123456789abcdef"
	jwtSecret   = "a-shared-secret-of-at-least-32-bytes!!"
)

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// authTune turns on token, JWT (HS256) and client-certificate auth with
// the admin/writer/reader roles of `make dev-cluster-secure`, plus a
// principal "room-bot" that may only publish to room-*.
func authTune(t *testing.T, dir string) tune {
	secret := filepath.Join(dir, "jwt.secret")
	write(t, secret, []byte(jwtSecret))
	return func(c *config.Config) {
		c.Auth = config.Auth{
			CertAuth: true,
			JWT:      config.JWT{VerifyKeyFile: secret, Algorithm: "HS256", Issuer: "test-issuer", Audience: "raftogram"},
			Tokens: []config.Token{
				{Principal: "admin", SHA256: sha(adminToken), Roles: []string{"admin"}},
				{Principal: "writer", SHA256: sha(writerToken), Roles: []string{"writer"}},
				{Principal: "reader", SHA256: sha(readerToken), Roles: []string{"reader"}},
			},
			Roles: map[string]config.Grant{
				"admin":  {Create: []string{"*"}, Publish: []string{"*"}, Read: []string{"*"}, Admin: true, Impersonate: true},
				"writer": {Create: []string{"*"}, Publish: []string{"*"}, Read: []string{"*"}},
				"reader": {Read: []string{"*"}},
			},
			Principals: map[string]config.Grant{
				"room-bot": {Publish: []string{"room-*"}, Read: []string{"room-*"}},
			},
		}
	}
}

func signJWT(t *testing.T, key any, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuthRefusals is the negative table of the security issue: each call
// gets its exact status and leaves the projection as it was.
func TestAuthRefusals(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune, authTune(t, pki.dir))
	leader := c.leader()
	addr := c.cfgs[leader].GRPCBindAddr

	pool := x509.NewCertPool()
	pool.AddCert(pki.ca.Cert)
	dial := func(certs ...tls.Certificate) raftogramv1.MessengerClient {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: certs})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return raftogramv1.NewMessengerClient(conn)
	}
	anon := dial()
	withCert := dial(pki.clientCert) // principal "alice": no grants
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}
	now := time.Now()
	goodClaims := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "room-bot", "iss": "test-issuer", "aud": "raftogram", "exp": now.Add(time.Hour).Unix()}
	}
	claims := func(f func(jwt.MapClaims)) jwt.MapClaims { m := goodClaims(); f(m); return m }
	hs := jwt.SigningMethodHS256
	jwtOK := signJWT(t, []byte(jwtSecret), hs, goodClaims())

	// Set up as admin.
	ctx, cancel := context.WithTimeout(bearer(adminToken), 20*time.Second)
	defer cancel()
	for _, id := range []string{"general", "room-1"} {
		if _, err := anon.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: id, Name: id}); err != nil {
			t.Fatalf("admin creates %s: %v", id, err)
		}
	}
	if _, err := anon.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "admin", Payload: []byte("x"), ClientMessageId: "m1"}); err != nil {
		t.Fatalf("admin sends: %v", err)
	}
	c.converged()
	before, err := c.servers[leader].Store().Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	send := func(ch, author string) func(context.Context, raftogramv1.MessengerClient) error {
		return func(ctx context.Context, m raftogramv1.MessengerClient) error {
			_, err := m.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: ch, AuthorId: author, Payload: []byte("evil"), ClientMessageId: "evil-" + ch + author})
			return err
		}
	}
	// The admin's id m1, reused by another principal (author filled with it).
	takeM1 := func(ctx context.Context, m raftogramv1.MessengerClient) error {
		_, err := m.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", Payload: []byte("x"), ClientMessageId: "m1"})
		return err
	}
	read := func(ch string) func(context.Context, raftogramv1.MessengerClient) error {
		return func(ctx context.Context, m raftogramv1.MessengerClient) error {
			_, err := m.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: ch})
			return err
		}
	}
	subscribe := func(ch string) func(context.Context, raftogramv1.MessengerClient) error {
		return func(ctx context.Context, m raftogramv1.MessengerClient) error {
			st, err := m.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: ch})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}
	}
	create := func(ch string) func(context.Context, raftogramv1.MessengerClient) error {
		return func(ctx context.Context, m raftogramv1.MessengerClient) error {
			_, err := m.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: ch, Name: ch})
			return err
		}
	}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		cl   raftogramv1.MessengerClient
		call func(context.Context, raftogramv1.MessengerClient) error
		want codes.Code
	}{
		{"no credentials", context.Background(), anon, send("general", "x"), codes.Unauthenticated},
		{"unknown token", bearer("not-a-token"), anon, send("general", "x"), codes.Unauthenticated},
		{"jwt expired", bearer(signJWT(t, []byte(jwtSecret), hs, claims(func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Minute).Unix() }))), anon, send("room-1", ""), codes.Unauthenticated},
		{"jwt not yet valid", bearer(signJWT(t, []byte(jwtSecret), hs, claims(func(m jwt.MapClaims) { m["nbf"] = now.Add(time.Hour).Unix() }))), anon, send("room-1", ""), codes.Unauthenticated},
		{"jwt wrong audience", bearer(signJWT(t, []byte(jwtSecret), hs, claims(func(m jwt.MapClaims) { m["aud"] = "someone-else" }))), anon, send("room-1", ""), codes.Unauthenticated},
		{"jwt wrong issuer", bearer(signJWT(t, []byte(jwtSecret), hs, claims(func(m jwt.MapClaims) { m["iss"] = "mallory" }))), anon, send("room-1", ""), codes.Unauthenticated},
		{"jwt bad signature", bearer(signJWT(t, []byte("another-secret-of-at-least-32-bytes!!"), hs, goodClaims())), anon, send("room-1", ""), codes.Unauthenticated},
		{"jwt without exp", bearer(signJWT(t, []byte(jwtSecret), hs, claims(func(m jwt.MapClaims) { delete(m, "exp") }))), anon, send("room-1", ""), codes.Unauthenticated},
		{"jwt alg none", bearer(signJWT(t, jwt.UnsafeAllowNoneSignatureType, jwt.SigningMethodNone, goodClaims())), anon, send("room-1", ""), codes.Unauthenticated},
		{"reader publishes", bearer(readerToken), anon, send("general", "reader"), codes.PermissionDenied},
		{"reader creates", bearer(readerToken), anon, create("new-one"), codes.PermissionDenied},
		{"writer spoofs the author", bearer(writerToken), anon, send("general", "admin"), codes.PermissionDenied},
		{"jwt principal outside its pattern", bearer(jwtOK), anon, send("general", ""), codes.PermissionDenied},
		{"jwt principal reads outside its pattern", bearer(jwtOK), anon, read("general"), codes.PermissionDenied},
		{"jwt principal subscribes outside its pattern", bearer(jwtOK), anon, subscribe("general"), codes.PermissionDenied},
		{"client cert without grants publishes", context.Background(), withCert, send("general", "alice"), codes.PermissionDenied},
		{"client cert without grants reads", context.Background(), withCert, read("general"), codes.PermissionDenied},
		{"bad token beats a good cert", bearer("not-a-token"), withCert, read("general"), codes.Unauthenticated},
		{"idempotency conflict: writer reuses the admin's client_message_id", bearer(writerToken), anon, takeM1, codes.AlreadyExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(tc.ctx, 10*time.Second)
			defer cancel()
			err := tc.call(ctx, tc.cl)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
			if d, err := c.servers[leader].Store().Digest(context.Background()); err != nil || d != before {
				t.Fatalf("state changed (%v)", err)
			}
		})
	}

	// The Admin and Peer services are closed to non-admins and non-peers.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	actx, acancel := context.WithTimeout(bearer(writerToken), 10*time.Second)
	defer acancel()
	if _, err := raftogramv1.NewAdminClient(conn).GetNodeStatus(actx, &raftogramv1.GetNodeStatusRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("writer runs an admin RPC: %v", err)
	}
	if _, err := raftogramv1.NewAdminClient(conn).GetNodeStatus(bearerCtx(t, adminToken), &raftogramv1.GetNodeStatusRequest{}); err != nil {
		t.Fatalf("admin runs an admin RPC: %v", err)
	}
}

func bearerCtx(t *testing.T, tok string) context.Context {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAuthIdentity shows who the log records: the author is the caller's
// principal when left empty, an admin may impersonate, a JWT principal may
// publish inside its pattern, and a write forwarded by a follower keeps
// the caller's identity.
func TestAuthIdentity(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune, authTune(t, pki.dir), func(c *config.Config) { c.ForwardWrites = true })
	leader := c.leader()
	follower := (leader + 1) % 3
	m := pki.messenger(t, c.cfgs[follower].GRPCBindAddr)
	jwtOK := signJWT(t, []byte(jwtSecret), jwt.SigningMethodHS256, jwt.MapClaims{"sub": "room-bot", "iss": "test-issuer", "aud": "raftogram", "exp": time.Now().Add(time.Hour).Unix()})

	if _, err := m.CreateChannel(bearerCtx(t, adminToken), &raftogramv1.CreateChannelRequest{ChannelId: "room-1", Name: "Room"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		tok, author, want string
	}{
		{writerToken, "", "writer"},        // filled in from the principal
		{writerToken, "writer", "writer"},  // its own name is fine
		{adminToken, "someone", "someone"}, // admin may impersonate
		{jwtOK, "", "room-bot"},            // a JWT principal in its pattern
	} {
		if _, err := m.SendMessage(bearerCtx(t, s.tok), &raftogramv1.SendMessageRequest{ChannelId: "room-1", AuthorId: s.author, Payload: []byte(s.want)}); err != nil {
			t.Fatalf("send as %s: %v", s.want, err)
		}
	}
	h, err := m.ReadHistory(bearerCtx(t, readerToken), &raftogramv1.ReadHistoryRequest{ChannelId: "room-1", Consistency: raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatal(err)
	}
	var authors []string
	for _, msg := range h.Messages {
		authors = append(authors, msg.AuthorId)
		if msg.AuthorId != string(msg.Payload) {
			t.Errorf("message %d: author %q, want %q", msg.Sequence, msg.AuthorId, msg.Payload)
		}
	}
	if len(authors) != 4 {
		t.Fatalf("authors = %q, want 4 messages", authors)
	}
	// A list shows only what the caller may read.
	cctx := bearerCtx(t, adminToken)
	if _, err := m.CreateChannel(cctx, &raftogramv1.CreateChannelRequest{ChannelId: "secret", Name: "S"}); err != nil {
		t.Fatal(err)
	}
	lc, err := m.ListChannels(bearerCtx(t, jwtOK), &raftogramv1.ListChannelsRequest{Consistency: raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Channels) != 1 || lc.Channels[0].ChannelId != "room-1" {
		t.Fatalf("room-bot lists %v, want only room-1", lc.Channels)
	}

	// The Go client: TLS from the CA file plus a token; typed errors for
	// a missing token; and no token over plaintext.
	tc, err := client.LoadTLS(client.TLSFiles{CA: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tok := range []string{writerToken, ""} {
		cl, err := client.New(ctx, client.Config{Addrs: []string{c.cfgs[follower].GRPCBindAddr}, TLS: tc, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Send(ctx, client.SendRequest{ChannelID: "room-1", Payload: []byte("via client")})
		cl.Close()
		if tok != "" && err != nil {
			t.Fatalf("client with a writer token: %v", err)
		}
		if tok == "" && !errors.Is(err, client.ErrUnauthenticated) {
			t.Fatalf("client without a token: %v, want ErrUnauthenticated", err)
		}
	}
	if _, err := client.New(ctx, client.Config{Addrs: []string{"127.0.0.1:1"}, Token: writerToken}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("a token without TLS: %v, want ErrInvalidArgument", err)
	}
}

// TestJWTKeyReload: the node's Reload (the SIGHUP path) swaps in a new
// jwt.key_file; tokens of the old secret are refused from then on, and a
// key file that does not load leaves the current key in use.
func TestJWTKeyReload(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 1, pki.tune, authTune(t, pki.dir))
	c.leader()
	m := pki.messenger(t, c.cfgs[0].GRPCBindAddr)
	if _, err := m.CreateChannel(bearerCtx(t, adminToken), &raftogramv1.CreateChannelRequest{ChannelId: "room-1", Name: "Room"}); err != nil {
		t.Fatal(err)
	}
	send := func(secret string) error {
		tok := signJWT(t, []byte(secret), jwt.SigningMethodHS256, jwt.MapClaims{"sub": "room-bot", "iss": "test-issuer", "aud": "raftogram", "exp": time.Now().Add(time.Hour).Unix()})
		_, err := m.SendMessage(bearerCtx(t, tok), &raftogramv1.SendMessageRequest{ChannelId: "room-1", Payload: []byte("hi")})
		return err
	}
	const rotated = "the-next-shared-secret-of-32-bytes-or-more"
	if err := send(jwtSecret); err != nil {
		t.Fatalf("token of the configured secret: %v", err)
	}
	if err := send(rotated); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("token of a secret not configured yet: %v", err)
	}
	keyFile := c.cfgs[0].Auth.JWT.VerifyKeyFile
	write(t, keyFile, []byte("short"))
	if err := c.servers[0].Reload(); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("Reload of a short secret: %v", err)
	}
	if err := send(jwtSecret); err != nil {
		t.Fatalf("the current secret after a failed reload: %v", err)
	}
	write(t, keyFile, []byte(rotated))
	if err := c.servers[0].Reload(); err != nil {
		t.Fatal(err)
	}
	if err := send(rotated); err != nil {
		t.Fatalf("token of the rotated secret: %v", err)
	}
	if err := send(jwtSecret); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("token of the retired secret: %v", err)
	}
}
