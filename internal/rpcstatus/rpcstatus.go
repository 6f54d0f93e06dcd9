// Package rpcstatus is the one table between the domain's error codes and
// gRPC status codes. The server (grpcapi) reads it forwards to answer
// clients; the Go client (client) reads it backwards to turn statuses into
// typed errors, so the two can never disagree.
package rpcstatus

import (
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc/codes"
)

// table maps each domain error code to the gRPC code clients see. Every
// gRPC code appears at most once, so the table inverts.
var table = map[string]codes.Code{
	domain.EINVALID:     codes.InvalidArgument,
	domain.ENOTFOUND:    codes.NotFound,
	domain.EUNAVAILABLE: codes.Unavailable,
	domain.EINTERNAL:    codes.Internal,

	domain.EUNAUTHENTICATED: codes.Unauthenticated,
	domain.EPERMISSION:      codes.PermissionDenied,

	domain.EEXISTS:    codes.AlreadyExists,
	domain.EEXHAUSTED: codes.ResourceExhausted,
	domain.ETRIMMED:   codes.OutOfRange,
}

var inverse = func() map[codes.Code]string {
	m := make(map[codes.Code]string, len(table))
	for d, c := range table {
		if _, dup := m[c]; dup {
			panic("rpcstatus: two domain codes map to gRPC code " + c.String())
		}
		m[c] = d
	}
	return m
}()

// GRPCCode returns the gRPC code for a domain error code; codes.Internal for
// a code the table does not know.
func GRPCCode(domainCode string) codes.Code {
	if c, ok := table[domainCode]; ok {
		return c
	}
	return codes.Internal
}

// DomainCode returns the domain error code a gRPC code stands for, and
// false when the table has no entry for it (OK, Canceled,
// FailedPrecondition and the other codes the server sets directly).
func DomainCode(c codes.Code) (string, bool) {
	d, ok := inverse[c]
	return d, ok
}
