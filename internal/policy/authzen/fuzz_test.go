package authzen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/policy/authzen"
)

// answerTransport is a PDP without metadata that answers every evaluation
// request with body, echoing the request id.
type answerTransport struct{ body []byte }

func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	status, body := http.StatusOK, a.body
	if r.Method == http.MethodGet {
		status, body = http.StatusNotFound, nil
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {r.Header.Get("X-Request-ID")}}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// FuzzAnswer feeds arbitrary PDP answers to an item call and a list. The
// property is failing closed: a call proceeds only when the answer holds
// exactly two results whose decisions are both true, and an item is listed
// only when its own result says true.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{
		`{"evaluations": [{"decision": true}, {"decision": true}]}`,
		`{"evaluations": [{"decision": true}, {"decision": true, "context": {"dev.mandate/approval": "required"}}]}`,
		`{"evaluations": [{"decision": false}]}`,
		`{"evaluations": [{"decision": true}]}`,
		`{"evaluations": [{"decision": "true"}, {"decision": 1}]}`,
		`{"decision": true}`,
		`{"evaluations": [{"decision": true, "context": {"policies": ["a", 1], "reason_admin": {"en": "x"}}}, {"decision": true}], "decision": false}`,
		`[true, true]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := authzen.New("https://pdp.example.com", &authzen.Options{HTTPClient: &http.Client{Transport: answerTransport{body}}})
		if err != nil {
			t.Fatal(err)
		}
		var answer struct {
			Evaluations []struct {
				Decision *bool `json:"decision"`
			} `json:"evaluations"`
		}
		valid := json.Unmarshal(body, &answer) == nil
		yes := func(i int) bool {
			return valid && i < len(answer.Evaluations) && answer.Evaluations[i].Decision != nil && *answer.Evaluations[i].Decision
		}

		d := c.DecideContext(context.Background(), toolCall(alice, "x", map[string]any{"a": 1}))
		if d.Effect != policy.Deny && !(len(answer.Evaluations) == 2 && yes(0) && yes(1)) {
			t.Fatalf("answer %q gave %v", body, d.Effect)
		}
		if d.Effect == policy.Deny && len(d.Errors) == 0 && !(valid && len(answer.Evaluations) > 0) {
			t.Fatalf("answer %q denied without an error", body)
		}

		vis, err := c.VisibleAll(context.Background(), items(2))
		if err == nil {
			if len(vis) != 2 {
				t.Fatalf("answer %q: %d visibilities", body, len(vis))
			}
			for i, v := range vis {
				if v && !yes(i) {
					t.Fatalf("answer %q listed item %d", body, i)
				}
			}
		}
	})
}
