package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

func TestCatalogHash(t *testing.T) {
	// The SHA-256 of "[]", so a change of algorithm or encoding is caught.
	const want = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
	if got := store.CatalogHash([]byte("[]")); got != want {
		t.Errorf("CatalogHash([]) = %s, want %s", got, want)
	}
}

func TestValidate(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	body := []byte(`{"tools":[]}`)
	goodSnap := store.CatalogSnapshot{Upstream: "u", Kind: store.KindPrompts, Hash: store.CatalogHash(body), Body: body, FetchedAt: at}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"event ok", store.HealthEvent{Upstream: "u", At: at, Status: store.HealthStarting}.Validate(), nil},
		{"event without upstream", store.HealthEvent{At: at, Status: store.HealthUp}.Validate(), store.ErrInvalid},
		{"event with bad status", store.HealthEvent{Upstream: "u", At: at, Status: "sideways"}.Validate(), store.ErrInvalid},
		{"snapshot ok", goodSnap.Validate(), nil},
		{"every kind", errors.Join(
			store.ValidateCatalogKey("u", store.KindTools),
			store.ValidateCatalogKey("u", store.KindPrompts),
			store.ValidateCatalogKey("u", store.KindResources),
			store.ValidateCatalogKey("u", store.KindResourceTemplates),
		), nil},
		{"kind in other case", store.ValidateCatalogKey("u", "Tools"), store.ErrInvalid},
		{"limit 1", store.ValidateLimit(1), nil},
		{"limit 0", store.ValidateLimit(0), store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil && tc.err != nil {
				t.Errorf("error = %v, want nil", tc.err)
			}
			if tc.want != nil && !errors.Is(tc.err, tc.want) {
				t.Errorf("error = %v, want %v", tc.err, tc.want)
			}
		})
	}
}

func TestStorableKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"usr_1", true},
		{"https://agent.example/client.json", true},
		{"ünïcode", true},
		{"", false},
		{"a\x00b", false},
		{"\xff", false},
	}
	for _, tc := range tests {
		if got := store.StorableKey(tc.key); got != tc.want {
			t.Errorf("StorableKey(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestValidateIdentity(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	agent := store.Agent{
		ID: "a", Registration: store.RegistrationDCR, TrustLevel: "standard", Status: store.AgentActive,
		AuthMethod: "none", CreatedAt: at,
	}
	key := store.SigningKey{ID: "k", Algorithm: "EdDSA", Private: []byte{1}, CreatedAt: at, NotAfter: at, RetireAt: at}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"local user", store.User{ID: "u", Username: "alice", CreatedAt: at}.Validate(), nil},
		{"federated user", store.User{ID: "u", Username: "a", Issuer: "i", Subject: "s", CreatedAt: at}.Validate(), nil},
		{"issuer alone", store.User{ID: "u", Username: "a", Issuer: "i", CreatedAt: at}.Validate(), store.ErrInvalid},
		{"agent", agent.Validate(), nil},
		{"agent status", store.ValidateAgentStatus("paused"), store.ErrInvalid},
		{"key retiring when it stops signing", key.Validate(), nil},
		{"zero time", store.ValidateTime("now", time.Time{}), store.ErrInvalid},
		{"auth request without client", store.AuthRequest{ID: "r", CreatedAt: at, ExpiresAt: at}.Validate(), store.ErrInvalid},
		{"token without family", store.RefreshToken{ID: "t", ClientID: "c", CreatedAt: at, ExpiresAt: at}.Validate(), store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil && tc.err != nil {
				t.Errorf("error = %v, want nil", tc.err)
			}
			if tc.want != nil && !errors.Is(tc.err, tc.want) {
				t.Errorf("error = %v, want %v", tc.err, tc.want)
			}
		})
	}
}
