package identity

import "testing"

func TestTrust(t *testing.T) {
	tests := []struct{ level, want string }{
		{TrustTrusted, TrustTrusted},
		{TrustStandard, TrustStandard},
		{TrustUntrusted, TrustUntrusted},
		{"", TrustUntrusted},
		{"Trusted", TrustUntrusted},
		{"admin", TrustUntrusted},
	}
	for _, tt := range tests {
		p := &Principal{Agent: "a", TrustLevel: tt.level}
		if got := p.Trust(); got != tt.want {
			t.Errorf("Trust() of %q = %q, want %q", tt.level, got, tt.want)
		}
	}
}

func TestLocalIsTrusted(t *testing.T) {
	if got := Local().Trust(); got != TrustTrusted {
		t.Errorf("Local().Trust() = %q, want %q", got, TrustTrusted)
	}
}
