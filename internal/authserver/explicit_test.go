package authserver

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// TestExplicitScopes: an explicit scope (mandate:admin) is supported but
// never a default, and an agent that registered itself cannot hold it even
// by asking; only a pre-registered agent whose ceiling names it can.
func TestExplicitScopes(t *testing.T) {
	const admin = "mandate:admin"
	e := newEnv(t, func(o *Options) {
		o.DCR = DCR{Enabled: true, PerMinute: 100}
		o.ScopesSupported = []string{"mcp:tools", "mcp:prompts", "mcp:resources", admin}
		o.ExplicitScopes = []string{admin}
	})
	ctx := context.Background()

	status, m := register(t, e, `{"client_name":"Greedy","redirect_uris":["http://127.0.0.1:33418/cb"],
		"token_endpoint_auth_method":"none","scope":"mcp:tools mandate:admin"}`)
	if status != http.StatusCreated || m["scope"] != "mcp:tools" {
		t.Fatalf("DCR asking for the admin scope: %d %v", status, m)
	}
	status, m = register(t, e, `{"client_name":"Quiet","redirect_uris":["http://127.0.0.1:33418/cb"],"token_endpoint_auth_method":"none"}`)
	if status != http.StatusCreated || m["scope"] != "mcp:tools mcp:prompts mcp:resources" {
		t.Fatalf("DCR default scopes: %d %v", status, m)
	}

	if err := e.srv.RegisterClients(ctx, []ConfigClient{
		{ID: "ops-console", Name: "Ops", RedirectURIs: []string{"http://127.0.0.1:33418/cb"}, Scopes: []string{"mcp:tools", admin}},
		{ID: "plain", Name: "Plain", RedirectURIs: []string{"http://127.0.0.1:33418/cb"}},
	}); err != nil {
		t.Fatal(err)
	}
	ops, err := e.store.GetAgent(ctx, "ops-console")
	if err != nil || !slices.Contains(e.srv.allowedScopes(ops), admin) {
		t.Fatalf("a pre-registered ceiling naming the admin scope keeps it: %v %v", ops.Scopes, err)
	}
	plain, err := e.store.GetAgent(ctx, "plain")
	if err != nil || slices.Contains(plain.Scopes, admin) {
		t.Fatalf("a pre-registered agent without scopes got the admin scope by default: %v %v", plain.Scopes, err)
	}

	// client_credentials: a request naming no scope never gets the explicit
	// one, even when the agent's ceiling holds it; naming it does.
	if err := e.srv.RegisterClients(ctx, []ConfigClient{{ID: "ops-bot", Name: "Ops bot", Secret: "a-long-enough-test-secret",
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"mcp:tools", admin}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ask, want string }{{"", "mcp:tools"}, {"mcp:tools " + admin, "mcp:tools " + admin}} {
		form := url.Values{"grant_type": {"client_credentials"}}
		if tc.ask != "" {
			form.Set("scope", tc.ask)
		}
		status, tok, _ := e.token(form, "ops-bot", "a-long-enough-test-secret")
		if status != http.StatusOK || tok.Scope != tc.want {
			t.Errorf("client_credentials asking %q: %d scope %q, want %q", tc.ask, status, tok.Scope, tc.want)
		}
	}
}
