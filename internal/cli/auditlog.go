package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/authserver"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/web"
)

// Administrative events that package audit names no constant for yet; they
// are Event values like the audit.Event* constants.
const (
	eventConfigLoaded   = "config.loaded"
	eventPolicyRejected = "policy.rejected"
	eventMandateUsed    = "mandate.used"
	eventApprovalUsed   = "approval.used"
	eventUserAdded      = "user.added"
	eventUserDisabled   = "user.disabled"
	eventUserEnabled    = "user.enabled"
)

// actorCLI is the Actor of changes made on the command line without --by.
const actorCLI = "cli"

// eventWait bounds how long an event without a caller to refuse (a
// mandate used, a policy reloaded) waits to be recorded.
const eventWait = 10 * time.Second

// auditTrail is one process's audit log and what it records with: the
// gateway's decisions and outcomes, and the administrative events of the
// composition root's services. A nil *auditTrail is an audit log that is
// switched off.
type auditTrail struct {
	log      *audit.Log
	redactor *audit.Redactor
	logger   *slog.Logger
	// public verifies the checkpoints log signs. It is kept here because
	// a memory store's signing key exists only in this process.
	public ed25519.PublicKey
}

// Interface guards: the consent services' event hooks, and the hooks the
// authorization server (authserver.Options.Events) and the admin API
// (web.AdminOptions.RecordChange) offer.
var (
	_ consent.Events         = (*auditTrail)(nil)
	_ consent.ApprovalEvents = (*auditTrail)(nil)
	_ authserver.Events      = (*auditTrail)(nil)

	_ func(*auditTrail, context.Context, web.Change) error = (*auditTrail).recordChange
)

