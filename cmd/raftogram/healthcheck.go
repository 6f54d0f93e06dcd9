package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftogram/raftogram/internal/certs"
)

func init() {
	subcommands["healthcheck"] = healthcheck
	summaries["healthcheck"] = "probe whether a node is ready: GET /health and /readyz (the container HEALTHCHECK)"
}

// healthcheckDefaultAddr is probed when RAFTOGRAM_HEALTH_BIND_ADDR is unset;
// it is the default health_bind_addr.
const healthcheckDefaultAddr = "127.0.0.1:8080"

// healthcheckMaxBody bounds how much of a /health answer is read.
const healthcheckMaxBody = 1 << 20

// healthcheckStatus is the part of the GET /health body the check reads
// (see httpapi.Health).
type healthcheckStatus struct {
	NodeID         string `json:"node_id"`
	Role           string `json:"role"`
	IsLeader       bool   `json:"is_leader"`
	LeaderID       string `json:"leader_id"`
	LeaderGRPCAddr string `json:"leader_grpc_addr"`
	Term           uint64 `json:"term"`
	CommitIndex    uint64 `json:"commit_index"`
	AppliedIndex   uint64 `json:"applied_index"`
}

// healthcheck is `raftogram healthcheck [-addr host:port] [-timeout 2s]
// [-ca-file F] [-server-name N]`: it asks a node's GET /health, then GET
// /readyz (over TLS when -ca-file is given or the node's environment has
// tls.health on), and exits 0 when the node
// answers, knows a leader and is ready (applied close to the leader's
// commit index, projection healthy, data_dir writable with min_free_bytes
// free), 1 when it is not ready or cannot be asked, and 2 on a usage error.
// It prints a one-line summary: to stdout when healthy, to stderr
// otherwise. It is the container image's HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("raftogram healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", healthcheckAddrFromEnv(env),
		"health endpoint host:port (or an http:// URL) to query; default from RAFTOGRAM_HEALTH_BIND_ADDR with an empty or wildcard host replaced by 127.0.0.1, else "+healthcheckDefaultAddr)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	tlsOn := envBool(env, "RAFTOGRAM_TLS_HEALTH")
	caDefault := ""
	if tlsOn {
		caDefault = env["RAFTOGRAM_TLS_CA_FILE"]
	}
	caFile := fs.String("ca-file", caDefault,
		"speak HTTPS and verify the node's certificate against this CA bundle (PEM); default RAFTOGRAM_TLS_CA_FILE when RAFTOGRAM_TLS_HEALTH is true")
	serverName := fs.String("server-name", env["RAFTOGRAM_NODE_ID"],
		"with TLS, a name the node's certificate must carry (its node id); default RAFTOGRAM_NODE_ID, else the -addr host")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: raftogram healthcheck [-addr host:port] [-timeout 2s] [-ca-file F] [-server-name N]\n\n"+
			"Queries GET /health and GET /readyz of a node. Exit status: 0 when the\n"+
			"node answers, knows a leader and is ready (/readyz answers 200), 1 when\n"+
			"it answers without a leader, is not ready or cannot be reached, 2 on a\n"+
			"usage error. With -ca-file (or in a node's environment with\n"+
			"RAFTOGRAM_TLS_HEALTH=true) it speaks HTTPS and accepts only a\n"+
			"certificate from that CA that names -server-name.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "raftogram healthcheck: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "raftogram healthcheck: -timeout must be positive, got %v\n", *timeout)
		return 2
	}
	url, err := healthcheckURL(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "raftogram healthcheck: -addr %q: %v\n", *addr, err)
		return 2
	}
	var tlsCfg *tls.Config
	if *caFile != "" {
		url = "https://" + strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
		name := *serverName
		if name == "" {
			u, _ := neturl.Parse(url)
			name = u.Hostname()
		}
		if tlsCfg, err = healthcheckTLS(*caFile, name); err != nil {
			fmt.Fprintf(stderr, "raftogram healthcheck: -ca-file %q: %v\n", *caFile, err)
			return 2
		}
	}
	hc := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: tlsCfg},
		// /health and /readyz are never redirected; a redirect means
		// something else answers.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	st, err := healthcheckQuery(ctx, hc, url, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %s: %v\n", url, err)
		return 1
	}
	if st.LeaderID == "" {
		fmt.Fprintf(stderr, "unhealthy: %s is %s in term %d and knows no leader (applied %d, commit %d)\n",
			st.NodeID, st.Role, st.Term, st.AppliedIndex, st.CommitIndex)
		return 1
	}
	readyURL := strings.TrimSuffix(url, "/health") + "/readyz"
	if reasons, err := healthcheckReady(ctx, hc, readyURL, *timeout); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %s: %v\n", readyURL, err)
		return 1
	} else if reasons != "" {
		fmt.Fprintf(stderr, "unhealthy: %s is %s in term %d, leader %s, but not ready: %s\n",
			st.NodeID, st.Role, st.Term, st.LeaderID, reasons)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s is %s in term %d, leader %s at %s (applied %d, commit %d)\n",
		st.NodeID, st.Role, st.Term, st.LeaderID, st.LeaderGRPCAddr, st.AppliedIndex, st.CommitIndex)
	return 0
}

