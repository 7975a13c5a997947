package authzentest

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// readDocs allows reading every document except "secret".
func readDocs(e Evaluation) (bool, map[string]any) {
	if e.Resource.ID == "secret" {
		return false, map[string]any{"reason": "secret"}
	}
	return e.Action.Name == "can_read", nil
}

func post(t *testing.T, p *PDP, path, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestMetadata(t *testing.T) {
	p := New(readDocs, &Options{Path: "/tenant1"})
	defer p.Close()
	resp, err := http.Get(strings.TrimSuffix(p.URL, "/tenant1") + MetadataPath + "/tenant1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"policy_decision_point":       p.URL,
		"access_evaluation_endpoint":  p.URL + EvaluationPath,
		"access_evaluations_endpoint": p.URL + EvaluationsPath,
	}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("metadata = %v, want %v", md, want)
	}
}

const alice = `"subject": {"type": "user", "id": "alice"}`

func TestEvaluations(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		status           int
		// want is the JSON answer; for an error, a substring of the body.
		want string
	}{
		{"single", EvaluationPath,
			`{` + alice + `, "action": {"name": "can_read"}, "resource": {"type": "doc", "id": "a"}, "context": {"time": "now"}}`,
			200, `{"decision": true}`},
		{"single deny with context", EvaluationPath,
			`{` + alice + `, "action": {"name": "can_read"}, "resource": {"type": "doc", "id": "secret"}}`,
			200, `{"decision": false, "context": {"reason": "secret"}}`},
		{"unknown members ignored", EvaluationPath,
			`{` + alice + `, "action": {"name": "can_read"}, "resource": {"type": "doc", "id": "a"}, "extra": [1]}`,
			200, `{"decision": true}`},
		{"batch without evaluations is single", EvaluationsPath,
			`{` + alice + `, "action": {"name": "can_read"}, "resource": {"type": "doc", "id": "a"}}`,
			200, `{"decision": true}`},
		{"defaults overridden per item", EvaluationsPath,
			`{` + alice + `, "action": {"name": "can_read"}, "evaluations": [
				{"resource": {"type": "doc", "id": "a"}},
				{"action": {"name": "can_edit"}, "resource": {"type": "doc", "id": "b"}},
				{"resource": {"type": "doc", "id": "secret"}}]}`,
			200, `{"evaluations": [{"decision": true}, {"decision": false}, {"decision": false, "context": {"reason": "secret"}}]}`},
		{"deny on first deny", EvaluationsPath,
			`{` + alice + `, "action": {"name": "can_read"}, "options": {"evaluations_semantic": "deny_on_first_deny"}, "evaluations": [
				{"resource": {"type": "doc", "id": "a"}}, {"resource": {"type": "doc", "id": "secret"}}, {"resource": {"type": "doc", "id": "c"}}]}`,
			200, `{"evaluations": [{"decision": true}, {"decision": false, "context": {"reason": "secret"}}]}`},
		{"permit on first permit", EvaluationsPath,
			`{` + alice + `, "action": {"name": "can_read"}, "options": {"evaluations_semantic": "permit_on_first_permit"}, "evaluations": [
				{"resource": {"type": "doc", "id": "secret"}}, {"resource": {"type": "doc", "id": "b"}}, {"resource": {"type": "doc", "id": "c"}}]}`,
			200, `{"evaluations": [{"decision": false, "context": {"reason": "secret"}}, {"decision": true}]}`},
		{"execute all", EvaluationsPath,
			`{` + alice + `, "action": {"name": "can_read"}, "options": {"evaluations_semantic": "execute_all"}, "evaluations": [
				{"resource": {"type": "doc", "id": "secret"}}, {"resource": {"type": "doc", "id": "b"}}]}`,
			200, `{"evaluations": [{"decision": false, "context": {"reason": "secret"}}, {"decision": true}]}`},

		{"missing subject", EvaluationPath, `{"action": {"name": "can_read"}, "resource": {"type": "doc", "id": "a"}}`, 400, "missing subject.type, subject.id"},
		{"missing subject id", EvaluationPath, `{"subject": {"type": "user"}, "action": {"name": "can_read"}, "resource": {"type": "doc", "id": "a"}}`, 400, "missing subject.id"},
		{"missing action name", EvaluationPath, `{` + alice + `, "action": {}, "resource": {"type": "doc", "id": "a"}}`, 400, "missing action.name"},
		{"missing resource type", EvaluationPath, `{` + alice + `, "action": {"name": "x"}, "resource": {"id": "a"}}`, 400, "missing resource.type"},
		{"missing resource id in an item", EvaluationsPath, `{` + alice + `, "action": {"name": "x"}, "evaluations": [{"resource": {"type": "doc", "id": "a"}}, {"resource": {"type": "doc"}}]}`, 400, "evaluations[1]: missing resource.id"},
		{"wrong type", EvaluationPath, `{"subject": {"type": "user", "id": 7}, "action": {"name": "x"}, "resource": {"type": "doc", "id": "a"}}`, 400, "expected shape"},
		{"context not an object", EvaluationPath, `{` + alice + `, "action": {"name": "x"}, "resource": {"type": "doc", "id": "a"}, "context": "now"}`, 400, "expected shape"},
		{"unknown semantic", EvaluationsPath, `{` + alice + `, "action": {"name": "x"}, "options": {"evaluations_semantic": "majority"}, "evaluations": [{"resource": {"type": "doc", "id": "a"}}]}`, 400, "evaluations_semantic"},
		{"not JSON", EvaluationPath, `subject=alice`, 400, "expected shape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(readDocs, nil)
			defer p.Close()
			status, h, body := post(t, p, tc.path, tc.body, map[string]string{"X-Request-ID": "req-1"})
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if got := h.Get("X-Request-ID"); got != "req-1" {
				t.Errorf("X-Request-ID = %q, want the request's", got)
			}
			if status != 200 {
				if !strings.Contains(body, tc.want) {
					t.Errorf("body %q, want it to contain %q", body, tc.want)
				}
				return
			}
			var got, want any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("answer %s, want %s", body, tc.want)
			}
		})
	}
}

