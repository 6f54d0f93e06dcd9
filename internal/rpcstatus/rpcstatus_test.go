package rpcstatus

import (
	"testing"

	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc/codes"
)

func TestTableInvertsForEveryDomainCode(t *testing.T) {
	for _, d := range []string{domain.EINVALID, domain.ENOTFOUND, domain.EUNAVAILABLE, domain.EINTERNAL, domain.EUNAUTHENTICATED, domain.EPERMISSION, domain.EEXISTS, domain.EEXHAUSTED} {
		got, ok := DomainCode(GRPCCode(d))
		if !ok || got != d {
			t.Errorf("DomainCode(GRPCCode(%q)) = %q, %v", d, got, ok)
		}
	}
	if c := GRPCCode("no-such-code"); c != codes.Internal {
		t.Errorf("unknown domain code maps to %v, want Internal", c)
	}
	if _, ok := DomainCode(codes.FailedPrecondition); ok {
		t.Error("FailedPrecondition has no domain code (NotLeader is set directly)")
	}
}
