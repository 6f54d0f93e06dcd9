package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSFiles names the PEM files of a TLS client: the CA that signs the
// nodes' certificates and, for clusters that authenticate clients by
// certificate, the client's certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

// LoadTLS returns the tls.Config for f: the nodes verified against f.CA
// (the system roots when empty) and f.Cert/f.Key presented when set. It
// returns an error naming the file that cannot be read or parsed, or when
// only one of Cert and Key is set.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		b, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("client: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("client: ca file %s: no PEM certificate", f.CA)
		}
		c.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("client: certificate %s / key %s: %w", f.Cert, f.Key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	case f.Cert != "" || f.Key != "":
		return nil, fmt.Errorf("client: a client certificate needs both the cert and the key file")
	}
	return c, nil
}

// bearer sends "authorization: Bearer <token>" with every call, over TLS
// only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// securityOptions returns the dial options for cfg.TLS and cfg.Token, or
// an error when a token is set without TLS (it would travel in clear).
func securityOptions(cfg Config) ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if cfg.TLS != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.Token != "" {
		if cfg.TLS == nil {
			return nil, fmt.Errorf("client: %w: a Token needs TLS (set Config.TLS), it would travel in clear", ErrInvalidArgument)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(cfg.Token)))
	}
	return opts, nil
}
