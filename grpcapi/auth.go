package grpcapi

import (
	"context"
	"log/slog"
	"strings"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/auth"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Guard authenticates every call and authorizes it against the policy
// before its handler runs (config auth:). A method it has no rule for is
// refused: new RPCs are closed until given one.
type Guard struct {
	authn  *auth.Authenticator
	policy *auth.Policy
	log    *slog.Logger
}

// NewGuard returns a Guard over an authenticator and a policy.
func NewGuard(a *auth.Authenticator, p *auth.Policy, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{authn: a, policy: p, log: log}
}

// ServerOptions returns the interceptors that put g in front of every
// handler.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream)}
}

// rule says what a method needs.
type rule struct {
	open     bool        // no credentials needed (health probes)
	peerOnly bool        // only other nodes of the cluster
	action   auth.Action // checked on the request's channel (or cluster-wide for Admin)
	perCall  bool        // the handler's request decides (ListChannels filters)
	perItem  bool        // a stream whose refused requests are answered one by one (Publish)
}

// refusedItem is what authStream.RecvMsg returns for a request of a
// perItem stream that the policy refuses: the request was read (the
// message holds it) and the handler answers it alone with err's status.
type refusedItem struct{ err error }

func (r *refusedItem) Error() string { return r.err.Error() }
func (r *refusedItem) Unwrap() error { return r.err }

const (
	messenger = "/raftogram.v1.Messenger/"
	admin     = "/raftogram.v1.Admin/"
	peerSvc   = "/raftogram.peer.v1.Peer/"
)

// ruleFor returns the rule of a full method name and false when there is
// none.
func ruleFor(method string) (rule, bool) {
	switch {
	case strings.HasPrefix(method, "/grpc.health.v1.Health/"):
		return rule{open: true}, true
	case strings.HasPrefix(method, "/grpc.reflection."):
		return rule{perCall: true}, true
	case strings.HasPrefix(method, admin):
		return rule{action: auth.Admin}, true
	case strings.HasPrefix(method, peerSvc):
		return rule{peerOnly: true}, true
	}
	switch strings.TrimPrefix(method, messenger) {
	case "CreateChannel":
		return rule{action: auth.Create}, true
	case "UpdateChannel", "DeleteChannel", "RedactMessage":
		// Managing a channel and moderating it: whoever may create the id.
		return rule{action: auth.Create}, true
	case "SendMessage":
		return rule{action: auth.Publish}, true
	case "Publish":
		// Each request as a SendMessage; a refused one is answered alone.
		return rule{action: auth.Publish, perItem: true}, true
	case "ReadHistory", "GetChannel", "Subscribe":
		return rule{action: auth.Read}, true
	case "ListChannels":
		return rule{perCall: true}, true
	}
	return rule{}, false
}

func permissionDenied(format string, args ...any) error {
	return domain.Errorf(domain.EPERMISSION, format, args...)
}

// credentialsOf extracts a call's bearer token and verified client chain.
func credentialsOf(ctx context.Context) auth.Credentials {
	var c auth.Credentials
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			if scheme, tok, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
				c.Bearer = strings.TrimSpace(tok)
				break
			}
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			c.Chain = ti.State.VerifiedChains[0]
		}
	}
	return c
}

// admit authenticates the call and checks the method-level rule, returning
// the context carrying the principal.
func (g *Guard) admit(ctx context.Context, method string) (context.Context, rule, error) {
	r, ok := ruleFor(method)
	if !ok {
		return ctx, r, permissionDenied("%s has no authorization rule", method)
	}
	if r.open {
		return ctx, r, nil
	}
	who, err := g.authn.Authenticate(credentialsOf(ctx))
	if err != nil {
		return ctx, r, err
	}
	ctx = auth.WithPrincipal(ctx, who)
	SetPrincipal(ctx, who.Name) // for the access log
	if r.peerOnly && who.Via != "peer" {
		return ctx, r, permissionDenied("%s is for cluster peers only", method)
	}
	if r.action == auth.Admin && !g.policy.Allowed(who, auth.Admin, "") {
		return ctx, r, permissionDenied("principal %q may not run cluster operations (admin)", who.Name)
	}
	return ctx, r, nil
}

// authorize checks a request against the rule and, for a send, fills or
// checks its author. It changes nothing else.
func (g *Guard) authorize(ctx context.Context, r rule, req any) error {
	who, ok := auth.FromContext(ctx)
	if !ok || r.peerOnly || r.action == auth.Admin || r.perCall {
		return nil
	}
	cr, ok := req.(interface{ GetChannelId() string })
	if !ok {
		return permissionDenied("request names no channel")
	}
	ch := cr.GetChannelId()
	if !g.policy.Allowed(who, r.action, ch) {
		return permissionDenied("principal %q may not %s channel %q", who.Name, r.action, ch)
	}
	var author *string
	switch m := req.(type) {
	case *raftogramv1.SendMessageRequest:
		author = &m.AuthorId
	case *raftogramv1.PublishRequest:
		author = &m.AuthorId
	}
	if author != nil && who.Via != "peer" {
		switch {
		case *author == "":
			*author = who.Name
		case *author != who.Name && !g.policy.Allowed(who, auth.Impersonate, ""):
			return permissionDenied("author_id %q is not principal %q (impersonate not allowed)", *author, who.Name)
		}
	}
	return nil
}

func (g *Guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, r, err := g.admit(ctx, info.FullMethod)
	if err == nil {
		err = g.authorize(ctx, r, req)
	}
	if err != nil {
		return nil, g.refuse(ctx, info.FullMethod, err)
	}
	resp, err := handler(ctx, req)
	if lc, ok := resp.(*raftogramv1.ListChannelsResponse); ok && err == nil {
		g.filterChannels(ctx, lc)
	}
	return resp, err
}

// filterChannels drops the channels the caller may not read from a list.
func (g *Guard) filterChannels(ctx context.Context, lc *raftogramv1.ListChannelsResponse) {
	who, ok := auth.FromContext(ctx)
	if !ok {
		return
	}
	kept := lc.Channels[:0]
	for _, c := range lc.Channels {
		if g.policy.Allowed(who, auth.Read, c.GetChannelId()) {
			kept = append(kept, c)
		}
	}
	lc.Channels = kept
}

func (g *Guard) refuse(ctx context.Context, method string, err error) error {
	who, _ := auth.FromContext(ctx)
	remote := ""
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	g.log.Info("call refused", "method", method, "principal", who.Name, "remote", remote, "reason", domain.ErrorMessage(err))
	return toStatus(g.log, method, err)
}

func (g *Guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, r, err := g.admit(ss.Context(), info.FullMethod)
	if err != nil {
		return g.refuse(ctx, info.FullMethod, err)
	}
	return handler(srv, &authStream{ServerStream: ss, ctx: ctx, g: g, r: r, method: info.FullMethod})
}

// authStream authorizes every request a stream receives.
type authStream struct {
	grpc.ServerStream
	ctx    context.Context
	g      *Guard
	r      rule
	method string
}

func (s *authStream) Context() context.Context { return s.ctx }

func (s *authStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := s.g.authorize(s.ctx, s.r, m); err != nil {
		if s.r.perItem {
			return &refusedItem{err: s.g.refuse(s.ctx, s.method, err)}
		}
		return s.g.refuse(s.ctx, s.method, err)
	}
	return nil
}
