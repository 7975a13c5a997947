package authn

import (
	"context"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// benchAlgs are the algorithms benchmarked: RSA 2048-bit and P-256, the
// keys real issuers use, and Ed25519.
var benchAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// benchVerify verifies a realistic token (act chain, groups, scopes)
// b.N times with the key set already held, reporting the median latency
// next to the mean.
func benchVerify(b *testing.B, cacheSize int) {
	for _, alg := range benchAlgs {
		b.Run(string(alg), func(b *testing.B) {
			k := key(b, alg, "bench")
			v := NewJWTVerifier(JWTOptions{
				Issuers:   []IssuerSpec{{Issuer: testIssuer, Keys: staticKeys(k), Audience: testAudience}},
				CacheSize: cacheSize,
				Now:       func() time.Time { return testNow },
			})
			token := k.sign(b, claims(map[string]any{
				"email":  "alice@example.com",
				"groups": []string{"eng", "oncall", "mcp-users"},
				"act":    map[string]any{"sub": "agent-b", "client_id": "agent-b"},
			}))
			ctx := context.Background()
			if _, err := v.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
			samples := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				var start time.Time
				sample := i%16 == 0 && len(samples) < cap(samples)
				if sample {
					start = time.Now()
				}
				p, err := v.Verify(ctx, token)
				if sample {
					samples = append(samples, time.Since(start))
				}
				if err != nil || p.Agent != "agent-b" {
					b.Fatal(p, err)
				}
			}
			if len(samples) > 0 {
				slices.Sort(samples)
				b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
			}
		})
	}
}

// BenchmarkVerifyCached is the steady state: a client presenting the same
// token on every request.
func BenchmarkVerifyCached(b *testing.B) { benchVerify(b, 0) }

// BenchmarkVerifyUncached is a first sight of a token: parse, claims,
// signature and principal, with the issuer's keys already held.
func BenchmarkVerifyUncached(b *testing.B) { benchVerify(b, -1) }
