package cli

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/authn"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
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
	local := agentGate(st, false, "https://mandate.example", nil, log)
	external := agentGate(st, true, "", nil, log)

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

// openSharedSQLite opens one SQLite file twice, as `mandate serve` and the
// CLI do.
func openSharedSQLite(t *testing.T) (store.Store, store.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mandate.db")
	var ss [2]store.Store
	for i := range ss {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		ss[i] = s
	}
	return ss[0], ss[1]
}

// TestAgentGateSeesOtherWriters: with the gate's records cached, a
// suspension or a disabled user written by another process on the same
// database denies the very next request, and lifting it admits the one
// after.
func TestAgentGateSeesOtherWriters(t *testing.T) {
	ctx := t.Context()
	served, cli := openSharedSQLite(t)
	const local = "https://mandate.example"
	t0 := time.Now()
	if err := cli.PutAgent(ctx, store.Agent{ID: "bot", Registration: store.RegistrationConfig,
		TrustLevel: identity.TrustStandard, Status: store.AgentActive, AuthMethod: "none", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	alice := store.User{ID: "u-alice", Username: "alice", CreatedAt: t0}
	if err := cli.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	gate := agentGate(served, false, local, nil, slog.New(slog.DiscardHandler))
	call := func() error {
		return gate(ctx, &identity.Principal{Issuer: local, User: "u-alice", Agent: "bot",
			Method: identity.MethodAuthorizationCode})
	}
	steps := []struct {
		name   string
		change func() error
		admit  bool
	}{
		{"nothing changed", func() error { return nil }, true},
		{"nothing changed again", func() error { return nil }, true},
		{"agent suspended", func() error { return cli.SetAgentStatus(ctx, "bot", store.AgentSuspended) }, false},
		{"agent resumed", func() error { return cli.SetAgentStatus(ctx, "bot", store.AgentActive) }, true},
		{"user disabled", func() error { alice.Disabled = true; return cli.UpdateUser(ctx, alice) }, false},
		{"user enabled", func() error { alice.Disabled = false; return cli.UpdateUser(ctx, alice) }, true},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if err := call(); (err == nil) != s.admit {
			t.Errorf("%s: gate = %v, want admitted %v", s.name, err, s.admit)
		}
	}
}

// gateStore counts the agent reads of a memory store and can fail its
// generation or its reads.
type gateStore struct {
	*memory.Store
	agentReads      int
	genErr, readErr error
}

func (s *gateStore) Generation(ctx context.Context) (uint64, error) {
	if s.genErr != nil {
		return 0, s.genErr
	}
	return s.Store.Generation(ctx)
}

func (s *gateStore) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	s.agentReads++
	if s.readErr != nil {
		return store.Agent{}, s.readErr
	}
	return s.Store.GetAgent(ctx, id)
}

// TestAgentGateCacheFailsSafe: unchanged records are read once; with the
// generation unreadable the gate reads the records on every request; with
// the records unreadable, and nothing it may trust cached, it refuses as
// unavailable.
func TestAgentGateCacheFailsSafe(t *testing.T) {
	ctx := t.Context()
	st := &gateStore{Store: memory.New()}
	if err := st.PutAgent(ctx, store.Agent{ID: "bot", Registration: store.RegistrationConfig,
		TrustLevel: identity.TrustStandard, Status: store.AgentActive, AuthMethod: "none", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	gate := agentGate(st, false, "https://mandate.example", nil, slog.New(slog.DiscardHandler))
	call := func() error {
		return gate(ctx, &identity.Principal{Issuer: "https://idp.example", Agent: "bot",
			Method: identity.MethodClientCredentials})
	}
	for range 3 {
		if err := call(); err != nil {
			t.Fatalf("gate: %v", err)
		}
	}
	if st.agentReads != 1 {
		t.Errorf("agent read %d times while unchanged, want once", st.agentReads)
	}
	st.genErr = errors.New("generation unreadable")
	for range 2 {
		if err := call(); err != nil {
			t.Fatalf("gate with the generation unreadable: %v", err)
		}
	}
	if st.agentReads != 3 {
		t.Errorf("agent read %d times, want on every request while the generation is unreadable", st.agentReads)
	}
	st.readErr = errors.New("database on fire")
	if err := call(); !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("gate with the store failing = %v, want ErrUnavailable", err)
	}
	// A change sends the gate back to records it cannot read.
	st.genErr = nil
	if err := st.SetAgentStatus(ctx, "bot", store.AgentSuspended); err != nil {
		t.Fatal(err)
	}
	if err := call(); !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("gate after a change with the records unreadable = %v, want ErrUnavailable", err)
	}
}
