package authn

import (
	"reflect"
	"testing"
)

func TestRequiredScopes(t *testing.T) {
	tools, prompts, resources := []string{ScopeTools}, []string{ScopePrompts}, []string{ScopeResources}
	tests := []struct {
		method string
		want   []string
	}{
		{"tools/list", tools},
		{"tools/call", tools},
		{"tasks/get", tools},
		{"tasks/result", tools},
		{"prompts/list", prompts},
		{"prompts/get", prompts},
		{"resources/list", resources},
		{"resources/read", resources},
		{"resources/templates/list", resources},
		{"resources/subscribe", resources},
		{"completion/complete", nil},
		{"initialize", nil},
		{"ping", nil},
		{"notifications/initialized", nil},
		{"notifications/resources/updated", nil},
		{"notifications/cancelled", nil},
		{"server/discover", nil},
		{"logging/setLevel", nil},
		{"subscriptions/listen", nil},
		{"toolsx/call", nil},
	}
	for _, tc := range tests {
		if got := RequiredScopes(tc.method); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("RequiredScopes(%q) = %q, want %q", tc.method, got, tc.want)
		}
	}
}

func TestCompletionScopes(t *testing.T) {
	tests := []struct {
		ref  string
		want []string
	}{
		{"ref/prompt", []string{ScopePrompts}},
		{"ref/resource", []string{ScopeResources}},
		{"ref/other", []string{ScopePrompts, ScopeResources}},
		{"", []string{ScopePrompts, ScopeResources}},
	}
	for _, tc := range tests {
		if got := CompletionScopes(tc.ref); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CompletionScopes(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

func TestBaselineScopesFresh(t *testing.T) {
	b := BaselineScopes()
	b[0] = "admin"
	if got := BaselineScopes(); got[0] != ScopeTools {
		t.Fatalf("BaselineScopes shares its slice: %q", got)
	}
}
