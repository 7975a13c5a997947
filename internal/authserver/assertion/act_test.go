package assertion

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/identity"
)

func TestActClaim(t *testing.T) {
	chain := []identity.Actor{
		{Subject: "gateway", ClientID: "mandate"},
		{Subject: "agent-7", ClientID: "https://agent.example/client.json"},
		{Subject: "planner"},
	}
	got, _ := json.Marshal(ActClaim(chain))
	want := `{"client_id":"mandate","sub":"gateway","act":{"client_id":"https://agent.example/client.json","sub":"agent-7","act":{"sub":"planner"}}}`
	var g, w any
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("ActClaim = %s\nwant       %s", got, want)
	}
	if ActClaim(nil) != nil {
		t.Error("ActClaim(nil) is not nil")
	}
}

func TestParseAct(t *testing.T) {
	chain := []identity.Actor{
		{Subject: "gateway", ClientID: "mandate"},
		{Subject: "agent-7", ClientID: "https://agent.example/client.json"},
		{Subject: "planner"},
	}
	// Round trip through JSON, as a token's claims arrive.
	raw, _ := json.Marshal(map[string]any{"sub": "alice", "act": ActClaim(chain)})
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if got := ParseAct(claims); !reflect.DeepEqual(got, chain) {
		t.Errorf("ParseAct = %+v, want %+v", got, chain)
	}

	for name, tt := range map[string]struct {
		json string
		want []identity.Actor
	}{
		"no act":             {`{"sub":"alice"}`, nil},
		"act not an object":  {`{"act":"agent"}`, nil},
		"act empty":          {`{"act":{}}`, nil},
		"sub not a string":   {`{"act":{"sub":7}}`, nil},
		"client only":        {`{"act":{"client_id":"c"}}`, []identity.Actor{{ClientID: "c"}}},
		"malformed inner":    {`{"act":{"sub":"a","act":["b"]}}`, []identity.Actor{{Subject: "a"}}},
		"inner without name": {`{"act":{"sub":"a","act":{"iss":"x"}}}`, []identity.Actor{{Subject: "a"}}},
	} {
		var c map[string]any
		if err := json.Unmarshal([]byte(tt.json), &c); err != nil {
			t.Fatal(err)
		}
		if got := ParseAct(c); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseAct = %+v, want %+v", name, got, tt.want)
		}
	}
	if ParseAct(nil) != nil {
		t.Error("ParseAct(nil) is not nil")
	}
}

func TestParseActDepthBound(t *testing.T) {
	deep := strings.Repeat(`{"sub":"x","act":`, 100) + `{"sub":"x"}` + strings.Repeat(`}`, 100)
	var c map[string]any
	if err := json.Unmarshal([]byte(`{"act":`+deep+`}`), &c); err != nil {
		t.Fatal(err)
	}
	if got := len(ParseAct(c)); got != maxActDepth {
		t.Errorf("ParseAct read %d links, want the bound %d", got, maxActDepth)
	}
}

func FuzzParseAct(f *testing.F) {
	f.Add(`{"act":{"sub":"a","act":{"sub":"b","client_id":"c"}}}`)
	f.Add(`{"act":[1]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var c map[string]any
		if json.Unmarshal([]byte(s), &c) != nil {
			return
		}
		chain := ParseAct(c)
		if len(chain) > maxActDepth {
			t.Fatalf("chain of %d links", len(chain))
		}
		for _, a := range chain {
			if a.Subject == "" && a.ClientID == "" {
				t.Fatal("empty actor in chain")
			}
		}
		// What ParseAct reads, ActClaim writes back the same way.
		if len(chain) > 0 {
			if back := ParseAct(map[string]any{"act": ActClaim(chain)}); !reflect.DeepEqual(back, chain) {
				t.Fatalf("round trip: %+v != %+v", back, chain)
			}
		}
	})
}
