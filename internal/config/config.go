// Package config holds Mandate's typed configuration: its YAML shape, its
// defaults, secret expansion and validation. It is the only package that reads
// the process environment, so every other package receives plain values.
package config

import (
	"path/filepath"
	"time"
)

// Default values applied by Load when a field is absent.
const (
	DefaultListen         = "127.0.0.1:8787"
	DefaultDataDir        = "./mandate-data"
	DefaultSeparator      = "__"
	DefaultTimeout        = 60 * time.Second
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultMaxSessions    = 256
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMaxBodyBytes   = 4 << 20
	DefaultSessionTimeout = 30 * time.Minute
	DefaultMaxClientSess  = 64
)

// Session modes say how downstream sessions map onto upstream sessions.
const (
	// SessionShared multiplexes every downstream session over one upstream
	// session. It is the default: it costs one process or connection per
	// upstream, whatever the number of clients.
	SessionShared = "shared"
	// SessionPerClient gives each downstream session its own upstream session
	// (its own process for stdio), for servers that keep per-client state.
	SessionPerClient = "per-client"
)

// Config is the whole configuration file. The YAML shape is a contract other
// tools rely on: fields are only ever added, never renamed.
type Config struct {
	// Listen is the host:port of the HTTP listener. A non-loopback address
	// must be named explicitly; the default is loopback only.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database and keys.
	DataDir string `yaml:"data_dir"`
	// Separator joins an upstream prefix and a tool name ("fs__read_file").
	Separator string `yaml:"separator"`
	// Store selects the storage backend.
	Store Store `yaml:"store"`
	// HTTP tunes the HTTP front end.
	HTTP HTTP `yaml:"http"`
	// Auth configures authentication (default: the embedded authorization
	// server).
	Auth Auth `yaml:"auth"`
	// Policy configures authorization (default: the built-in policy for the
	// auth mode).
	Policy Policy `yaml:"policy"`
	// Audit configures the audit log (default: on, in the store).
	Audit Audit `yaml:"audit"`
	// Upstreams are the MCP servers Mandate fronts, in a stable order.
	Upstreams []Upstream `yaml:"upstreams"`

	// Source is the file the configuration came from ("" for the embedded
	// quickstart); it is not part of the YAML.
	Source string `yaml:"-"`

	// src remembers positions and secret-filled values for messages and
	// redaction; nil for a Config built in code.
	src *origin
	// expanded is set by Expand so that a second call cannot expand text
	// that a secret brought in.
	expanded bool
}

// Store selects and configures the storage backend.
type Store struct {
	// Driver is "sqlite" (default, in DataDir), "postgres" or "memory".
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL connection string, or a SQLite file path
	// (default: DataDir/mandate.db). It may use ${env:...} or ${file:...}.
	DSN string `yaml:"dsn"`
}

// HTTP tunes the HTTP front end.
type HTTP struct {
	// AllowedOrigins lists Origin values accepted besides loopback origins.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedHosts lists Host header values accepted besides loopback names
	// and the listen address, for deployments behind a named host.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// MaxBodyBytes caps a request body; larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SessionTimeout expires downstream sessions idle for this long.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// MaxSessionsPerClient caps concurrent downstream sessions per client
	// (per remote address until authentication names the client).
	MaxSessionsPerClient int `yaml:"max_sessions_per_client"`
}

