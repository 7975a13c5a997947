package authn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// Options configures Require and WriteInsufficientScope.
type Options struct {
	// Verify turns the bearer token into a principal. Nil denies every
	// request with 503: a gateway without a verifier must not fall open.
	Verify VerifyFunc
	// ResourceMetadataURL is the URL of Mandate's RFC 9728 metadata,
	// named in every challenge so clients can find the authorization
	// server. Empty omits resource_metadata (clients then fall back to
	// the well-known URLs).
	ResourceMetadataURL string
	// Scopes are challenged on 401: the baseline a client should ask for
	// (usually BaselineScopes()). Empty omits scope; offline_access is
	// never challenged.
	Scopes []string
	// AgentGate, if set, is asked about every verified principal before
	// the request proceeds, e.g. to refuse a suspended agent whose token
	// is still valid. An error wrapping ErrAgentSuspended answers 401
	// invalid_token "agent suspended"; one wrapping ErrUnavailable answers
	// 503; any other answers 401 invalid_token. Nil admits every agent.
	AgentGate func(ctx context.Context, p *identity.Principal) error
	// Log receives one record per refused request, with the reason and
	// never the token or the query string. Nil discards.
	Log *slog.Logger
}

// maxFormBytes bounds the form body read to look for an access_token.
const maxFormBytes = 1 << 20

// Require returns middleware that admits a request only with a valid
// bearer token in the Authorization header and puts its principal in the
// request context (identity.WithPrincipal). Every request is verified on
// its own: a session id grants nothing (MCP S-30).
//
// A token in the query string or a form body is refused with 401
// invalid_request even when a header token is present too (MCP A-05):
// such URLs end up in proxy and access logs, so the token must be treated
// as leaked, and Mandate must not teach clients that it works.
func Require(opts Options) func(http.Handler) http.Handler {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// refuse logs and answers a refusal. The log names the path,
			// never the URL: its query may hold a token.
			refuse := func(status int, code, desc, reason string, err error) {
				level := slog.LevelInfo
				switch {
				case status == http.StatusServiceUnavailable:
					level = slog.LevelWarn
				case code == "":
					level = slog.LevelDebug // every client's first request
				}
				attrs := []any{"status", status, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason}
				if err != nil {
					attrs = append(attrs, "err", err.Error())
				}
				log.LogAttrs(r.Context(), level, "request refused", slog.Group("authn", attrs...))
				writeChallenge(w, status, opts, code, desc, opts.Scopes)
			}
			if tokenInURL(r) {
				refuse(http.StatusUnauthorized, "invalid_request",
					"access tokens are accepted only in the Authorization header", "access_token in query or form", nil)
				return
			}
			token, code := bearerToken(r.Header)
			switch {
			case code != "":
				refuse(http.StatusUnauthorized, code, "malformed Authorization header", "malformed Authorization header", nil)
				return
			case token == "":
				refuse(http.StatusUnauthorized, "", "", "no bearer token", nil)
				return
			case opts.Verify == nil:
				refuse(http.StatusServiceUnavailable, "", "", "no verifier configured", nil)
				return
			}
			p, err := opts.Verify(r.Context(), token)
			if err == nil && p == nil {
				err = errors.New("verifier returned no principal")
			}
			if err != nil {
				if errors.Is(err, ErrInvalidToken) {
					refuse(http.StatusUnauthorized, "invalid_token", "", "invalid token", err)
				} else {
					refuse(http.StatusServiceUnavailable, "", "", "verification unavailable", err)
				}
				return
			}
			if opts.AgentGate != nil {
				if err := opts.AgentGate(r.Context(), p); err != nil {
					switch {
					case errors.Is(err, ErrUnavailable):
						refuse(http.StatusServiceUnavailable, "", "", "agent gate unavailable", err)
					case errors.Is(err, ErrAgentSuspended):
						refuse(http.StatusUnauthorized, "invalid_token", "agent suspended", "agent suspended", err)
					default:
						refuse(http.StatusUnauthorized, "invalid_token", "agent not admitted", "agent not admitted", err)
					}
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), p)))
		})
	}
}

// bearerToken returns the token of the request's one Authorization
// header if its scheme is Bearer (any case). A request with another
// scheme or none has no token; several headers, or Bearer with no token,
// are malformed (error code invalid_request).
func bearerToken(h http.Header) (token, errCode string) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ""
	case 1:
	default:
		return "", "invalid_request"
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ""
	}
	token = strings.TrimLeft(rest, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", "invalid_request"
	}
	return token, ""
}

// tokenInURL reports whether the request carries access_token in its
// query string or, for a form-encoded body, in the form. The body is read
// (at most maxFormBytes) and put back for the next handler.
func tokenInURL(r *http.Request) bool {
	if r.URL.RawQuery != "" {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		if _, ok := q["access_token"]; ok {
			return true
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil || len(body) > maxFormBytes {
		// Too large to inspect: it cannot be an MCP message either, and
		// the next handler's body limit refuses it.
		return false
	}
	f, _ := url.ParseQuery(string(body))
	_, ok := f["access_token"]
	return ok
}

// WriteInsufficientScope answers 403 insufficient_scope (RFC 6750 §3.1,
// MCP A-07). required must list every scope the operation needs — not
// only the missing ones — so the client can ask for all of them in one
// step-up instead of one round trip per scope.
func WriteInsufficientScope(w http.ResponseWriter, opts Options, required []string) {
	desc := "insufficient scope"
	if s := scopeList(required); s != "" {
		desc = "this operation requires scope " + s
	}
	writeChallenge(w, http.StatusForbidden, opts, "insufficient_scope", desc, required)
}

// writeChallenge writes status with a Bearer challenge. Parameters come
// in a fixed order: error, then scope for 403 (what to ask for is the
// point of that answer), resource_metadata, scope for 401, and
// error_description last.
func writeChallenge(w http.ResponseWriter, status int, opts Options, code, desc string, scopes []string) {
	var params []string
	add := func(name, value string) { params = append(params, name+"="+quote(value)) }
	if code != "" {
		add("error", code)
	}
	scope := scopeList(scopes)
	if status == http.StatusForbidden && scope != "" {
		add("scope", scope)
	}
	if opts.ResourceMetadataURL != "" {
		add("resource_metadata", opts.ResourceMetadataURL)
	}
	if status == http.StatusUnauthorized && scope != "" {
		add("scope", scope)
	}
	if desc != "" {
		add("error_description", desc)
	}
	h := w.Header()
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		challenge := "Bearer"
		if len(params) > 0 {
			challenge += " " + strings.Join(params, ", ")
		}
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	body := struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{Error: code, Description: desc}
	if body.Error == "" {
		body.Error = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// scopeList joins scopes with spaces, dropping offline_access, empty
// entries and any that are not RFC 6749 scope tokens.
func scopeList(scopes []string) string {
	var b strings.Builder
	for _, s := range scopes {
		if s == "" || s == offlineAccess || !scopeToken(s) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// scopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// printable ASCII without space, '"' or '\'.
func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// quote returns s as an RFC 9110 quoted-string. Characters a quoted-string
// cannot hold (controls, non-ASCII) become '?', so no value can split the
// header or smuggle in another parameter.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
