package policy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
)

var (
	alice = &identity.Principal{
		Issuer: "https://idp.example", User: "alice", Email: "alice@example.com",
		Groups: []string{"eng"}, Agent: "claude", Scopes: []string{"mcp"},
		Method: identity.MethodAuthorizationCode,
	}
	bob = &identity.Principal{
		Issuer: "https://idp.example", User: "bob", Email: "bob@example.com",
		Agent: "claude", Method: identity.MethodAuthorizationCode,
	}
	robot = &identity.Principal{
		Issuer: "https://idp.example", Agent: "nightly-report",
		Method: identity.MethodClientCredentials,
	}
	noon = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func call(p *identity.Principal, upstream, tool string, args map[string]any) Request {
	return Request{
		Principal: p, Method: "tools/call",
		Target: Target{Kind: KindTool, Upstream: upstream, Name: tool},
		Args:   args, Time: noon,
	}
}

func mustCompile(t testing.TB, files map[string]string) *Snapshot {
	t.Helper()
	in := map[string][]byte{}
	for k, v := range files {
		in[k] = []byte(v)
	}
	s, problems := Compile(in)
	if len(problems) > 0 {
		t.Fatalf("Compile: %v", problems)
	}
	return s
}

func exampleFiles(t testing.TB, names ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "policies", n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}
