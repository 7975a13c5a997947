package config

import (
	"reflect"
	"testing"
)

func TestResourceURL(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"", "http://127.0.0.1:8787/mcp"},
		{"listen: '[::1]:9'\n", "http://[::1]:9/mcp"},
		{"listen: 0.0.0.0:80\nauth: {public_url: 'https://mandate.example.com'}\n", "https://mandate.example.com/mcp"},
		{"auth: {public_url: 'https://mandate.example.com:8443'}\n", "https://mandate.example.com:8443/mcp"},
	}
	for _, tt := range tests {
		cfg, err := Parse("t.yaml", []byte(tt.yaml))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.yaml, err)
		}
		if got := cfg.ResourceURL(); got != tt.want {
			t.Errorf("ResourceURL() for %q = %q, want %q", tt.yaml, got, tt.want)
		}
	}
}

// TestRegistrationOnlyInEmbeddedMode guards against a registration endpoint
// being served in a mode that has no authorization server behind it.
func TestRegistrationOnlyInEmbeddedMode(t *testing.T) {
	on, off := new(true), new(false)
	tests := []struct {
		name      string
		auth      Auth
		dcr, cimd bool
	}{
		{"zero value is embedded with both on", Auth{}, true, true},
		{"embedded, defaults", Auth{Mode: AuthEmbedded}, true, true},
		{"embedded, switched on", Auth{Mode: AuthEmbedded, DCR: DCR{Enabled: on}, CIMD: CIMD{Enabled: on}}, true, true},
		{"embedded, dcr off", Auth{Mode: AuthEmbedded, DCR: DCR{Enabled: off}}, false, true},
		{"embedded, cimd off", Auth{Mode: AuthEmbedded, CIMD: CIMD{Enabled: off}}, true, false},
		{"external", Auth{Mode: AuthExternal, DCR: DCR{Enabled: on}, CIMD: CIMD{Enabled: on}}, false, false},
		{"none", Auth{Mode: AuthNone, DCR: DCR{Enabled: on}, CIMD: CIMD{Enabled: on}}, false, false},
		{"unknown mode", Auth{Mode: "oauth"}, false, false},
	}
	for _, tt := range tests {
		if got := tt.auth.DCREnabled(); got != tt.dcr {
			t.Errorf("%s: DCREnabled() = %v, want %v", tt.name, got, tt.dcr)
		}
		if got := tt.auth.CIMDEnabled(); got != tt.cimd {
			t.Errorf("%s: CIMDEnabled() = %v, want %v", tt.name, got, tt.cimd)
		}
	}
}

func TestSetListen(t *testing.T) {
	tests := []struct {
		name, yaml, listen, wantURL string
		wantProblems                []string
	}{
		{
			name: "derived public_url follows", yaml: "", listen: "127.0.0.1:9",
			wantURL: "http://127.0.0.1:9",
		},
		{
			name: "explicit public_url stays", yaml: "auth: {public_url: 'https://m.example'}\n", listen: "0.0.0.0:9",
			wantURL: "https://m.example",
		},
		{
			// The override must not slip past the check the file passed.
			name: "auth none refused after moving to a public address", yaml: "auth:\n  mode: none\n", listen: "0.0.0.0:9",
			wantURL:      "http://0.0.0.0:9",
			wantProblems: []string{"t.yaml:2:9: auth: none is refused on a non-loopback listener"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			cfg.SetListen(tt.listen)
			if cfg.Listen != tt.listen || cfg.Auth.PublicURL != tt.wantURL {
				t.Errorf("listen, public_url = %q, %q; want %q, %q", cfg.Listen, cfg.Auth.PublicURL, tt.listen, tt.wantURL)
			}
			var got []string
			for _, p := range Validate(cfg) {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tt.wantProblems) {
				t.Errorf("Validate = %q, want %q", got, tt.wantProblems)
			}
		})
	}
}

// TestAuthNoneRefusedBuiltInCode checks the refusal for a Config that never
// saw a file: no position, but the same message.
func TestAuthNoneRefusedBuiltInCode(t *testing.T) {
	cfg := &Config{Listen: "10.0.0.1:8787", Auth: Auth{Mode: AuthNone}}
	cfg.ApplyDefaults()
	var got []string
	for _, p := range Validate(cfg) {
		got = append(got, p.String())
	}
	want := []string{"auth: none is refused on a non-loopback listener"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate = %q, want %q", got, want)
	}
}