// healthcheckAddrFromEnv is the -addr default: the node's own
// RAFTOGRAM_HEALTH_BIND_ADDR, dialed on loopback when it binds every
// interface (empty host, 0.0.0.0 or ::).
func healthcheckAddrFromEnv(env map[string]string) string {
	bind := strings.TrimSpace(env["RAFTOGRAM_HEALTH_BIND_ADDR"])
	if bind == "" {
		return healthcheckDefaultAddr
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return bind // reported by healthcheckURL or the request
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// healthcheckURL turns -addr into the URL of the health endpoint.
func healthcheckURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		u := strings.TrimRight(addr, "/")
		if !strings.HasSuffix(u, "/health") {
			u += "/health"
		}
		return u, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("want host:port: %w", err)
	}
	if port == "" {
		return "", errors.New("want host:port: missing port")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health", nil
}

// envBool reports whether env[key] parses as true (strconv.ParseBool).
func envBool(env map[string]string, key string) bool {
	b, _ := strconv.ParseBool(strings.TrimSpace(env[key]))
	return b
}

// healthcheckTLS returns the TLS client configuration of a probe: the
// node's certificate must chain to a CA of caFile, be valid for server
// authentication, and name name (as a DNS name, URI, email or common name,
// as nodes name each other). It returns an error when caFile cannot be read
// or holds no certificate.
func healthcheckTLS(caFile, name string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in it")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified below against roots and name: nodes' certificates name
		// their node id, not necessarily the address dialed.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the node sent no certificate")
			}
			chain := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				if chain[i], err = x509.ParseCertificate(r); err != nil {
					return fmt.Errorf("the node's certificate: %w", err)
				}
			}
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("the node's certificate: %w", err)
			}
			if ids := certs.Identities(chain[0]); !slices.Contains(ids, name) {
				return fmt.Errorf("the node's certificate names %v, not %q", ids, name)
			}
			return nil
		},
	}, nil
}

// healthcheckQuery fetches and decodes one /health answer.
func healthcheckQuery(ctx context.Context, hc *http.Client, url string, timeout time.Duration) (healthcheckStatus, error) {
	code, body, err := healthcheckGet(ctx, hc, url, timeout)
	if err != nil {
		return healthcheckStatus{}, err
	}
	if code != http.StatusOK {
		return healthcheckStatus{}, fmt.Errorf("HTTP %d %s: %s", code, http.StatusText(code), healthcheckSnippet(body))
	}
	var st healthcheckStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return healthcheckStatus{}, fmt.Errorf("answer is not health JSON: %v: %s", err, healthcheckSnippet(body))
	}
	if st.NodeID == "" || st.Role == "" {
		return healthcheckStatus{}, fmt.Errorf("answer lacks node_id or role: %s", healthcheckSnippet(body))
	}
	return st, nil
}

// healthcheckGet sends GET url with hc within timeout and returns the
// status code and (at most healthcheckMaxBody of) the body.
func healthcheckGet(ctx context.Context, hc *http.Client, url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, nil, fmt.Errorf("no answer within %v", timeout)
		}
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in the message
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, healthcheckMaxBody))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

// healthcheckReady asks GET /readyz: it returns "" when the node is ready
// (200), the failed checks joined on one line when it is not (503), and an
// error when it cannot be asked or answers anything else.
func healthcheckReady(ctx context.Context, hc *http.Client, url string, timeout time.Duration) (string, error) {
	code, body, err := healthcheckGet(ctx, hc, url, timeout)
	if err != nil {
		return "", err
	}
	switch code {
	case http.StatusOK:
		return "", nil
	case http.StatusServiceUnavailable:
		var failed []string
		for _, line := range strings.Split(string(body), "\n") {
			if r, ok := strings.CutPrefix(line, "[-]"); ok {
				failed = append(failed, r)
			}
		}
		if len(failed) == 0 {
			return healthcheckSnippet(body), nil
		}
		return strings.Join(failed, "; "), nil
	}
	return "", fmt.Errorf("HTTP %d %s: %s", code, http.StatusText(code), healthcheckSnippet(body))
}

// healthcheckSnippet is a short single-line excerpt of a body for messages.
func healthcheckSnippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
