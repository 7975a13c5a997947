package consent_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/benchstat"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
)

// BenchmarkMatch10000Mandates is target (a)'s mandate half: finding the
// mandate that covers one call among 10,000 stored ones (see
// seedMandates), which with the policy decision must stay within 20 µs at
// the median and 100 µs at p99. While no mandate changes, a Match reads
// only the store's change generation and matches mandates decoded before:
// sqlite is the default store, in a file as deployed, where that read is a
// query; memory shows what is left without it. sqlite-uncached reads and
// decodes the mandates on every Match, as the first Match after a change
// does.
func BenchmarkMatch10000Mandates(b *testing.B) {
	openSQLite := func(b *testing.B) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "mandate.db"))
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Migrate(context.Background()); err != nil {
			b.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name string
		open func(b *testing.B) store.Store
		// uncached hides the store's change generation from the service.
		uncached bool
	}{
		{"sqlite", openSQLite, false},
		{"sqlite-uncached", openSQLite, true},
		{"memory", func(*testing.B) store.Store { return memory.New() }, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := tc.open(b)
			defer st.Close()
			var mandates store.MandateStore = st
			if tc.uncached {
				mandates = struct{ store.MandateStore }{st}
			}
			svc := consent.New(mandates, nil, nil)
			seedMandates(b, svc, 10000)
			p, upstream, tool, args := benchCall()
			ctx := context.Background()
			m, err := svc.Match(ctx, p, upstream, tool, args)
			if err != nil || !m.Covered() {
				b.Fatalf("the benchmark's call is not covered: %+v %v", m, err)
			}
			var lat benchstat.Latencies
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				m, err := svc.Match(ctx, p, upstream, tool, args)
				lat.Add(time.Since(t))
				if err != nil || !m.Covered() {
					b.Fatal(m, err)
				}
			}
			lat.Report(b)
		})
	}
}

// benchCall is the call whose mandate BenchmarkMatch10000Mandates looks
// up: u-0001's agent-12 calling list_issues on svc-07.
func benchCall() (*identity.Principal, string, string, map[string]any) {
	p := &identity.Principal{Issuer: "https://idp.example", User: "u-0001", Agent: "agent-12",
		Method: identity.MethodExternal}
	return p, "svc-07", "list_issues", map[string]any{"repo": "org-07/api", "state": "open", "limit": 50}
}

// seedMandates grants n mandates the way an organisation accumulates them:
// 2,000 users each granting a few of 80 agents mandates over one to three
// of 40 upstreams, by tool name or glob, some with argument constraints or
// use counts, a few since revoked. Among them u-0001 has given agent-12
// five mandates, one of which covers benchCall. The set is the same on
// every run.
func seedMandates(tb testing.TB, svc *consent.Service, n int) {
	tb.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(2, 10000))
	tools := []string{"list_issues", "create_issue", "read_file", "search_*", "get_*", "*"}
	grant := func(user, agent string, grants []consent.Grant, uses int) consent.Mandate {
		m, err := svc.Grant(ctx, consent.Spec{
			User: user, Agent: agent, Grants: grants, Purpose: "benchmark: " + user + " to " + agent,
			ExpiresAt: time.Now().Add(30 * 24 * time.Hour), Uses: uses,
		})
		if err != nil {
			tb.Fatal(err)
		}
		return m
	}
	const own = 5
	for i := range n - own {
		user := fmt.Sprintf("u-%04d", r.IntN(2000))
		agent := fmt.Sprintf("agent-%02d", r.IntN(80))
		if user == "u-0001" && agent == "agent-12" {
			agent = "agent-13"
		}
		var grants []consent.Grant
		for range 1 + r.IntN(3) {
			g := consent.Grant{Upstream: fmt.Sprintf("svc-%02d", r.IntN(40)), Tool: tools[r.IntN(len(tools))]}
			if r.IntN(3) == 0 {
				g.Constraints = []consent.Constraint{{Arg: "repo", Prefix: fmt.Sprintf("org-%02d/", r.IntN(60))}}
			}
			grants = append(grants, g)
		}
		uses := consent.Unlimited
		if r.IntN(4) == 0 {
			uses = 1 + r.IntN(100)
		}
		m := grant(user, agent, grants, uses)
		if i%20 == 0 {
			if _, err := svc.Revoke(ctx, m.ID, user); err != nil {
				tb.Fatal(err)
			}
		}
	}
	// u-0001's own mandates to agent-12: other upstreams, a revoked one
	// and one whose constraint the call fails, besides the one that
	// covers it.
	grant("u-0001", "agent-12", []consent.Grant{{Upstream: "svc-03", Tool: "*"}}, consent.Unlimited)
	grant("u-0001", "agent-12", []consent.Grant{{Upstream: "svc-07", Tool: "create_issue"}}, 10)
	m := grant("u-0001", "agent-12", []consent.Grant{{Upstream: "svc-07", Tool: "*"}}, consent.Unlimited)
	if _, err := svc.Revoke(ctx, m.ID, "u-0001"); err != nil {
		tb.Fatal(err)
	}
	grant("u-0001", "agent-12", []consent.Grant{{Upstream: "svc-07", Tool: "list_*",
		Constraints: []consent.Constraint{{Arg: "repo", Prefix: "org-99/"}}}}, consent.Unlimited)
	grant("u-0001", "agent-12", []consent.Grant{
		{Upstream: "svc-12", Tool: "read_file"},
		{Upstream: "svc-07", Tool: "list_issues", Constraints: []consent.Constraint{{Arg: "repo", Prefix: "org-07/"}}},
	}, consent.Unlimited)
}
