package authn

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

const prmHeader = `# Golden RFC 9728 document served by MetadataHandler. Guards MCP A-01
# (authorization_servers present), AT-38 (resource is Mandate's own
# canonical URL) and A-03 (offline_access never advertised); the only bearer
# method is the header (A-05). Refresh with -update.
`

func testPRMHandler() http.Handler {
	return MetadataHandler(ProtectedResourceMetadata{
		Resource:             testAudience,
		AuthorizationServers: []string{"http://127.0.0.1:8787"},
		ScopesSupported:      append(BaselineScopes(), "offline_access"),
		ResourceName:         "Mandate",
	})
}

func TestMetadataGolden(t *testing.T) {
	w := httptest.NewRecorder()
	testPRMHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, WellKnownPath+"/mcp", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	golden(t, "prm.golden", prmHeader+w.Body.String())
}

func TestMetadataHTTP(t *testing.T) {
	h := testPRMHandler()
	tests := []struct {
		method string
		status int
		cors   string
		allow  string
	}{
		{http.MethodGet, http.StatusOK, "*", ""},
		{http.MethodHead, http.StatusOK, "*", ""},
		{http.MethodOptions, http.StatusNoContent, "*", ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "", "GET, HEAD, OPTIONS"},
		{http.MethodDelete, http.StatusMethodNotAllowed, "", "GET, HEAD, OPTIONS"},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, WellKnownPath, nil)
			r.Header.Set("Origin", "https://app.example")
			r.Header.Set("Access-Control-Request-Method", "GET")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != tc.cors {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.cors)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if tc.method == http.MethodOptions {
				if got := w.Header().Get("Access-Control-Allow-Methods"); got != "GET, OPTIONS" {
					t.Errorf("Access-Control-Allow-Methods %q", got)
				}
			}
			if tc.method == http.MethodHead && w.Body.Len() != 0 {
				t.Errorf("HEAD wrote a body")
			}
		})
	}
}

func TestMetadataPaths(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/mcp", []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"}},
		{"mcp/", []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"}},
		{"/tenants/a/mcp", []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/tenants/a/mcp"}},
		{"/", []string{"/.well-known/oauth-protected-resource"}},
		{"", []string{"/.well-known/oauth-protected-resource"}},
	}
	for _, tc := range tests {
		if got := MetadataPaths(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MetadataPaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMetadataURL(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "http://127.0.0.1:8787/mcp", want: "http://127.0.0.1:8787/.well-known/oauth-protected-resource/mcp"},
		{in: "https://mandate.example/mcp/", want: "https://mandate.example/.well-known/oauth-protected-resource/mcp"},
		{in: "https://mandate.example", want: "https://mandate.example/.well-known/oauth-protected-resource"},
		{in: "https://mandate.example/a%20b/mcp", want: "https://mandate.example/.well-known/oauth-protected-resource/a%20b/mcp"},
		{in: "/mcp", bad: true},
		{in: "https://mandate.example/mcp?x=1", bad: true},
		{in: "https://mandate.example/mcp#f", bad: true},
		{in: "://", bad: true},
	}
	for _, tc := range tests {
		got, err := MetadataURL(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("MetadataURL(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("MetadataURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
