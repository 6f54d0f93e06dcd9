package server

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestPublishAuth: a Publish stream is authorized request by request like
// SendMessage — the publish grant on each request's channel, author_id
// filled from the principal or checked against it — and a refused request
// is answered PermissionDenied alone while the stream's other requests
// are stored. A caller without credentials gets no stream at all.
func TestPublishAuth(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune, authTune(t, pki.dir))
	leader := c.leader()
	m := pki.messenger(t, c.cfgs[leader].GRPCBindAddr)
	as := func(tok string) context.Context {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok), 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	for _, id := range []string{"general", "room-1"} {
		if _, err := m.CreateChannel(as(adminToken), &raftogramv1.CreateChannelRequest{ChannelId: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	// publish sends reqs on one stream and returns the answers by id.
	publish := func(ctx context.Context, reqs ...*raftogramv1.PublishRequest) (map[string]*raftogramv1.PublishResponse, error) {
		stream, err := m.Publish(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				break // the stream's error comes from Recv
			}
		}
		stream.CloseSend()
		got := map[string]*raftogramv1.PublishResponse{}
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				return got, nil
			}
			if err != nil {
				return got, err
			}
			got[r.GetClientMessageId()] = r
		}
	}
	req := func(ch, author, id string) *raftogramv1.PublishRequest {
		return &raftogramv1.PublishRequest{ChannelId: ch, AuthorId: author, Payload: []byte(id), ClientMessageId: id}
	}
	jwtBot := signJWT(t, []byte(jwtSecret), jwt.SigningMethodHS256,
		jwt.MapClaims{"sub": "room-bot", "iss": "test-issuer", "aud": "raftogram", "exp": time.Now().Add(time.Hour).Unix()})

	got, err := publish(as(jwtBot),
		req("room-1", "", "bot-ok"),           // author filled: room-bot
		req("general", "", "bot-outside"),     // outside room-*
		req("room-1", "admin", "bot-spoofs"),  // impersonation
		req("room-1", "room-bot", "bot-self"), // its own name
	)
	if err != nil {
		t.Fatalf("room-bot's stream: %v", err)
	}
	for id, want := range map[string]codes.Code{"bot-ok": codes.OK, "bot-outside": codes.PermissionDenied, "bot-spoofs": codes.PermissionDenied, "bot-self": codes.OK} {
		r := got[id]
		if r == nil {
			t.Fatalf("no answer for %s", id)
		}
		if code := status.FromProto(r.GetStatus()).Code(); code != want {
			t.Errorf("%s: %v (%v), want %v", id, code, r.GetStatus(), want)
		}
	}
	got, err = publish(as(readerToken), req("general", "", "reader-1"))
	if err != nil || status.FromProto(got["reader-1"].GetStatus()).Code() != codes.PermissionDenied {
		t.Errorf("reader publishes: %v, %v; want a PermissionDenied answer", got, err)
	}
	if _, err := publish(as("not-a-token"), req("general", "", "anon-1")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unknown token: %v, want Unauthenticated", err)
	}

	// Only the accepted requests were stored, with the principal as author.
	h, err := m.ReadHistory(as(adminToken), &raftogramv1.ReadHistoryRequest{ChannelId: "room-1"})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, msg := range h.GetMessages() {
		stored = append(stored, msg.GetClientMessageId()+"/"+msg.GetAuthorId())
	}
	if len(stored) != 2 || stored[0] != "bot-ok/room-bot" || stored[1] != "bot-self/room-bot" {
		t.Errorf("room-1 holds %v; want bot-ok and bot-self by room-bot", stored)
	}
	if h, err := m.ReadHistory(as(adminToken), &raftogramv1.ReadHistoryRequest{ChannelId: "general"}); err != nil || len(h.GetMessages()) != 0 {
		t.Errorf("general holds %v (%v); want nothing", h.GetMessages(), err)
	}
}