// Policy configures authorization.
type Policy struct {
	// Dir holds the Cedar policy files (*.cedar) the gateway decides with;
	// relative to the config file. Empty, with no AuthZEN PDP configured,
	// means the built-in policy: allow everything with `auth: none` (and
	// for `mandate stdio`), otherwise deny unless a policy permits and, for
	// agents acting for a user, a mandate covers the call. The directory is
	// re-read when its files change; a set that fails to compile is
	// reported and the old one kept.
	Dir string `yaml:"dir"`
	// ShadowDir holds a second set of Cedar policy files, relative to the
	// config file, that is evaluated beside the live decision point
	// (dir, the built-in policy or authzen) on every question without ever
	// changing an answer: each question on which its effect differs is
	// logged ("policy shadow differs"), so a new set can be tried on real
	// traffic before it replaces the live one. Re-read like dir. Empty
	// means no shadow.
	ShadowDir string `yaml:"shadow_dir"`
	// AuthZEN makes an external policy decision point that speaks the
	// OpenID AuthZEN Authorization API 1.0 decide instead of Cedar. It
	// replaces dir (setting both is an error); nil means Cedar.
	AuthZEN *AuthZEN `yaml:"authzen"`
	// RequireListing denies a call of a tool the session was never shown in
	// tools/list ("what tools do you see?"). Default: on when authentication
	// is on; off with `auth: none` and for `mandate stdio`, where Mandate is
	// a transparent local proxy and clients may call tools they know.
	RequireListing *bool `yaml:"require_listing"`
	// ApprovalWait is how long a call that needs a human's approval, and
	// whose client cannot be asked in band, is held open while someone
	// decides out of band (`mandate approvals`, the approvals page, a
	// webhook's receiver); still undecided, it is refused with the
	// request's id for the agent to retry. Default DefaultApprovalWait,
	// kept under the 60-second request timeout common in MCP clients; 0
	// refuses at once.
	ApprovalWait *time.Duration `yaml:"approval_wait"`
	// ApprovalTimeout is how long an approval request stays open: undecided
	// by then it is expired, which denies the call, and an approval given
	// in time must be used within it too. Default 5m.
	ApprovalTimeout time.Duration `yaml:"approval_timeout"`
	// ApprovalWebhook, if set, receives a POST (JSON: id, user, agent,
	// upstream, tool, the redacted argument preview, expiry and the
	// approvals page's link) for every new approval request, so a human
	// hears of it where they are (a chat hook, a ticket system). https, or
	// http to a loopback host. Webhook URLs often embed a secret, so the
	// printed configuration always shows it redacted.
	ApprovalWebhook string `yaml:"approval_webhook"`
}

// DefaultApprovalWait is Policy.ApprovalWait when unset.
const DefaultApprovalWait = 45 * time.Second

// ApprovalWaitOrDefault resolves Policy.ApprovalWait.
func (p Policy) ApprovalWaitOrDefault() time.Duration {
	if p.ApprovalWait == nil {
		return DefaultApprovalWait
	}
	return *p.ApprovalWait
}

// ListingRequired resolves Policy.RequireListing for an entry point.
func (c *Config) ListingRequired(stdioEntry bool) bool {
	if c.Policy.RequireListing != nil {
		return *c.Policy.RequireListing
	}
	return c.Auth.Mode != AuthNone && !stdioEntry
}

// PolicyDir is Policy.Dir resolved against the config file's directory,
// like ${file:…} paths; "" when no directory is configured.
func (c *Config) PolicyDir() string {
	d := c.Policy.Dir
	if d == "" || filepath.IsAbs(d) || c.Source == "" {
		return d
	}
	return filepath.Join(filepath.Dir(c.Source), d)
}

// PolicyShadowDir is Policy.ShadowDir resolved like PolicyDir; "" when no
// shadow is configured.
func (c *Config) PolicyShadowDir() string {
	d := c.Policy.ShadowDir
	if d == "" || filepath.IsAbs(d) || c.Source == "" {
		return d
	}
	return filepath.Join(filepath.Dir(c.Source), d)
}

// DefaultCheckpointInterval is Audit.CheckpointInterval when unset.
const DefaultCheckpointInterval = 30 * time.Second

// Audit configures the audit log: a hash chain of every decision, outcome
// and administrative change, kept in the store and signed at checkpoints
// with a key in DataDir/audit.
type Audit struct {
	// Enabled records every decision before it takes effect and every
	// outcome before it reaches the client; a record that cannot be written
	// refuses the request. Default true, also with `auth: none` and for
	// `mandate stdio`, since a local operator wants a trail too. false
	// records nothing.
	Enabled *bool `yaml:"enabled"`
	// File, if set, is a JSON-lines copy of every record and checkpoint,
	// relative to the config file, synced with each batch. A copy outside
	// the database still proves a truncation of it. Empty means none.
	File string `yaml:"file"`
	// CheckpointInterval is how often the chain's head is signed while
	// records are written; the head is also signed at shutdown. Default
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Redact adds redaction rules to the built-in ones, which always
	// apply.
	Redact AuditRedact `yaml:"redact"`
}

// AuditRedact lists regular expressions (RE2 syntax) whose matches never
// reach an audit record.
type AuditRedact struct {
	// Keys match argument and detail names, case-insensitively, anywhere
	// in the name and at any depth; a match replaces the whole value.
	Keys []string `yaml:"keys"`
	// Values match string values and free text (intent, errors); a match
	// replaces the string in arguments and the matched text elsewhere.
	Values []string `yaml:"values"`
}

