package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// plain returns a copy of c without the bookkeeping that only messages and
// redaction use, so tests can compare the values themselves.
func plain(c *Config) *Config {
	r := *c
	r.src, r.expanded = nil, false
	r.Upstreams = nil
	for _, u := range c.Upstreams {
		u.src = nil
		r.Upstreams = append(r.Upstreams, u)
	}
	return &r
}

// defaults returns the Config an empty file yields, with the given
// upstreams, which must have their own defaults already.
func defaults(ups ...Upstream) *Config {
	return &Config{
		Listen:    DefaultListen,
		DataDir:   DefaultDataDir,
		Separator: DefaultSeparator,
		Store:     Store{Driver: "sqlite", DSN: filepath.Join(DefaultDataDir, "mandate.db")},
		HTTP: HTTP{
			MaxBodyBytes:         DefaultMaxBodyBytes,
			SessionTimeout:       DefaultSessionTimeout,
			MaxSessionsPerClient: DefaultMaxClientSess,
		},
		Auth:      defaultAuth(DefaultListen),
		Audit:     defaultAudit(),
		Upstreams: ups,
		Source:    "t.yaml",
	}
}

// defaultAudit returns the audit section an empty file yields.
func defaultAudit() Audit {
	return Audit{Enabled: ptr(true), CheckpointInterval: DefaultCheckpointInterval}
}

// defaultAuth returns the auth section an empty file yields for listen.
func defaultAuth(listen string) Auth {
	return Auth{
		Mode:            AuthEmbedded,
		PublicURL:       "http://" + listen,
		AccessTokenTTL:  5 * time.Minute,
		RefreshTokenTTL: 720 * time.Hour,
		KeyRotation:     720 * time.Hour,
		DCR:             DCR{Enabled: ptr(true), PerMinute: 10},
		CIMD:            CIMD{Enabled: ptr(true), Timeout: 5 * time.Second, MaxBytes: 65536},
	}
}

// upstream returns u with the defaults Parse applies.
func upstream(u Upstream) Upstream {
	u.applyDefaults()
	return u
}

