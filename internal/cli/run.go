package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/mandate-mcp/mandate/internal/authserver"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/store/postgres"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/mandate-mcp/mandate/internal/web"
)

// runtime is everything one running gateway owns.
type runtime struct {
	cfg   *config.Config
	log   *slog.Logger
	store store.Store
	ups   []*upstream.Upstream
	gw    *gateway.Gateway
	// mandates is the one consent service: the gateway matches with it,
	// the consent pages and the admin API grant and revoke with it.
	mandates *consent.Service
	// approvals is the one approval service: the gateway asks with it, the
	// approvals page, the admin API and the CLI decide through the store
	// it reads.
	approvals *consent.Approvals
	// audit is the audit log every decision, outcome and administrative
	// change of this process goes to; nil when audit.enabled is false.
	audit *auditTrail
}

// clientCapabilities is what Mandate declares to upstreams: everything it can
// route to a client. A request a given client did not declare is refused per
// session (see gateway.relay).
var clientCapabilities = json.RawMessage(`{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}`)

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	var st store.Store
	var err error
	switch cfg.Store.Driver {
	case "memory":
		st = memory.New()
	case "postgres":
		st, err = postgres.Open(ctx, cfg.Store.DSN)
	default:
		path := cfg.Store.DSN
		if path == "" {
			path = filepath.Join(cfg.DataDir, "mandate.db")
		}
		if path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("create data dir: %w", err)
			}
		}
		st, err = sqlite.Open(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", cfg.Store.Driver, err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate store: %w", err)
	}
	return st, nil
}

// catalogRecorder adapts the store to the gateway's CatalogRecorder.
type catalogRecorder struct{ st store.CatalogStore }

func (c catalogRecorder) RecordCatalog(ctx context.Context, id, kind string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.st.PutCatalog(ctx, store.CatalogSnapshot{
		Upstream: id, Kind: kind, Hash: store.CatalogHash(body), Body: body, FetchedAt: time.Now(),
	})
	return err
}

// build wires one gateway for cfg. The audit log opens first, after the
// store it writes to, so that everything after it — the configuration
// taking effect with its policy, policy reloads, mandates, approvals,
// every request — is recorded; a log that cannot record the configuration
// at start refuses to start, as it would refuse every request.
func build(ctx context.Context, cfg *config.Config, log *slog.Logger, stdioEntry bool) (*runtime, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	aud, err := openAudit(ctx, cfg, st, log, true)
	if err != nil {
		st.Close()
		return nil, err
	}
	fail := func(err error) (*runtime, error) {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventWait)
		defer cancel()
		if cerr := aud.close(closeCtx); cerr != nil {
			log.Warn("close audit log", "err", cerr)
		}
		st.Close()
		return nil, err
	}
	decider, err := policyDecider(ctx, cfg, stdioEntry, log, aud.policyReporter)
	if err != nil {
		return fail(err)
	}
	entry := "serve"
	if stdioEntry {
		entry = "stdio"
	}
	rec, err := configRecord(cfg, entry)
	if err != nil {
		return fail(err)
	}
	rec.PolicyVersion = deciderVersion(decider)
	if err := aud.admin(ctx, rec); err != nil {
		return fail(fmt.Errorf("audit log: record the configuration: %w", err))
	}
	rt := &runtime{cfg: cfg, log: log, store: st, audit: aud, mandates: consent.New(st, aud.mandateEvents(), nil)}
	specs := make([]gateway.UpstreamSpec, 0, len(cfg.Upstreams))
	for _, uc := range cfg.Upstreams {
		o := upstream.Options{
			ID:         uc.ID,
			Client:     upstream.ClientInfo{Name: "mandate", Version: Version, Capabilities: clientCapabilities},
			Log:        log,
			MaxBackoff: uc.Restart.MaxBackoff,
			OnHealth:   healthRecorder(st, uc.ID, log),
		}
		switch {
		case uc.Stdio != nil:
			o.Stdio = &upstream.StdioOptions{Command: uc.Stdio.Command, Args: uc.Stdio.Args, Env: uc.Stdio.Environ(), Dir: uc.Stdio.Dir}
		case uc.HTTP != nil:
			o.HTTP = &upstream.HTTPOptions{URL: uc.HTTP.URL, Headers: uc.HTTP.Headers}
		case uc.SSE != nil:
			o.SSE = &upstream.SSEOptions{URL: uc.SSE.URL, Headers: uc.SSE.Headers}
		}
		u := upstream.New(o)
		rt.ups = append(rt.ups, u)
		specs = append(specs, gateway.UpstreamSpec{
			Conn: u, Prefix: uc.EffectivePrefix(), PerClient: uc.Session == config.SessionPerClient,
			Timeout: uc.Timeout, MaxSessions: uc.MaxSessions, IdleTimeout: uc.IdleTimeout,
			DistrustAnnotations: !uc.AnnotationsTrusted(),
		})
	}
	rt.approvals = consent.NewApprovals(st, &consent.ApprovalOptions{
		Log: log, ApproveURL: approveURL(cfg, stdioEntry), Timeout: cfg.Policy.ApprovalTimeout,
		WebhookURL: cfg.Policy.ApprovalWebhook, Events: aud.approvalEvents(),
	})
	stateKey, err := requestStateKey(cfg, stdioEntry)
	if err != nil {
		return fail(err)
	}
	rt.gw = gateway.New(gateway.Options{
		Upstreams: specs, Separator: cfg.Separator, Name: "mandate", Version: Version,
		Catalog: catalogRecorder{st}, Log: log,
		Policy: decider, Mandates: gatewayMandates(cfg, stdioEntry, rt.mandates), Approvals: rt.approvals,
		RequestStateKey: stateKey,
		ApprovalWait:    cfg.Policy.ApprovalWaitOrDefault(),
		AllowUnlisted:   !cfg.ListingRequired(stdioEntry),
		Audit:           aud.auditor(), SessionDigest: aud.sessionDigest(),
		ConsentURL: func() string {
			if cfg.Auth.Mode == config.AuthEmbedded && !stdioEntry {
				return cfg.Auth.PublicURL + "/consent"
			}
			return ""
		}(),
	})
	for _, u := range rt.ups {
		u.SetHandler(rt.gw.SharedHandler(u.ID()))
		u.Start()
	}
	return rt, nil
}

