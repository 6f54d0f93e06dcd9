package server

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestPublishRelayedByFollower: with forward_writes on, a follower relays a
// Publish stream to the leader. The follower's Guard authorizes each request
// and fills its author; a refused request is answered there and never
// reaches the leader (which trusts its peers), in its channel's turn; the
// relay keeps a small window (max_publish_inflight 4) without losing or
// reordering anything.
func TestPublishRelayedByFollower(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.tune, authTune(t, pki.dir), func(cfg *config.Config) {
		cfg.ForwardWrites = true
		cfg.Limits.MaxPublishInflight = 4
	})
	leader := c.leader()
	follower := (leader + 1) % 3
	m := pki.messenger(t, c.cfgs[follower].GRPCBindAddr)
	as := func(tok string) context.Context {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	for _, id := range []string{"general", "room-1", "room-2"} {
		if _, err := m.CreateChannel(as(adminToken), &raftogramv1.CreateChannelRequest{ChannelId: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	req := func(ch, author, id string) *raftogramv1.PublishRequest {
		return &raftogramv1.PublishRequest{ChannelId: ch, AuthorId: author, Payload: []byte(id), ClientMessageId: id}
	}
	// The stream: 200 requests over room-1 and room-2, with refusals mixed
	// in (general is outside room-bot's grant; "admin" is impersonation).
	var reqs []*raftogramv1.PublishRequest
	refused := map[string]bool{}
	for i := range 200 {
		ch := []string{"room-1", "room-2"}[i%2]
		switch {
		case i%25 == 7:
			r := req("general", "", fmt.Sprintf("out-%d", i))
			refused[r.ClientMessageId] = true
			reqs = append(reqs, r)
		case i%25 == 13:
			r := req(ch, "admin", fmt.Sprintf("spoof-%d", i))
			refused[r.ClientMessageId] = true
			reqs = append(reqs, r)
		}
		reqs = append(reqs, req(ch, "", fmt.Sprintf("%s-%d", ch, i)))
	}
	jwtBot := signJWT(t, []byte(jwtSecret), jwt.SigningMethodHS256,
		jwt.MapClaims{"sub": "room-bot", "iss": "test-issuer", "aud": "raftogram", "exp": time.Now().Add(time.Hour).Unix()})
	stream, err := m.Publish(as(jwtBot))
	if err != nil {
		t.Fatal(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	// Per channel, the answers must come in the order of the stream.
	wantOrder := map[string][]string{}
	for _, r := range reqs {
		wantOrder[r.ChannelId] = append(wantOrder[r.ChannelId], r.ClientMessageId)
	}
	gotOrder := map[string][]string{}
	lastSeq := map[string]uint64{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("relayed stream: %v", err)
		}
		id, ch := r.GetClientMessageId(), r.GetChannelId()
		gotOrder[ch] = append(gotOrder[ch], id)
		code := status.FromProto(r.GetStatus()).Code()
		switch {
		case refused[id] && code != codes.PermissionDenied:
			t.Errorf("%s: %v, want PermissionDenied", id, r.GetStatus())
		case !refused[id] && (code != codes.OK || r.GetSequence() != lastSeq[ch]+1):
			t.Errorf("%s: %v sequence %d, want OK and %d", id, r.GetStatus(), r.GetSequence(), lastSeq[ch]+1)
		case !refused[id]:
			lastSeq[ch] = r.GetSequence()
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
	for ch, want := range wantOrder {
		if fmt.Sprint(gotOrder[ch]) != fmt.Sprint(want) {
			t.Errorf("answers of %s in the order\n%v\nwant the stream's\n%v", ch, gotOrder[ch], want)
		}
	}
	// What the leader stored: the accepted requests only, by room-bot.
	for _, ch := range []string{"room-1", "room-2"} {
		h, err := m.ReadHistory(as(adminToken), &raftogramv1.ReadHistoryRequest{ChannelId: ch, Limit: 1000, Consistency: raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		if len(h.GetMessages()) != 100 {
			t.Fatalf("%s holds %d messages, want 100", ch, len(h.GetMessages()))
		}
		for _, msg := range h.GetMessages() {
			if msg.GetAuthorId() != "room-bot" || refused[msg.GetClientMessageId()] {
				t.Fatalf("%s holds %s by %s", ch, msg.GetClientMessageId(), msg.GetAuthorId())
			}
		}
	}
	if h, err := m.ReadHistory(as(adminToken), &raftogramv1.ReadHistoryRequest{ChannelId: "general", Consistency: raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil || len(h.GetMessages()) != 0 {
		t.Fatalf("general holds %v (%v); want nothing", h.GetMessages(), err)
	}
}