func ptr[T any](v T) *T { return &v }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *Config
	}{
		{
			name: "empty file gives defaults",
			yaml: "",
			want: defaults(),
		},
		{
			name: "comments only gives defaults",
			yaml: "# nothing here\n",
			want: defaults(),
		},
		{
			name: "stdio upstream",
			yaml: `
upstreams:
  - id: fs
    stdio:
      command: npx
      args: ["-y", "server", "/tmp"]
      env: {A: "1", B: two}
      dir: /srv
`,
			want: defaults(upstream(Upstream{
				ID: "fs",
				Stdio: &Stdio{
					Command: "npx",
					Args:    []string{"-y", "server", "/tmp"},
					Env:     map[string]string{"A": "1", "B": "two"},
					Dir:     "/srv",
				},
				Line: 3,
			})),
		},
		{
			name: "every key set",
			yaml: `
listen: 0.0.0.0:9000
data_dir: /var/lib/mandate
separator: "-"
store: {driver: postgres, dsn: "postgres://db/mandate"}
http:
  allowed_origins: [https://a.example]
  allowed_hosts: [mandate.example]
  max_body_bytes: 1024
  session_timeout: 1h
  max_sessions_per_client: 2
upstreams:
  - id: remote
    prefix: r
    http: {url: "https://mcp.example/mcp", headers: {X-Key: k}}
    timeout: 5m
    session: per-client
    max_sessions: 3
    idle_timeout: 90s
    restart: {max_backoff: 1m}
    trust_annotations: false
  - id: old
    prefix: ""
    sse: {url: "http://127.0.0.1:9/sse"}
`,
			want: &Config{
				Listen:    "0.0.0.0:9000",
				DataDir:   "/var/lib/mandate",
				Separator: "-",
				Store:     Store{Driver: "postgres", DSN: "postgres://db/mandate"},
				HTTP: HTTP{
					AllowedOrigins:       []string{"https://a.example"},
					AllowedHosts:         []string{"mandate.example"},
					MaxBodyBytes:         1024,
					SessionTimeout:       time.Hour,
					MaxSessionsPerClient: 2,
				},
				Auth:  defaultAuth("0.0.0.0:9000"),
				Audit: defaultAudit(),
				Upstreams: []Upstream{
					{
						ID:               "remote",
						Prefix:           ptr("r"),
						HTTP:             &HTTPUp{URL: "https://mcp.example/mcp", Headers: map[string]string{"X-Key": "k"}},
						Timeout:          5 * time.Minute,
						Session:          SessionPerClient,
						MaxSessions:      3,
						IdleTimeout:      90 * time.Second,
						Restart:          Restart{MaxBackoff: time.Minute},
						TrustAnnotations: ptr(false),
						Line:             13,
					},
					upstream(Upstream{
						ID:     "old",
						Prefix: ptr(""),
						SSE:    &SSEUp{URL: "http://127.0.0.1:9/sse"},
						Line:   22,
					}),
				},
				Source: "t.yaml",
			},
		},
		{
			name: "null values mean absent",
			yaml: `
listen: ~
upstreams:
  - id: a
    prefix: null
    stdio: {command: x, args: ~}
    timeout:
`,
			want: defaults(upstream(Upstream{ID: "a", Stdio: &Stdio{Command: "x"}, Line: 4})),
		},
		{
			name: "zero numbers mean the default",
			yaml: `
http: {max_body_bytes: 0, session_timeout: 0}
upstreams:
  - {id: a, stdio: {command: x}, timeout: 0, max_sessions: 0}
`,
			want: defaults(upstream(Upstream{ID: "a", Stdio: &Stdio{Command: "x"}, Line: 4})),
		},
		{
			name: "scalars of any type are strings where strings are wanted",
			yaml: `
upstreams:
  - id: 42
    stdio: {command: x, args: [1, true, 2.5], env: {DEBUG: true}}
`,
			want: defaults(upstream(Upstream{
				ID:    "42",
				Stdio: &Stdio{Command: "x", Args: []string{"1", "true", "2.5"}, Env: map[string]string{"DEBUG": "true"}},
				Line:  3,
			})),
		},
		{
			name: "anchors and aliases",
			yaml: `
upstreams:
  - id: a
    stdio: {command: x, args: &args [--flag]}
  - id: b
    stdio: {command: y, args: *args}
`,
			want: defaults(
				upstream(Upstream{ID: "a", Stdio: &Stdio{Command: "x", Args: []string{"--flag"}}, Line: 3}),
				upstream(Upstream{ID: "b", Stdio: &Stdio{Command: "y", Args: []string{"--flag"}}, Line: 5}),
			),
		},
		{
			name: "same id as another's explicit prefix is fine when prefixes differ",
			yaml: `
upstreams:
  - {id: a, prefix: b, stdio: {command: x}}
  - {id: b, prefix: a, stdio: {command: x}}
`,
			want: defaults(
				upstream(Upstream{ID: "a", Prefix: ptr("b"), Stdio: &Stdio{Command: "x"}, Line: 3}),
				upstream(Upstream{ID: "b", Prefix: ptr("a"), Stdio: &Stdio{Command: "x"}, Line: 4}),
			),
		},
		{
			name: "several empty prefixes are left to the gateway",
			yaml: `
upstreams:
  - {id: a, prefix: "", stdio: {command: x}}
  - {id: b, prefix: "", stdio: {command: x}}
`,
			want: defaults(
				upstream(Upstream{ID: "a", Prefix: ptr(""), Stdio: &Stdio{Command: "x"}, Line: 3}),
				upstream(Upstream{ID: "b", Prefix: ptr(""), Stdio: &Stdio{Command: "x"}, Line: 4}),
			),
		},
		{
			name: "non-loopback listen is kept as written",
			yaml: "listen: '[::]:8787'\n",
			want: func() *Config {
				c := defaults()
				c.Listen = "[::]:8787"
				c.Auth.PublicURL = "http://[::]:8787"
				return c
			}(),
		},
		{
			name: "memory store needs no dsn",
			yaml: "store: {driver: memory}\n",
			want: func() *Config { c := defaults(); c.Store = Store{Driver: "memory"}; return c }(),
		},
		{
			name: "every auth key set",
			yaml: `
auth:
  mode: external
  public_url: https://mandate.example.com
  access_token_ttl: 1m
  refresh_token_ttl: 24h
  key_rotation: 48h
  dcr: {enabled: false, per_minute: 3}
  cimd: {enabled: false, allow_hosts: [h.internal], allow_http: true, timeout: 2s, max_bytes: 1024}
  clients:
    - id: bot
      name: Bot
      secret: s3
      redirect_uris: ["https://bot.example/cb"]
      grant_types: [client_credentials, authorization_code]
      scopes: [mcp]
      trust_level: untrusted
    - id: keyed
      jwks_url: https://keyed.example/jwks
      grant_types: [client_credentials]
    - id: inline
      jwks: '{"keys": [{"kty": "OKP"}]}'
      grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
  issuers:
    - issuer: https://idp.example
      jwks_url: https://idp.example/keys
      audience: api://mandate
      claims: {user: oid, agent: azp, email: upn, groups: roles, scopes: scp}
  federation:
    issuer: https://idp.example
    client_id: m
    client_secret: x
    scopes: [openid]
    claims: {email: mail}
  token_exchange: {trusted_clients: [bot]}
  id_jag:
    - issuer: https://login.example
      jwks_url: http://127.0.0.1:9/keys
      audience: https://mandate.example.com/mcp
      claims: {user: email}
`,
			want: func() *Config {
				c := defaults()
				c.Auth = Auth{
					Mode:            AuthExternal,
					PublicURL:       "https://mandate.example.com",
					AccessTokenTTL:  time.Minute,
					RefreshTokenTTL: 24 * time.Hour,
					KeyRotation:     48 * time.Hour,
					DCR:             DCR{Enabled: ptr(false), PerMinute: 3},
					CIMD: CIMD{
						Enabled: ptr(false), AllowHosts: []string{"h.internal"}, AllowHTTP: true,
						Timeout: 2 * time.Second, MaxBytes: 1024,
					},
					Clients: []Client{
						{
							ID: "bot", Name: "Bot", Secret: "s3", RedirectURIs: []string{"https://bot.example/cb"},
							GrantTypes: []string{GrantClientCredentials, GrantAuthorizationCode},
							Scopes:     []string{"mcp"}, TrustLevel: TrustUntrusted,
						},
						{
							ID: "keyed", JWKSURL: "https://keyed.example/jwks",
							GrantTypes: []string{GrantClientCredentials}, TrustLevel: TrustStandard,
						},
						{
							ID: "inline", JWKS: `{"keys": [{"kty": "OKP"}]}`,
							GrantTypes: []string{GrantJWTBearer}, TrustLevel: TrustStandard,
						},
					},
					Issuers: []Issuer{{
						Issuer: "https://idp.example", JWKSURL: "https://idp.example/keys", Audience: "api://mandate",
						Claims: ClaimMap{User: "oid", Agent: "azp", Email: "upn", Groups: "roles", Scopes: "scp"},
					}},
					Federation: &Federation{
						Issuer: "https://idp.example", ClientID: "m", ClientSecret: "x", Scopes: []string{"openid"},
						Claims: ClaimMap{User: "sub", Agent: "client_id", Email: "mail", Groups: "groups", Scopes: "scope"},
					},
					TokenExchange: TokenExchange{TrustedClients: []string{"bot"}},
					IDJAG: []Issuer{{
						Issuer: "https://login.example", JWKSURL: "http://127.0.0.1:9/keys",
						Audience: "https://mandate.example.com/mcp",
						Claims:   ClaimMap{User: "email", Agent: "client_id", Email: "email", Groups: "groups", Scopes: "scope"},
					}},
				}
				return c
			}(),
		},
		{
			name: "auth defaults fill clients, issuers and federation",
			yaml: `
auth:
  clients:
    - id: app
      redirect_uris: ["http://localhost:1/cb", "http://[::1]:2/cb", "http://127.0.0.2/cb"]
  issuers:
    - issuer: http://127.0.0.1:5556
  federation: {issuer: https://idp.example, client_id: m}
`,
			want: func() *Config {
				c := defaults()
				claims := ClaimMap{User: "sub", Agent: "client_id", Email: "email", Groups: "groups", Scopes: "scope"}
				c.Auth.Clients = []Client{{
					ID:           "app",
					RedirectURIs: []string{"http://localhost:1/cb", "http://[::1]:2/cb", "http://127.0.0.2/cb"},
					GrantTypes:   []string{GrantAuthorizationCode, GrantRefreshToken},
					TrustLevel:   TrustStandard,
				}}
				c.Auth.Issuers = []Issuer{{Issuer: "http://127.0.0.1:5556", Claims: claims}}
				c.Auth.Federation = &Federation{
					Issuer: "https://idp.example", ClientID: "m",
					Scopes: []string{"openid", "email", "profile"}, Claims: claims,
				}
				return c
			}(),
		},
		{
			name: "auth none on a loopback listener",
			yaml: "listen: '[::1]:8787'\nauth: {mode: none}\n",
			want: func() *Config {
				c := defaults()
				c.Listen = "[::1]:8787"
				c.Auth.Mode = AuthNone
				c.Auth.PublicURL = "http://[::1]:8787"
				return c
			}(),
		},
		{
			name: "auth none on localhost",
			yaml: "listen: localhost:1\nauth: {mode: none}\n",
			want: func() *Config {
				c := defaults()
				c.Listen = "localhost:1"
				c.Auth.Mode = AuthNone
				c.Auth.PublicURL = "http://localhost:1"
				return c
			}(),
		},
		{
			name: "zero auth numbers mean the default",
			yaml: "auth: {access_token_ttl: 0, dcr: {per_minute: 0}, cimd: {timeout: 0, max_bytes: 0}}\n",
			want: defaults(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := plain(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tt.want)
				for i := range min(len(got.Upstreams), len(tt.want.Upstreams)) {
					t.Logf("upstream %d:\n got %+v\nwant %+v", i, got.Upstreams[i], tt.want.Upstreams[i])
				}
			}
		})
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "syntax error",
			yaml: "listen: x\n\tdata_dir: y\n",
			want: []string{"t.yaml:2: found a tab character that violates indentation"},
		},
		{
			name: "syntax error without a line",
			yaml: "listen: a: b\n",
			want: []string{"t.yaml: mapping values are not allowed in this context"},
		},
		{
			name: "top level is not a mapping",
			yaml: "- a\n",
			want: []string{"t.yaml:1:1: want a mapping, got a list"},
		},
		{
			name: "two documents",
			yaml: "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			want: []string{"t.yaml:2:1: a configuration file holds one YAML document"},
		},
		{
			name: "unknown top-level key",
			yaml: "listen: 127.0.0.1:1\nlisten_addr: x\n",
			want: []string{"t.yaml:2:1: listen_addr: unknown key (want one of listen, data_dir, separator, store, http, auth, policy, audit, upstreams)"},
		},
		{
			name: "unknown nested key",
			yaml: "upstreams:\n  - id: a\n    stdio:\n      comand: x\n",
			want: []string{
				"t.yaml:4:7: upstreams[0].stdio.comand: unknown key (want one of command, args, env, dir)",
				"t.yaml:4:7: upstreams[0].stdio.command: required",
			},
		},
		{
			name: "duplicate key",
			yaml: "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
			want: []string{"t.yaml:2:1: listen: duplicate key (first at line 1)"},
		},
		{
			name: "duplicate map key",
			yaml: "upstreams:\n  - id: a\n    stdio: {command: x, env: {A: 1, A: 2}}\n",
			want: []string{"t.yaml:3:37: upstreams[0].stdio.env.A: duplicate key (first at line 3)"},
		},
		{
			name: "wrong kinds",
			yaml: `
listen: [a]
http: {allowed_origins: x, max_body_bytes: big}
upstreams:
  - id: a
    stdio: {command: x, args: {a: b}, env: [x]}
`,
			want: []string{
				"t.yaml:2:9: listen: want a string, got a list",
				"t.yaml:3:25: http.allowed_origins: want a list, got a scalar",
				"t.yaml:3:44: http.max_body_bytes: want an integer",
				"t.yaml:6:31: upstreams[0].stdio.args: want a list, got a mapping",
				"t.yaml:6:44: upstreams[0].stdio.env: want a mapping, got a list",
			},
		},
		{
			name: "bad durations",
			yaml: `
http: {session_timeout: 30}
upstreams:
  - id: a
    stdio: {command: x}
    timeout: soon
    restart: {max_backoff: [1s]}
`,
			want: []string{
				`t.yaml:2:25: http.session_timeout: want a duration such as "30s" or "5m"`,
				`t.yaml:6:14: upstreams[0].timeout: want a duration such as "30s" or "5m"`,
				`t.yaml:7:28: upstreams[0].restart.max_backoff: want a duration such as "30s" or "5m", got a list`,
			},
		},
		{
			name: "negative durations and counts",
			yaml: `
http: {session_timeout: -1s, max_body_bytes: -1, max_sessions_per_client: -2}
upstreams:
  - id: a
    stdio: {command: x}
    timeout: -5s
    idle_timeout: -1m
    max_sessions: -1
    restart: {max_backoff: -1s}
`,
			want: []string{
				"t.yaml:2:25: http.session_timeout: must not be negative",
				"t.yaml:2:46: http.max_body_bytes: must not be negative",
				"t.yaml:2:75: http.max_sessions_per_client: must not be negative",
				"t.yaml:6:14: upstreams[0].timeout: must not be negative",
				"t.yaml:7:19: upstreams[0].idle_timeout: must not be negative",
				"t.yaml:8:19: upstreams[0].max_sessions: must be at least 1",
				"t.yaml:9:28: upstreams[0].restart.max_backoff: must not be negative",
			},
		},
		{
			name: "integer out of range",
			yaml: "upstreams:\n  - {id: a, stdio: {command: x}, max_sessions: 99999999999999999999}\n",
			want: []string{"t.yaml:2:48: upstreams[0].max_sessions: want an integer"},
		},
		{
			name: "listen",
			yaml: "listen: localhost\n",
			want: []string{`t.yaml:1:9: listen: must be host:port, such as "127.0.0.1:8787"`},
		},
		{
			name: "listen port",
			yaml: "listen: localhost:http\n",
			want: []string{"t.yaml:1:9: listen: port must be a number from 0 to 65535"},
		},
		{
			name: "explicit empty strings are not replaced by defaults",
			yaml: "listen: ''\ndata_dir: ''\nseparator: ''\nstore: {driver: ''}\n",
			want: []string{
				`t.yaml:1:9: listen: must be host:port, such as "127.0.0.1:8787"`,
				"t.yaml:2:11: data_dir: must not be empty",
				"t.yaml:3:12: separator: must be one or more of A-Z a-z 0-9 _ -",
				`t.yaml:4:17: store.driver: must be sqlite, postgres or memory, not ""`,
			},
		},
		{
			name: "separator characters",
			yaml: "separator: '.'\n",
			want: []string{"t.yaml:1:12: separator: must be one or more of A-Z a-z 0-9 _ -"},
		},
		{
			name: "store",
			yaml: "store:\n  driver: postgres\n",
			want: []string{"t.yaml:2:3: store.dsn: required when store.driver is postgres"},
		},
		{
			name: "store driver",
			yaml: "store: {driver: mysql}\n",
			want: []string{`t.yaml:1:17: store.driver: must be sqlite, postgres or memory, not "mysql"`},
		},
		{
			name: "upstream id",
			yaml: `
upstreams:
  - stdio: {command: x}
  - id: "has space"
    stdio: {command: x}
  - id: abcdefghijklmnopqrstuvwxyz0123456
    stdio: {command: x}
`,
			want: []string{
				"t.yaml:3:5: upstreams[0].id: required",
				"t.yaml:4:9: upstreams[1].id: must be 1 to 32 of A-Z a-z 0-9 _ -",
				"t.yaml:6:9: upstreams[2].id: must be 1 to 32 of A-Z a-z 0-9 _ -",
			},
		},
		{
			name: "duplicate id",
			yaml: `
upstreams:
  - id: fs
    stdio: {command: x}
  - id: fs
    http: {url: "https://x"}
`,
			want: []string{`t.yaml:5:9: upstreams[1].id: duplicate id "fs" (also upstreams[0] at line 3)`},
		},
		{
			name: "transports",
			yaml: `
upstreams:
  - id: none
  - id: two
    stdio: {command: x}
    sse: {url: "https://x"}
  - id: three
    http: {url: "https://x"}
    sse: {url: "https://x"}
    stdio: {command: x}
`,
			want: []string{
				"t.yaml:3:5: upstreams[0]: one of stdio, http or sse is required",
				"t.yaml:6:10: upstreams[1].sse: only one of stdio, http or sse may be set, found stdio and sse",
				"t.yaml:8:11: upstreams[2].http: only one of stdio, http or sse may be set, found stdio and http and sse",
			},
		},
		{
			name: "stdio command",
			yaml: "upstreams:\n  - id: a\n    stdio: {args: [x]}\n  - id: b\n    stdio: {command: ''}\n",
			want: []string{
				"t.yaml:3:12: upstreams[0].stdio.command: required",
				"t.yaml:5:22: upstreams[1].stdio.command: required",
			},
		},
		{
			name: "stdio env names",
			yaml: "upstreams:\n  - id: a\n    stdio: {command: x, env: {'A=B': c}}\n",
			want: []string{
				"t.yaml:3:30: upstreams[0].stdio.env: variable names must be non-empty and contain no '=' or NUL",
			},
		},
		{
			name: "urls",
			yaml: `
upstreams:
  - id: a
    http: {headers: {X: y}}
  - id: b
    http: {url: "/relative"}
  - id: c
    sse: {url: "ftp://host/x"}
  - id: d
    sse: {url: "https://"}
  - id: e
    http: {url: "https://user:hunter2@[::1"}
`,
			want: []string{
				"t.yaml:4:11: upstreams[0].http.url: required",
				"t.yaml:6:17: upstreams[1].http.url: must be an absolute http:// or https:// URL",
				"t.yaml:8:16: upstreams[2].sse.url: must be an absolute http:// or https:// URL",
				"t.yaml:10:16: upstreams[3].sse.url: must be an absolute http:// or https:// URL",
				"t.yaml:12:17: upstreams[4].http.url: must be an absolute http:// or https:// URL",
			},
		},
		{
			name: "session",
			yaml: "upstreams:\n  - {id: a, stdio: {command: x}, session: private}\n  - {id: b, stdio: {command: x}, session: ''}\n",
			want: []string{
				`t.yaml:2:43: upstreams[0].session: must be shared or per-client, not "private"`,
				`t.yaml:3:43: upstreams[1].session: must be shared or per-client, not ""`,
			},
		},
		{
			name: "prefixes",
			yaml: `
upstreams:
  - id: a
    prefix: "a.b"
    stdio: {command: x}
  - id: b
    prefix: shared
    stdio: {command: x}
  - id: c
    prefix: shared
    stdio: {command: x}
  - id: shared
    stdio: {command: x}
  - id: d
    prefix: c
    stdio: {command: x}
`,
			want: []string{
				"t.yaml:4:13: upstreams[0].prefix: must be empty or 1 to 32 of A-Z a-z 0-9 _ -",
				`t.yaml:10:13: upstreams[2].prefix: prefix "shared" is already used by upstreams[1] at line 6`,
				`t.yaml:12:9: upstreams[3].id: prefix "shared" is already used by upstreams[1] at line 6`,
			},
		},
		{
			name: "upstream entry is not a mapping",
			yaml: "upstreams:\n  - fs\n  -\n",
			want: []string{
				"t.yaml:2:5: upstreams[0]: want a mapping, got a scalar",
				"t.yaml:3:4: upstreams[1].id: required",
				"t.yaml:3:4: upstreams[1]: one of stdio, http or sse is required",
			},
		},
		{
			name: "a transport of the wrong kind is reported once",
			yaml: "upstreams:\n  - id: a\n    stdio: npx\n",
			want: []string{"t.yaml:3:12: upstreams[0].stdio: want a mapping, got a scalar"},
		},
		{
			name: "self-referencing anchor",
			yaml: "upstreams:\n  - id: a\n    stdio: {command: x, args: &a [*a]}\n",
			want: []string{"t.yaml:3:31: upstreams[0].stdio.args[0]: want a string, got a list"},
		},
		{
			name: "alias amplification",
			yaml: aliasBomb(),
			want: []string{"t.yaml:2:351: upstreams[130].stdio.args[154]: document too large after expanding aliases"},
		},
		{
			name: "auth unknown key",
			yaml: "auth:\n  modes: none\n",
			want: []string{"t.yaml:2:3: auth.modes: unknown key (want one of mode, public_url, access_token_ttl, refresh_token_ttl, key_rotation, dcr, cimd, clients, issuers, federation, token_exchange, id_jag)"},
		},
		{
			name: "auth mode",
			yaml: "auth: {mode: oauth}\n",
			want: []string{`t.yaml:1:14: auth.mode: must be embedded, external or none, not "oauth"`},
		},
		{
			name: "auth explicit empty mode is not replaced by the default",
			yaml: "auth: {mode: ''}\n",
			want: []string{`t.yaml:1:14: auth.mode: must be embedded, external or none, not ""`},
		},
		{
			name: "auth none on a non-loopback listener",
			yaml: "listen: 0.0.0.0:8787\nauth:\n  mode: none\n",
			want: []string{"t.yaml:3:9: auth: none is refused on a non-loopback listener"},
		},
		{
			name: "auth none on every interface",
			yaml: "listen: ':8787'\nauth:\n  mode: none\n  public_url: http://127.0.0.1:8787\n",
			want: []string{"t.yaml:3:9: auth: none is refused on a non-loopback listener"},
		},
		{
			name: "auth none on a host name other than localhost",
			yaml: "listen: mandate.internal:80\nauth: {mode: none}\n",
			want: []string{"t.yaml:2:14: auth: none is refused on a non-loopback listener"},
		},
		{
			name: "auth none with a bad listen reports the listen only",
			yaml: "listen: nowhere\nauth: {mode: none}\n",
			want: []string{`t.yaml:1:9: listen: must be host:port, such as "127.0.0.1:8787"`},
		},
		{
			name: "auth external needs an issuer",
			yaml: "auth:\n  mode: external\n",
			want: []string{"t.yaml:2:3: auth.issuers: at least one issuer is required when auth.mode is external"},
		},
		{
			name: "auth issuer urls",
			yaml: `
auth:
  mode: external
  issuers:
    - jwks_url: https://idp.example/keys
    - issuer: http://idp.example
    - issuer: /realms/x
      jwks_url: http://idp.example/keys
    - issuer: https://idp.example?tenant=1
    - issuer: "https://idp.example#x"
    - issuer: https://idp.example/realms/agents
  id_jag:
    - issuer: ftp://idp.example
`,
			want: []string{
				"t.yaml:5:7: auth.issuers[0].issuer: required",
				"t.yaml:6:15: auth.issuers[1].issuer: must be an absolute https:// URL (http:// only for a loopback host)",
				"t.yaml:7:15: auth.issuers[2].issuer: must be an absolute https:// URL (http:// only for a loopback host)",
				"t.yaml:8:17: auth.issuers[2].jwks_url: must be an absolute https:// URL (http:// only for a loopback host)",
				"t.yaml:9:15: auth.issuers[3].issuer: must not have a query or fragment",
				"t.yaml:10:15: auth.issuers[4].issuer: must not have a query or fragment",
				"t.yaml:13:15: auth.id_jag[0].issuer: must be an absolute https:// URL (http:// only for a loopback host)",
			},
		},
		{
			name: "auth public_url",
			yaml: `
auth: {public_url: "https://mandate.example.com/gateway"}
`,
			want: []string{"t.yaml:2:20: auth.public_url: must be scheme://host[:port] with no path, query or fragment"},
		},
		{
			name: "auth public_url shapes",
			yaml: "auth: {public_url: 'ftp://x'}\n",
			want: []string{"t.yaml:1:20: auth.public_url: must be an absolute http:// or https:// URL"},
		},
		{
			name: "auth public_url with a trailing slash",
			yaml: "auth:\n  public_url: https://x/\n",
			want: []string{"t.yaml:2:15: auth.public_url: must be scheme://host[:port] with no path, query or fragment"},
		},
		{
			name: "auth public_url with a query",
			yaml: "auth:\n  public_url: https://x?a=b\n",
			want: []string{"t.yaml:2:15: auth.public_url: must be scheme://host[:port] with no path, query or fragment"},
		},
		{
			name: "auth public_url with user info",
			yaml: "auth:\n  public_url: https://user:hunter2@x\n",
			want: []string{"t.yaml:2:15: auth.public_url: must be scheme://host[:port] with no path, query or fragment"},
		},
		{
			name: "auth public_url explicit empty",
			yaml: "auth:\n  public_url: ''\n",
			want: []string{"t.yaml:2:15: auth.public_url: required"},
		},
		{
			name: "auth public_url cannot be derived from a listen without a host",
			yaml: "listen: ':8787'\n",
			want: []string{`t.yaml:1:9: auth.public_url: required: it cannot be derived from listen ":8787"`},
		},
		{
			name: "auth durations and counts",
			yaml: `
auth:
  access_token_ttl: -1s
  refresh_token_ttl: soon
  key_rotation: -1h
  dcr: {per_minute: -1}
  cimd: {timeout: -5s, max_bytes: -1, allow_hosts: ["", ok]}
`,
			want: []string{
				"t.yaml:3:21: auth.access_token_ttl: must be positive",
				`t.yaml:4:22: auth.refresh_token_ttl: want a duration such as "30s" or "5m"`,
				"t.yaml:5:17: auth.key_rotation: must be positive",
				"t.yaml:6:21: auth.dcr.per_minute: must be at least 1",
				"t.yaml:7:19: auth.cimd.timeout: must be positive",
				"t.yaml:7:35: auth.cimd.max_bytes: must be at least 1",
				"t.yaml:7:53: auth.cimd.allow_hosts[0]: must not be empty",
			},
		},
		{
			name: "auth clients",
			yaml: `
auth:
  clients:
    - name: no id
      redirect_uris: ["https://a.example/cb"]
    - id: web
      redirect_uris: ["http://web.example/cb", "https://web.example/cb#frag", "cb"]
    - id: web
      redirect_uris: ["https://web.example/cb"]
    - id: robot
      grant_types: [client_credentials, password, implicit]
    - id: portal
      grant_types: [authorization_code]
      trust_level: root
    - id: bare
    - id: both
      secret: s
      jwks_url: https://both.example/jwks
      grant_types: [client_credentials]
    - id: keys
      jwks: "not json"
      jwks_url: https://keys.example/jwks
      grant_types: [client_credentials]
    - id: empty
      jwks: '{"keys": []}'
      grant_types: []
      scopes: []
    - id: spaced
      secret: s
      grant_types: [client_credentials]
      scopes: ["mcp tools", ""]
      trust_level: ""
`,
			want: []string{
				"t.yaml:4:7: auth.clients[0].id: required",
				"t.yaml:7:23: auth.clients[1].redirect_uris[0]: must be an absolute https:// URL (http:// only for a loopback host)",
				"t.yaml:7:48: auth.clients[1].redirect_uris[1]: must not have a fragment",
				"t.yaml:7:79: auth.clients[1].redirect_uris[2]: must be an absolute https:// URL (http:// only for a loopback host)",
				`t.yaml:8:11: auth.clients[2].id: duplicate id "web" (also auth.clients[1] at line 6)`,
				"t.yaml:11:21: auth.clients[3].grant_types[0]: client_credentials requires secret, jwks or jwks_url",
				`t.yaml:11:41: auth.clients[3].grant_types[1]: unknown grant type "password" (want one of authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:jwt-bearer)`,
				`t.yaml:11:51: auth.clients[3].grant_types[2]: unknown grant type "implicit" (want one of authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:jwt-bearer)`,
				"t.yaml:13:21: auth.clients[4].grant_types[0]: authorization_code requires at least one of redirect_uris",
				`t.yaml:14:20: auth.clients[4].trust_level: must be untrusted, standard or trusted, not "root"`,
				"t.yaml:15:7: auth.clients[5].redirect_uris: required by the default grant types; set grant_types for a client without redirects",
				"t.yaml:18:17: auth.clients[6].jwks_url: only one of secret, jwks or jwks_url may be set",
				`t.yaml:21:13: auth.clients[7].jwks: must be a JSON Web Key Set, {"keys": [...]} with at least one key`,
				"t.yaml:22:17: auth.clients[7].jwks_url: only one of secret, jwks or jwks_url may be set",
				`t.yaml:25:13: auth.clients[8].jwks: must be a JSON Web Key Set, {"keys": [...]} with at least one key`,
				"t.yaml:26:20: auth.clients[8].grant_types: must not be empty; leave it out for authorization_code and refresh_token",
				"t.yaml:27:15: auth.clients[8].scopes: must not be empty; leave it out for every supported scope",
				"t.yaml:31:16: auth.clients[9].scopes[0]: must be a non-empty scope name without spaces",
				"t.yaml:31:29: auth.clients[9].scopes[1]: must be a non-empty scope name without spaces",
				`t.yaml:32:20: auth.clients[9].trust_level: must be untrusted, standard or trusted, not ""`,
			},
		},
		{
			name: "auth token exchange names configured clients",
			yaml: `
auth:
  clients:
    - {id: agent, redirect_uris: ["https://a.example/cb"]}
  token_exchange:
    trusted_clients: [agent, ghost]
`,
			want: []string{`t.yaml:6:30: auth.token_exchange.trusted_clients[1]: "ghost" is not a client in auth.clients`},
		},
		{
			name: "auth federation",
			yaml: `
auth:
  federation:
    issuer: http://idp.example
    scopes: [email]
`,
			want: []string{
				"t.yaml:4:5: auth.federation.client_id: required",
				"t.yaml:4:13: auth.federation.issuer: must be an absolute https:// URL (http:// only for a loopback host)",
				"t.yaml:5:13: auth.federation.scopes: must include openid",
			},
		},
		{
			name: "auth federation empty scopes and no issuer",
			yaml: "auth:\n  federation: {client_id: m, scopes: []}\n",
			want: []string{
				"t.yaml:2:15: auth.federation.issuer: required",
				"t.yaml:2:38: auth.federation.scopes: must not be empty; leave it out for openid, email and profile",
			},
		},
		{
			name: "auth kinds",
			yaml: "auth:\n  clients: {id: a}\n  federation: [x]\n  dcr: {enabled: yes}\n",
			want: []string{
				"t.yaml:2:12: auth.clients: want a list, got a mapping",
				"t.yaml:3:15: auth.federation: want a mapping, got a list",
				"t.yaml:4:18: auth.dcr.enabled: want true or false",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cfg, _ := Parse("t.yaml", []byte(tt.yaml)); cfg != nil {
				t.Errorf("Parse returned a Config along with problems")
			}
			got, err := parseProblems(t, tt.yaml)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if want := strings.Join(tt.want, "\n"); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

// parseProblems parses doc, which must fail with *Error, and returns its
// problems as "file:line:col: field: message" lines, with the error.
func parseProblems(t *testing.T, doc string) ([]string, error) {
	t.Helper()
	_, err := Parse("t.yaml", []byte(doc))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Parse error = %v (%T), want *Error", err, err)
	}
	got := make([]string, 0, len(cerr.Problems))
	for _, p := range cerr.Problems {
		got = append(got, p.String())
	}
	return got, err
}

// aliasBomb returns a small document that names one 1,000-item list from
// 200 upstreams, so walking it visits over 200,000 nodes.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("upstreams:\n  - {id: u, stdio: {command: x, args: &a [")
	b.WriteString(strings.Repeat("x,", 999))
	b.WriteString("x]}}\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  - {id: u%d, stdio: {command: x, args: *a}}\n", i)
	}
	return b.String()
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "m.yaml", Line: 3, Col: 5, Field: "listen", Msg: "bad"}, "m.yaml:3:5: listen: bad"},
		{Problem{File: "m.yaml", Field: "listen", Msg: "bad"}, "m.yaml: listen: bad"},
		{Problem{File: "m.yaml", Line: 2, Msg: "bad"}, "m.yaml:2: bad"},
		{Problem{Field: "upstreams[0].id", Msg: "required"}, "upstreams[0].id: required"},
		{Problem{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestErrorWithoutProblems(t *testing.T) {
	if got := (&Error{}).Error(); got == "" {
		t.Error("Error() of an empty *Error is empty")
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	cfg := &Config{Upstreams: []Upstream{{ID: "a", HTTP: &HTTPUp{URL: "https://x"}}, {ID: "a"}}}
	cfg.ApplyDefaults()
	var got []string
	for _, p := range Validate(cfg) {
		got = append(got, p.String())
	}
	want := []string{
		"upstreams[1]: one of stdio, http or sse is required",
		`upstreams[1].id: duplicate id "a" (also upstreams[0])`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate:\n got %q\nwant %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(path, []byte("upstreams:\n  - {id: a, stdio: {command: x}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Source != path || cfg.Upstreams[0].Line != 2 {
		t.Errorf("Source, Line = %q, %d; want %q, 2", cfg.Source, cfg.Upstreams[0].Line, path)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestQuickstart(t *testing.T) {
	cfg, err := Quickstart()
	if err != nil {
		t.Fatalf("Quickstart: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := defaults(upstream(Upstream{
		ID:    "demo",
		Stdio: &Stdio{Command: exe, Args: []string{"demo-upstream"}},
		Line:  15,
	}))
	want.Source = ""
	if got := plain(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("Quickstart:\n got %+v\nwant %+v", got, want)
	}
	if ps := Validate(cfg); len(ps) > 0 {
		t.Errorf("Validate(Quickstart()) = %v", ps)
	}
}

// setExampleEnv sets the variables examples/mandate.yaml refers to.
func setExampleEnv(t *testing.T) {
	t.Setenv("REMOTE_KEY", "example-key")
	t.Setenv("CI_BOT_SECRET", "example-client-secret")
	t.Setenv("OIDC_CLIENT_SECRET", "example-oidc-secret")
	t.Setenv("PDP_TOKEN", "example-pdp-token")
}

func TestExample(t *testing.T) {
	setExampleEnv(t)
	cfg, err := Load(filepath.Join("..", "..", "examples", "mandate.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if ps := Validate(cfg); len(ps) > 0 {
		t.Errorf("Validate = %v", ps)
	}
	var kinds []string
	for _, u := range cfg.Upstreams {
		kinds = append(kinds, u.Transport())
	}
	if want := []string{"stdio", "http", "sse"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("transports = %v, want %v", kinds, want)
	}
	if got := cfg.Upstreams[1].HTTP.Headers["X-Api-Key"]; got != "example-key" {
		t.Errorf("X-Api-Key = %q, want the expanded variable", got)
	}
	if got := cfg.Auth.Clients[0].Secret; got != "example-client-secret" {
		t.Errorf("auth.clients[0].secret = %q, want the expanded variable", got)
	}
	if cfg.Auth.Mode != AuthEmbedded || cfg.ResourceURL() != "http://127.0.0.1:8787/mcp" {
		t.Errorf("mode %q, resource %q; want embedded at http://127.0.0.1:8787/mcp", cfg.Auth.Mode, cfg.ResourceURL())
	}
}

// TestExampleSetsEveryKey keeps examples/mandate.yaml showing the whole
// shape: a key added to the types must be added to the example too.
func TestExampleSetsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "mandate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				seen[c.Value] = true
			}
			walk(c)
		}
	}
	walk(&doc)
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Config](), reflect.TypeFor[Store](), reflect.TypeFor[HTTP](),
		reflect.TypeFor[Upstream](), reflect.TypeFor[Stdio](), reflect.TypeFor[HTTPUp](),
		reflect.TypeFor[SSEUp](), reflect.TypeFor[Restart](),
		reflect.TypeFor[Auth](), reflect.TypeFor[DCR](), reflect.TypeFor[CIMD](),
		reflect.TypeFor[Client](), reflect.TypeFor[Issuer](), reflect.TypeFor[ClaimMap](),
		reflect.TypeFor[Federation](), reflect.TypeFor[TokenExchange](), reflect.TypeFor[Policy](),
		reflect.TypeFor[AuthZEN](), reflect.TypeFor[Audit](), reflect.TypeFor[AuditRedact](),
	} {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" && !seen[name] {
				t.Errorf("examples/mandate.yaml does not show %s.%s (%q)", typ.Name(), f.Name, name)
			}
		}
	}
}