// approveURL links an approval request to the page where its user decides
// it (embedded mode, which serves the page); nil elsewhere.
func approveURL(cfg *config.Config, stdioEntry bool) func(id string) string {
	if cfg.Auth.Mode != config.AuthEmbedded || stdioEntry {
		return nil
	}
	return func(id string) string { return cfg.Auth.PublicURL + web.ApprovalsPath + "#" + url.PathEscape(id) }
}

// requestStateKey is the key that seals the requestState of 2026-07-28
// retries. It is derived from the data directory's key file, like the
// consent pages' CSRF key, so every replica sharing that file accepts the
// others' states. Without authentication nothing is asked through a
// state (no mandates, no approvals), and a per-process key will do.
func requestStateKey(cfg *config.Config, stdioEntry bool) ([]byte, error) {
	if cfg.Auth.Mode == config.AuthNone || stdioEntry {
		return nil, nil
	}
	sealer, err := authserver.NewFileSealer(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	return sealer.DeriveKey("gateway request state"), nil
}

// gatewayMandates is the mandate source of the gateway: none with
// `auth: none` and for the stdio entry, whose only principal is the local
// operator (no mandates are required there, and looking them up would cost
// a store read per call for nothing).
func gatewayMandates(cfg *config.Config, stdioEntry bool, m *consent.Service) gateway.MandateMatcher {
	if cfg.Auth.Mode == config.AuthNone || stdioEntry {
		return nil
	}
	return m
}

func healthRecorder(st store.HealthStore, id string, log *slog.Logger) func(status, detail string) {
	return func(status, detail string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := st.RecordHealth(ctx, store.HealthEvent{Upstream: id, At: time.Now(), Status: status, Detail: detail}); err != nil {
			log.Warn("record upstream health", "upstream", id, "err", err)
		}
	}
}

// close stops the upstreams (children get stdin closed, SIGTERM, SIGKILL),
// signs the audit log's final checkpoint and closes the store.
func (rt *runtime) close() {
	rt.gw.Close()
	for _, u := range rt.ups {
		u.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	if err := rt.audit.close(ctx); err != nil {
		rt.log.Error("audit log not closed cleanly: its last records are not signed", "err", err)
	}
	if err := rt.store.Close(); err != nil {
		rt.log.Warn("close store", "err", err)
	}
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseFlags("serve", args, stderr, true)
	if err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, f.verbose)
	// Libraries that log through slog's default logger (the OAuth library)
	// get the same handler, so every line has one format.
	slog.SetDefault(log)
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Warn("listening on a non-loopback address: Mandate is reachable from other machines", "listen", cfg.Listen)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	rt, err := build(ctx, cfg, log, false)
	if err != nil {
		ln.Close()
		return err
	}
	defer rt.close()
	auth, err := setupAuth(ctx, cfg, rt.store, log, stderr, pageDeps{gw: rt.gw, mandates: rt.mandates, approvals: rt.approvals, audit: rt.audit})
	if err != nil {
		ln.Close()
		return fmt.Errorf("auth: %w", err)
	}
	defer auth.close()
	fopts := auth.front
	fopts.Gateway, fopts.Listen, fopts.Log = rt.gw, cfg.Listen, log
	fopts.AllowedHosts, fopts.AllowedOrigins = cfg.HTTP.AllowedHosts, cfg.HTTP.AllowedOrigins
	fopts.MaxBodyBytes, fopts.SessionTimeout = cfg.HTTP.MaxBodyBytes, cfg.HTTP.SessionTimeout
	fopts.MaxSessionsPerClient = cfg.HTTP.MaxSessionsPerClient
	fe := frontend.New(fopts)
	srv := &http.Server{Handler: fe.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go fe.Run(runCtx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("mandate serving", "url", "http://"+ln.Addr().String()+"/mcp", "upstreams", len(cfg.Upstreams), "auth", cfg.Auth.Mode)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight calls")
	// Stop accepting, let in-flight calls finish (bounded), then end the
	// sessions, which closes their streams so Shutdown can return.
	drain, cancelDrain := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelDrain()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(drain) }()
	for rt.gw.Busy() > 0 && drain.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	fe.Shutdown()
	if err := <-done; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "err", err)
	}
	return nil
}

func runStdio(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parseFlags("stdio", args, stderr, false)
	if err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	// Logs go to stderr only: stdout carries nothing but MCP (T-01).
	log := newLogger(stderr, f.verbose)
	rt, err := build(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer rt.close()
	return frontend.ServeStdio(ctx, rt.gw, stdin, stdout, log)
}