// On reports whether the audit log is enabled; a Config built in code
// without a say is audited.
func (a Audit) On() bool { return a.Enabled == nil || *a.Enabled }

// AuditFile is Audit.File resolved against the config file's directory,
// like PolicyDir; "" when no file is configured.
func (c *Config) AuditFile() string {
	f := c.Audit.File
	if f == "" || filepath.IsAbs(f) || c.Source == "" {
		return f
	}
	return filepath.Join(filepath.Dir(c.Source), f)
}

// DefaultAuthZENTimeout bounds one exchange with an AuthZEN PDP when
// policy.authzen.timeout is not set: a decision is on the path of every
// call, and a PDP that is slower than this is treated as down (deny).
const DefaultAuthZENTimeout = 500 * time.Millisecond

// AuthZEN configures an external policy decision point.
type AuthZEN struct {
	// URL is the PDP identifier: https, or http to a loopback host only,
	// with no user info, query or fragment. Mandate reads the PDP's
	// metadata at its /.well-known/authzen-configuration and refuses
	// metadata that names another PDP. It may use ${env:...} or
	// ${file:...}.
	URL string `yaml:"url"`
	// Timeout bounds one exchange with the PDP; a decision that takes
	// longer denies. Default DefaultAuthZENTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are sent with every request to the PDP, typically
	// Authorization to authenticate Mandate to it. Values may use
	// ${env:...} or ${file:...} and are never printed.
	Headers map[string]string `yaml:"headers"`
}

// Upstream is one MCP server. Exactly one of Stdio, HTTP or SSE is set.
type Upstream struct {
	// ID is the gateway-assigned identifier; it is the default prefix.
	ID string `yaml:"id"`
	// Prefix namespaces the upstream's names. Nil means "use ID"; an empty
	// string exposes names unprefixed (refused if that causes a collision).
	Prefix *string `yaml:"prefix"`

	Stdio *Stdio  `yaml:"stdio"`
	HTTP  *HTTPUp `yaml:"http"`
	SSE   *SSEUp  `yaml:"sse"`

	// Timeout bounds one forwarded request.
	Timeout time.Duration `yaml:"timeout"`
	// Session is SessionShared (default) or SessionPerClient.
	Session string `yaml:"session"`
	// MaxSessions caps upstream sessions in per-client mode.
	MaxSessions int `yaml:"max_sessions"`
	// IdleTimeout closes per-client upstream sessions unused this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Restart tunes supervision of the upstream connection.
	Restart Restart `yaml:"restart"`
	// TrustAnnotations says whether decisions believe the upstream's tool
	// annotations (readOnlyHint, destructiveHint, ...). Default true: an
	// administrator chose the upstream. Set false for a third-party server
	// whose hints must not be believed: Mandate then decides as if its
	// tools stated none, with the MCP specification's worst-case defaults
	// (destructive, open world, neither read-only nor idempotent), so a
	// tool that calls itself read-only cannot escape approval by saying so.
	TrustAnnotations *bool `yaml:"trust_annotations"`

	// Line is the line of the entry in the source file, for messages.
	Line int `yaml:"-"`

	// src remembers positions and secret-filled values of this entry; it
	// travels with the Upstream so that reordering upstreams keeps it right.
	src *origin
}

// Stdio launches a local MCP server as a child process.
type Stdio struct {
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
}

// HTTPUp reaches a remote Streamable HTTP server.
type HTTPUp struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

// SSEUp reaches a legacy HTTP+SSE (2024-11-05) server.
type SSEUp struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

// Restart tunes how a failed upstream is reconnected.
type Restart struct {
	// MaxBackoff caps the exponential delay between attempts.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// EffectivePrefix is the namespace prefix for u's names.
func (u Upstream) EffectivePrefix() string {
	if u.Prefix != nil {
		return *u.Prefix
	}
	return u.ID
}

// AnnotationsTrusted reports whether decisions believe u's tool
// annotations; an Upstream built in code without a say is trusted, as
// the file's default is.
func (u Upstream) AnnotationsTrusted() bool {
	return u.TrustAnnotations == nil || *u.TrustAnnotations
}

// Transport names the configured transport: "stdio", "http" or "sse".
func (u Upstream) Transport() string {
	switch {
	case u.Stdio != nil:
		return "stdio"
	case u.HTTP != nil:
		return "http"
	case u.SSE != nil:
		return "sse"
	}
	return ""
}
