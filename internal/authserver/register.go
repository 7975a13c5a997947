package authserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/store"
)

// RFC 7591 dynamic client registration. An agent registered this way is
// untrusted: its name is its own claim (the consent page says so), it may
// never be granted token exchange, and an operator can suspend it like any
// other. Registration is deprecated by MCP 2026-07-28 in favour of Client ID
// Metadata Documents but still what most MCP clients do.

// registration is the client metadata Mandate reads (RFC 7591 §2) and
// answers with; unknown fields are ignored, as §3.1 asks.
type registration struct {
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	ApplicationType         string          `json:"application_type,omitempty"`
}

// registered is the registration response (RFC 7591 §3.2.1).
type registered struct {
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	registration
}

// Bounds on what one registration may hold.
const (
	maxRegistrationBytes = 64 << 10
	maxRedirectURIs      = 10
	maxURILength         = 2000
	maxClientName        = 100
)

// regError is an RFC 7591 §3.2.2 error.
type regError struct {
	status int
	code   string // invalid_redirect_uri, invalid_client_metadata, …
	desc   string
}

func (e *regError) Error() string { return e.code + ": " + e.desc }

func badMetadata(format string, args ...any) *regError {
	return &regError{http.StatusBadRequest, "invalid_client_metadata", fmt.Sprintf(format, args...)}
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeRegError(w, &regError{http.StatusMethodNotAllowed, "invalid_request", "use POST"})
		return
	}
	if !s.opts.DCR.Enabled {
		writeRegError(w, &regError{http.StatusForbidden, "access_denied", "dynamic client registration is disabled"})
		return
	}
	if !s.dcrLimit.allow(remoteAddr(r)) {
		w.Header().Set("Retry-After", "60")
		writeRegError(w, &regError{http.StatusTooManyRequests, "too_many_requests", "too many registrations from this address"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeRegError(w, badMetadata("the body must be application/json"))
		return
	}
	var req registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	if err := dec.Decode(&req); err != nil {
		writeRegError(w, badMetadata("the body is not a client metadata object"))
		return
	}
	a, reg, secret, rerr := s.newRegistration(req)
	if rerr != nil {
		writeRegError(w, rerr)
		return
	}
	resp := registered{ClientID: a.ID, ClientIDIssuedAt: a.CreatedAt.Unix(), registration: reg}
	if meta, err := json.Marshal(resp); err == nil {
		a.Metadata = meta
	}
	if secret != "" {
		hash, err := hashSecret(secret)
		if err != nil {
			s.log.Error("authserver: hash client secret", "err", err)
			writeRegError(w, &regError{http.StatusInternalServerError, "server_error", "internal error"})
			return
		}
		a.SecretHash = hash
		never := int64(0)
		resp.ClientSecret, resp.ClientSecretExpiresAt = secret, &never
	}
	if err := s.store.PutAgent(r.Context(), a); err != nil {
		s.log.Error("authserver: store registered agent", "err", err)
		writeRegError(w, &regError{http.StatusInternalServerError, "server_error", "internal error"})
		return
	}
	if err := s.agentRegistered(r.Context(), a); err != nil {
		// The agent is stored but its client learns no id or secret, so
		// it cannot act: an unrecorded registration is no registration.
		writeRegError(w, &regError{http.StatusInternalServerError, "server_error", "internal error"})
		return
	}
	s.log.Info("authserver: agent registered", "client_id", a.ID, "name", a.Name, "auth_method", a.AuthMethod,
		"remote", remoteAddr(r))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

// newRegistration validates req and returns the agent to store, the
// registration as registered (defaults filled in, scopes narrowed) and, for
// a confidential client, its new secret.
func (s *Server) newRegistration(req registration) (store.Agent, registration, string, *regError) {
	reg := req
	if reg.TokenEndpointAuthMethod == "" {
		reg.TokenEndpointAuthMethod = authSecretBase // RFC 7591 §2
	}
	switch reg.TokenEndpointAuthMethod {
	case authNone, authSecretBase, authSecretPost, authPrivateJWT:
	default:
		return store.Agent{}, reg, "", badMetadata("token_endpoint_auth_method %q is not supported", reg.TokenEndpointAuthMethod)
	}
	confidential := reg.TokenEndpointAuthMethod != authNone

	if len(reg.GrantTypes) == 0 {
		reg.GrantTypes = []string{"authorization_code"}
	}
	reg.GrantTypes = dedupe(reg.GrantTypes)
	for _, g := range reg.GrantTypes {
		switch g {
		case "authorization_code", "refresh_token":
		case "client_credentials":
			if !confidential {
				return store.Agent{}, reg, "", badMetadata("client_credentials needs a confidential client")
			}
		default:
			return store.Agent{}, reg, "", badMetadata("grant_type %q is not supported", g)
		}
	}
	if len(reg.ResponseTypes) == 0 {
		reg.ResponseTypes = []string{"code"}
	}
	reg.ResponseTypes = dedupe(reg.ResponseTypes)
	if !slices.Equal(reg.ResponseTypes, []string{"code"}) {
		return store.Agent{}, reg, "", badMetadata("only response_type code is supported")
	}

	reg.RedirectURIs = dedupe(reg.RedirectURIs)
	if slices.Contains(reg.GrantTypes, "authorization_code") && len(reg.RedirectURIs) == 0 {
		return store.Agent{}, reg, "", &regError{http.StatusBadRequest, "invalid_redirect_uri", "redirect_uris is required"}
	}
	if len(reg.RedirectURIs) > maxRedirectURIs {
		return store.Agent{}, reg, "", &regError{http.StatusBadRequest, "invalid_redirect_uri", "too many redirect_uris"}
	}
	for _, u := range reg.RedirectURIs {
		if len(u) > maxURILength {
			return store.Agent{}, reg, "", &regError{http.StatusBadRequest, "invalid_redirect_uri", "redirect_uri too long"}
		}
		if err := checkRedirectURI(u); err != nil {
			return store.Agent{}, reg, "", &regError{http.StatusBadRequest, "invalid_redirect_uri",
				fmt.Sprintf("redirect_uri %q: %v", u, err)}
		}
	}

	if reg.ClientName != "" {
		if utf8.RuneCountInString(reg.ClientName) > maxClientName || !printable(reg.ClientName) {
			return store.Agent{}, reg, "", badMetadata("client_name must be at most %d printable characters", maxClientName)
		}
	}
	for name, v := range map[string]string{"client_uri": reg.ClientURI, "logo_uri": reg.LogoURI} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" || len(v) > maxURILength {
			return store.Agent{}, reg, "", badMetadata("%s must be an https URL", name)
		}
	}

	var keys []byte
	switch {
	case reg.JWKSURI != "":
		// Fetching a URL a stranger registered is an SSRF risk; keys must
		// come inline.
		return store.Agent{}, reg, "", badMetadata("jwks_uri is not supported; register the public keys as jwks")
	case reg.TokenEndpointAuthMethod == authPrivateJWT:
		var err error
		if keys, err = publicKeySet(reg.JWKS); err != nil {
			return store.Agent{}, reg, "", badMetadata("jwks: %v", err)
		}
		reg.JWKS = keys
	case len(reg.JWKS) > 0 && string(reg.JWKS) != "null":
		return store.Agent{}, reg, "", badMetadata("jwks is only used with private_key_jwt")
	default:
		reg.JWKS = nil
	}

	scopes := s.selfRegisteredScopes(strings.Fields(reg.Scope))
	if len(scopes) == 0 {
		return store.Agent{}, reg, "", badMetadata("none of the requested scopes is supported")
	}
	reg.Scope = strings.Join(scopes, " ")

	var secret string
	if isSecretMethod(reg.TokenEndpointAuthMethod) {
		secret = randomToken()
	}
	a := store.Agent{
		ID:           newID("dcr_"),
		Name:         reg.ClientName,
		Registration: store.RegistrationDCR,
		TrustLevel:   "untrusted",
		Status:       store.AgentActive,
		RedirectURIs: reg.RedirectURIs,
		GrantTypes:   reg.GrantTypes,
		AuthMethod:   reg.TokenEndpointAuthMethod,
		JWKS:         keys,
		Scopes:       scopes,
		CreatedAt:    s.now(),
	}
	return a, reg, secret, nil
}

// publicKeySet parses a registered JWKS and returns it with public keys
// only. A set holding private or symmetric key material is refused: the
// client has leaked its key, and a shared key would let Mandate's own store
// forge its assertions.
func publicKeySet(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("private_key_jwt needs jwks")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, errors.New("not a JSON Web Key Set")
	}
	if len(set.Keys) == 0 || len(set.Keys) > 10 {
		return nil, errors.New("want between 1 and 10 keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			return nil, errors.New("only public keys may be registered")
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, errors.New("keys must be for signing")
		}
	}
	return json.Marshal(set)
}

// printable reports whether v has no control or format characters that
// could disguise the name on the consent page.
func printable(v string) bool {
	if !utf8.ValidString(v) || strings.TrimSpace(v) == "" {
		return false
	}
	for _, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

func dedupe(l []string) []string {
	var out []string
	for _, v := range l {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func writeRegError(w http.ResponseWriter, e *regError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": e.code, "error_description": e.desc})
}