func TestMethodsAndContentType(t *testing.T) {
	p := New(readDocs, nil)
	defer p.Close()
	resp, err := http.Get(p.URL + EvaluationPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET evaluation: %d", resp.StatusCode)
	}
	resp, err = http.Post(p.URL+EvaluationPath, "text/plain", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("text/plain evaluation: %d", resp.StatusCode)
	}
}

func TestMandateRules(t *testing.T) {
	ctx := func(delegated, covered, destructive bool) map[string]any {
		return map[string]any{
			"delegated":   delegated,
			"mandate":     map[string]any{"covered": covered},
			"annotations": map[string]any{"destructive": destructive},
		}
	}
	user := Entity{Type: "user", ID: "alice"}
	agent := Entity{Type: "agent", ID: "robot"}
	for _, tc := range []struct {
		name     string
		e        Evaluation
		ok       bool
		policies []string
		approval bool
	}{
		{"session for anyone", Evaluation{Subject: agent, Action: Action{Name: "initialize"}}, true, []string{"session"}, false},
		{"call under a mandate", Evaluation{Subject: user, Action: Action{Name: "tools/call"}, Context: ctx(true, true, false)}, true, []string{"delegated-with-mandate"}, false},
		{"call without a mandate", Evaluation{Subject: user, Action: Action{Name: "tools/call"}, Context: ctx(true, false, false)}, false, nil, false},
		{"destructive call", Evaluation{Subject: user, Action: Action{Name: "tools/call"}, Context: ctx(true, true, true)}, true, []string{"delegated-with-mandate", "destructive-needs-approval"}, true},
		{"destructive prompt", Evaluation{Subject: user, Action: Action{Name: "prompts/get"}, Context: ctx(true, true, true)}, true, []string{"delegated-with-mandate"}, false},
		{"autonomous agent", Evaluation{Subject: agent, Action: Action{Name: "tools/call"}, Context: ctx(false, true, false)}, false, nil, false},
		{"no context", Evaluation{Subject: user, Action: Action{Name: "tools/call"}}, false, nil, false},
		{"unknown method", Evaluation{Subject: user, Action: Action{Name: "tools/destroy"}, Context: ctx(true, true, false)}, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, c := MandateRules(tc.e)
			if ok != tc.ok {
				t.Fatalf("decision %v, want %v", ok, tc.ok)
			}
			var policies []string
			if c != nil {
				policies, _ = c["policies"].([]string)
			}
			if !reflect.DeepEqual(policies, tc.policies) {
				t.Errorf("policies %v, want %v", policies, tc.policies)
			}
			if got := c[ApprovalKey] == ApprovalRequired; got != tc.approval {
				t.Errorf("approval %v, want %v", got, tc.approval)
			}
		})
	}
}
