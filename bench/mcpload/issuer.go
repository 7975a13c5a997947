package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuerConfig is the parsed command line of `mcpload issuer`.
type issuerConfig struct {
	listen   string
	out      string
	sub      string
	clientID string
	aud      string
	scope    string
	ttl      time.Duration
	lifetime time.Duration
}

const issuerUsage = `usage: mcpload issuer -listen 127.0.0.1:PORT -out FILE -sub USER -client-id AGENT -aud URL [flags]

Acts as a minimal external token issuer on a loopback address, so that load
can be run through a gateway that authenticates (Mandate's auth mode
external): it serves a JSON Web Key Set at /jwks and OpenID Connect and
OAuth authorization server metadata naming it, signs one ES256 access token
(typ at+jwt) with the given subject, client_id, audience and scope, writes
it to -out, prints the issuer URL, and serves until interrupted or until
-lifetime has passed.

`

// runIssuerCommand runs `mcpload issuer` and returns the exit status.
func runIssuerCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseIssuerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mcpload issuer:", err)
		return 2
	}
	if err := runIssuer(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "mcpload issuer:", err)
		return 1
	}
	return 0
}

func parseIssuerFlags(args []string, output io.Writer) (*issuerConfig, error) {
	cfg := &issuerConfig{}
	fs := flag.NewFlagSet("mcpload issuer", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "loopback address to serve the key set and metadata on")
	fs.StringVar(&cfg.out, "out", "", "file the signed access token is written to (required)")
	fs.StringVar(&cfg.sub, "sub", "", "the token's subject: the user the agent acts for (required)")
	fs.StringVar(&cfg.clientID, "client-id", "", "the token's client_id: the agent (required)")
	fs.StringVar(&cfg.aud, "aud", "", "the token's audience: the gateway's resource URL, e.g. http://127.0.0.1:8787/mcp (required)")
	fs.StringVar(&cfg.scope, "scope", "mcp:tools mcp:prompts mcp:resources", "the token's scope, space-separated")
	fs.DurationVar(&cfg.ttl, "ttl", 30*time.Minute, "lifetime of the token")
	fs.DurationVar(&cfg.lifetime, "lifetime", 0, "stop serving after this long (default: the token's lifetime)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), issuerUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var missing []string
	for _, f := range []struct{ name, value string }{{"-out", cfg.out}, {"-sub", cfg.sub}, {"-client-id", cfg.clientID}, {"-aud", cfg.aud}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(missing) > 0:
		return nil, fmt.Errorf("%s required", strings.Join(missing, ", "))
	case cfg.ttl <= 0:
		return nil, errors.New("-ttl must be positive")
	case cfg.lifetime < 0:
		return nil, errors.New("-lifetime must not be negative")
	}
	// The issuer signs whatever it is asked to: it must never be reachable
	// from another machine.
	host, _, err := net.SplitHostPort(cfg.listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("-listen %q: want a loopback IP address and port", cfg.listen)
	}
	if cfg.lifetime == 0 {
		cfg.lifetime = cfg.ttl
	}
	return cfg, nil
}

// issuer is a signing key and the documents that publish it.
type issuer struct {
	url    string
	signer jose.Signer
	jwks   []byte
	meta   []byte
}

// newIssuer makes a fresh ES256 key for the issuer at url. A new key per
// run means no token of an earlier run verifies against this one.
func newIssuer(url string) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	kid := rand.Text()[:16]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"},
	}})
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(map[string]any{
		"issuer":                                url,
		"jwks_uri":                              url + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.ES256)},
	})
	if err != nil {
		return nil, err
	}
	return &issuer{url: url, signer: signer, jwks: jwks, meta: meta}, nil
}

// token signs an access token for cfg, valid from now for cfg.ttl.
func (is *issuer) token(cfg *issuerConfig, now time.Time) (string, error) {
	return jwt.Signed(is.signer).Claims(map[string]any{
		"iss": is.url, "sub": cfg.sub, "aud": cfg.aud, "client_id": cfg.clientID, "scope": cfg.scope,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(cfg.ttl).Unix(), "jti": rand.Text(),
	}).Serialize()
}

func (is *issuer) handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("GET /jwks", serve(is.jwks))
	mux.HandleFunc("GET /.well-known/openid-configuration", serve(is.meta))
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", serve(is.meta))
	return mux
}

// runIssuer listens, writes the token and serves until ctx is done or
// cfg.lifetime has passed; either is a normal end. The token file is
// complete once it exists: it is written under another name and renamed.
func runIssuer(ctx context.Context, cfg *issuerConfig, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	is, err := newIssuer("http://" + ln.Addr().String())
	if err != nil {
		return err
	}
	tok, err := is.token(cfg, time.Now())
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(cfg.out), "."+filepath.Base(cfg.out)+".tmp")
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, cfg.out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, is.url)

	srv := &http.Server{Handler: is.handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, cfg.lifetime)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}