// openAudit opens the audit log of cfg in st, or returns nil when
// cfg.Audit is off. The chain, its signing key and the digest key come from
// cfg's data directory, so every process of one data directory — serve,
// stdio, the CLI — writes one chain, whose appends the store serializes.
// A memory store without an audit file keeps its keys in memory too: its
// records end with the process, and keys that outlived them would prove
// nothing.
//
// Only the gateway (withFile) writes audit.file: a short-lived CLI command
// appends to the store alone, and the gateway copies its records into the
// file in chain order when it next writes (see audit.Log). Two processes
// appending to one file could interleave it out of order.
func openAudit(ctx context.Context, cfg *config.Config, st store.Store, logger *slog.Logger, withFile bool) (*auditTrail, error) {
	if !cfg.Audit.On() {
		return nil, nil
	}
	var keys *audit.Keys
	var err error
	file := ""
	if withFile {
		file = cfg.AuditFile()
	}
	if cfg.Store.Driver == "memory" && file == "" {
		keys, err = ephemeralKeys()
	} else {
		keys, err = audit.LoadKeys(audit.KeysDir(cfg.DataDir))
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	rules := audit.DefaultRules()
	rules.Keys = append(rules.Keys, cfg.Audit.Redact.Keys...)
	rules.Values = append(rules.Values, cfg.Audit.Redact.Values...)
	redactor, err := audit.NewRedactor(rules, keys.DigestKey)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if file != "" {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
	}
	l, err := audit.Open(ctx, st, keys.Chain, &audit.Options{
		Signer: keys.Signer, Redactor: redactor, File: file,
		CheckpointInterval: cfg.Audit.CheckpointInterval, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	return &auditTrail{log: l, redactor: redactor, logger: logger, public: keys.Signer.Public()}, nil
}

// ephemeralKeys is an audit identity that lives as long as the process.
func ephemeralKeys() (*audit.Keys, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	digest := make([]byte, 32)
	rand.Read(digest)
	return &audit.Keys{Signer: audit.NewSigner(key), DigestKey: digest, Chain: audit.NewChainID()}, nil
}

// close writes the final checkpoint: a log closed without one can be
// truncated back to its previous checkpoint undetected.
func (a *auditTrail) close(ctx context.Context) error {
	if a == nil {
		return nil
	}
	return a.log.Close(ctx)
}

// auditor is the gateway's Auditor: nil when auditing is off, so the
// gateway sees no Auditor rather than a nil one.
func (a *auditTrail) auditor() gateway.Auditor {
	if a == nil {
		return nil
	}
	return a.log
}

// sessionDigest is the gateway's SessionDigest; nil when auditing is off.
func (a *auditTrail) sessionDigest() func(string) string {
	if a == nil {
		return nil
	}
	return a.redactor.DigestText
}

// mandateEvents is the consent service's event hook; nil when auditing is
// off.
func (a *auditTrail) mandateEvents() consent.Events {
	if a == nil {
		return nil
	}
	return a
}

// approvalEvents is the approval service's event hook; nil when auditing
// is off.
func (a *auditTrail) approvalEvents() consent.ApprovalEvents {
	if a == nil {
		return nil
	}
	return a
}

// admin appends an administrative event and returns once it is durable.
func (a *auditTrail) admin(ctx context.Context, rec audit.Record) error {
	if a == nil {
		return nil
	}
	rec.Kind = audit.KindAdmin
	_, err := a.log.Append(ctx, rec)
	return err
}

// notify appends an event of a change that has already taken effect and
// has no caller to refuse. A failure is logged as an error: the trail now
// lacks the event, which an operator must hear of.
func (a *auditTrail) notify(rec audit.Record) {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	if err := a.admin(ctx, rec); err != nil {
		a.logger.Error("AUDIT EVENT NOT RECORDED", "event", rec.Event, "target", rec.Target, "actor", rec.Actor, "err", err)
	}
}

// checkpoint signs the chain's head now, for a moment worth pinning.
func (a *auditTrail) checkpoint() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	if err := a.log.Checkpoint(ctx); err != nil {
		a.logger.Error("audit checkpoint failed", "err", err)
	}
}

func (a *auditTrail) MandateGranted(m consent.Mandate) {
	a.notify(mandateRecord(audit.EventMandateGranted, m, m.User))
}

func (a *auditTrail) MandateRevoked(m consent.Mandate) {
	a.notify(mandateRecord(audit.EventMandateRevoked, m, m.RevokedBy))
}

// MandateUsed records a use only of a mandate with a use count, where
// the count left is news; a use of an unlimited mandate is the decision
// record that names it, and a second record per call would only cost.
func (a *auditTrail) MandateUsed(m consent.Mandate) {
	if m.UsesLeft == consent.Unlimited {
		return
	}
	a.notify(mandateRecord(eventMandateUsed, m, m.Agent))
}

func (a *auditTrail) ApprovalRequested(r store.Approval) {
	a.notify(approvalRecord(audit.EventApprovalRequest, r, r.Agent))
}

func (a *auditTrail) ApprovalDecided(r store.Approval) {
	a.notify(approvalRecord(approvalEvent(r), r, r.DecidedBy))
}

func (a *auditTrail) ApprovalUsed(r store.Approval) {
	a.notify(approvalRecord(eventApprovalUsed, r, r.Agent))
}

// Login records a sign-in at the embedded authorization server. The
// username typed is kept only for failed attempts, as free text the log
// redacts: people type passwords into username fields.
func (a *auditTrail) Login(ctx context.Context, l authserver.Login) error {
	rec := audit.Record{Event: audit.EventLogin, Actor: l.User.ID, Target: l.User.ID, User: l.User.ID,
		AuthMethod: l.Method, Detail: map[string]any{"remote": l.Remote}}
	if l.Issuer != "" {
		rec.Detail["issuer"] = l.Issuer
	}
	if !l.OK {
		rec.Event = audit.EventLoginFailed
		if l.User.ID == "" {
			rec.Target = l.Username
		}
	}
	return a.admin(ctx, rec)
}

// AgentRegistered records an agent stored for the first time.
func (a *auditTrail) AgentRegistered(ctx context.Context, ag store.Agent) error {
	return a.admin(ctx, agentRecord(audit.EventAgentRegistered, ag, registrar(ag)))
}

// recordChange records a change made through the admin API
// (web.AdminOptions.RecordChange).
func (a *auditTrail) recordChange(ctx context.Context, c web.Change) error {
	rec := audit.Record{Actor: c.ByUser, Target: c.Target, Agent: c.ByAgent, Detail: map[string]any{"from": c.From, "to": c.To}}
	switch c.Action {
	case "agent.suspend":
		rec.Event = audit.EventAgentSuspended
	case "agent.resume":
		rec.Event = audit.EventAgentResumed
	case "user.disable":
		rec.Event = eventUserDisabled
	case "user.enable":
		rec.Event = eventUserEnabled
	default:
		return fmt.Errorf("record admin change: unknown action %q", c.Action)
	}
	return a.admin(ctx, rec)
}

// registrar is who brought an agent in: its owner, or the way it came.
func registrar(ag store.Agent) string {
	if ag.Owner != "" {
		return ag.Owner
	}
	return ag.Registration
}

// mandateRecord is the event of a change to m, caused by actor. The record
// carries the mandate's user and agent, so a query by either finds it.
func mandateRecord(event string, m consent.Mandate, actor string) audit.Record {
	detail := map[string]any{"grants": m.Grants, "expires_at": m.ExpiresAt.UTC(), "uses_left": m.UsesLeft}
	if m.Purpose != "" {
		detail["purpose"] = m.Purpose
	}
	return audit.Record{Kind: audit.KindAdmin, Event: event, Actor: actor, Target: m.ID,
		User: m.User, Agent: m.Agent, Mandate: m.ID, Detail: detail}
}

// approvalRecord is the event of a change to approval r, caused by actor.
func approvalRecord(event string, r store.Approval, actor string) audit.Record {
	return audit.Record{Kind: audit.KindAdmin, Event: event, Actor: actor, Target: r.ID,
		User: r.User, Agent: r.Agent, Upstream: r.Upstream, Name: r.Tool, Approval: r.ID, PolicyVersion: r.PolicyVersion,
		Detail: map[string]any{"status": r.Status, "args_hash": r.ArgsHash, "expires_at": r.ExpiresAt.UTC()}}
}

// approvalEvent names a decision on r.
func approvalEvent(r store.Approval) string {
	if r.Status == store.ApprovalDenied {
		return audit.EventApprovalDenied
	}
	return audit.EventApprovalApproved
}

// agentRecord is the event of a change to agent ag, caused by actor.
func agentRecord(event string, ag store.Agent, actor string) audit.Record {
	return audit.Record{Kind: audit.KindAdmin, Event: event, Actor: actor, Target: ag.ID, Agent: ag.ID,
		Detail: map[string]any{"name": ag.Name, "registration": ag.Registration, "trust_level": ag.TrustLevel, "status": ag.Status}}
}

// configRecord is the event of cfg taking effect at the start of entry
// (serve or stdio): the fingerprint of its redacted form, so a later
// reader can tell which configuration every following record was made
// under without the log holding its secrets.
func configRecord(cfg *config.Config, entry string) (audit.Record, error) {
	fp, err := cfg.Fingerprint()
	if err != nil {
		return audit.Record{}, err
	}
	source := cfg.Source
	if source == "" {
		source = "quickstart"
	}
	return audit.Record{Kind: audit.KindAdmin, Event: eventConfigLoaded, Actor: "system", Target: source,
		Detail: map[string]any{
			"sha256": fp, "entry": entry, "version": Version, "auth": cfg.Auth.Mode, "store": cfg.Store.Driver,
			"upstreams": len(cfg.Upstreams),
		}}, nil
}

// deciderVersion names the policy d decides with, when it says.
func deciderVersion(d gateway.PolicyDecider) string {
	switch p := d.(type) {
	case interface{ Version() string }:
		return p.Version()
	case interface{ Snapshot() *policy.Snapshot }:
		return p.Snapshot().Version()
	}
	return ""
}

// policyReporter records what a policy directory watcher did (see
// watchPolicies), then signs the head: a reload is a moment a reader will
// want pinned. role is "live" or "shadow".
func (a *auditTrail) policyReporter(role string) policyReport {
	if a == nil {
		return nil
	}
	return func(dir, version string, problems []string) {
		rec := audit.Record{Event: audit.EventPolicyReloaded, Actor: "system", Target: dir, PolicyVersion: version,
			Detail: map[string]any{"role": role}}
		if len(problems) > 0 {
			rec.Event = eventPolicyRejected
			rec.Detail["problems"] = len(problems)
			rec.Detail["first_problem"] = problems[0]
		}
		a.notify(rec)
		a.checkpoint()
	}
}

// errUnrecorded wraps the failure to record a change a command made.
var errUnrecorded = errors.New("the change was made, but it could not be recorded in the audit log")

// authEvents is what the embedded authorization server reports to: nil
// (no events) when audit is off, so the server does not call into a nil
// log.
func (a *auditTrail) authEvents() authserver.Events {
	if a == nil {
		return nil
	}
	return a
}

// agentRegistered records an agent registered on first sight by the
// request gate (external issuers); nothing when audit is off.
func (a *auditTrail) agentRegistered(ctx context.Context, ag store.Agent) error {
	if a == nil {
		return nil
	}
	return a.AgentRegistered(ctx, ag)
}
