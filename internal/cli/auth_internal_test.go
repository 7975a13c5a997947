package cli

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/authn"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
)

// TestAgentGateTrustLevel: the principal leaves the gate with its agent's
// trust level from the registry, whatever it held before, and an agent
// first seen from a trusted external issuer gets the standard level.
func TestAgentGateTrustLevel(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	t0 := time.Now()
	for _, a := range []store.Agent{
		{ID: "configured", Registration: store.RegistrationConfig, TrustLevel: identity.TrustTrusted, Status: store.AgentActive, AuthMethod: "none", CreatedAt: t0},
		{ID: "self-registered", Registration: store.RegistrationDCR, TrustLevel: identity.TrustUntrusted, Status: store.AgentActive, AuthMethod: "none", CreatedAt: t0},
		{ID: "suspended", Registration: store.RegistrationConfig, TrustLevel: identity.TrustTrusted, Status: store.AgentSuspended, AuthMethod: "none", CreatedAt: t0},
	} {
		if err := st.PutAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	local := agentGate(st, false, "https://mandate.example", log)
	external := agentGate(st, true, "", log)

	tests := []struct {
		name    string
		gate    func(context.Context, *identity.Principal) error
		agent   string
		claimed string // what the principal held before the gate
		want    string
		wantErr error
	}{
		{"registry level", local, "configured", "", identity.TrustTrusted, nil},
		{"a claimed level is replaced", local, "self-registered", identity.TrustTrusted, identity.TrustUntrusted, nil},
		{"external agent on first sight", external, "new-external", "", identity.TrustStandard, nil},
		{"external agent seen before", external, "new-external", identity.TrustTrusted, identity.TrustStandard, nil},
		{"suspended agent", local, "suspended", "", "", authn.ErrAgentSuspended},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &identity.Principal{Issuer: "https://idp.example", Agent: tt.agent, TrustLevel: tt.claimed,
				Method: identity.MethodClientCredentials}
			err := tt.gate(ctx, p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("gate: %v, want %v", err, tt.wantErr)
			}
			if err == nil && p.TrustLevel != tt.want {
				t.Errorf("trust level %q, want %q", p.TrustLevel, tt.want)
			}
		})
	}
	if err := local(ctx, &identity.Principal{Agent: "unknown"}); err == nil {
		t.Error("an unregistered agent passed the gate")
	}
}