// TestRoundTrip checks that a Config written back as YAML parses to the same
// values, which is what printing a redacted config relies on.
func TestRoundTrip(t *testing.T) {
	setExampleEnv(t)
	cfg, err := Load(filepath.Join("..", "..", "examples", "mandate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(cfg.Source, out)
	if err != nil {
		t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
	}
	for _, c := range []*Config{cfg, again} {
		for i := range c.Upstreams {
			c.Upstreams[i].Line = 0 // Marshal does not keep the layout.
		}
	}
	if !reflect.DeepEqual(plain(again), plain(cfg)) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", plain(again), plain(cfg))
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"bad.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(quickstartYAML)
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("upstreams: [{id: a, stdio: {command: '${env:X}${file:y}$${'}}]\n"))
	f.Add([]byte("listen: ':1'\nauth: {mode: none, public_url: 'http://[::1]:1', clients: [{id: a, secret: '${env:X}', grant_types: [client_credentials]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned cfg %v and err %v", cfg != nil, err)
		}
		if err != nil {
			var cerr *Error
			if errors.As(err, &cerr) && len(cerr.Problems) == 0 {
				t.Fatal("*Error without problems")
			}
			return
		}
		if ps := Validate(cfg); len(ps) > 0 {
			t.Fatalf("Parse accepted a config Validate refuses: %v", ps)
		}
	})
}
