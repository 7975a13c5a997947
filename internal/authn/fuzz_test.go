package authn

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary strings to a verifier that trusts real keys.
// Nothing may panic, and nothing but the one token the keys signed may
// verify: a mutation that still verifies is a malleability bug (a second
// spelling of a token, or a check that does not look at what it should).
func FuzzVerify(f *testing.F) {
	rs := key(f, jose.RS256, "rsa-1")
	ec := key(f, jose.ES256, "ec-1")
	ed := key(f, jose.EdDSA, "ed-1")
	v := newTestVerifier(f, rs, ec, ed)
	valid := map[string]bool{}
	for _, k := range []*testKey{rs, ec, ed} {
		tok := k.sign(f, claims(map[string]any{"act": map[string]any{"sub": "b", "act": map[string]any{"client_id": "a"}}}))
		valid[tok] = true
		f.Add(tok)
	}
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	f.Add(craft(`{"alg":"none"}`, `{"iss":"https://as.example"}`, nil))
	f.Add(craft(`{"alg":"RS256","kid":"rsa-1"}`, `{"iss":"https://as.example","aud":["http://127.0.0.1:8787/mcp"],"exp":1e99}`, []byte("sig")))
	f.Add(craft(`{"alg":"ES256","kid":"ec-1","crit":["b64"],"b64":false}`, `{}`, make([]byte, 64)))
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err == nil && !valid[token] {
			t.Fatalf("forged token verified: %q → %+v", token, p)
		}
		if (err == nil) != (p != nil) {
			t.Fatalf("Verify = %v, %v", p, err)
		}
	})
}
