package policy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// brokenDecider fails every question, as an unreachable remote decision
// point does.
type brokenDecider struct{}

func (brokenDecider) DecideContext(context.Context, Request) Decision {
	return Decision{Effect: Deny, Errors: []string{"decision point unreachable"}, Version: "broken"}
}

func (brokenDecider) VisibleAll(context.Context, []Request) ([]bool, error) {
	return nil, errors.New("decision point unreachable")
}

func (brokenDecider) Version() string { return "broken" }

const shadowPermitAll = `@id("all") permit (principal, action, resource);`

const shadowForbidDelete = shadowPermitAll + `
@id("no-delete") forbid (principal, action, resource)
when { resource has name && resource.name == "delete_repo" };`

func newShadow(t *testing.T, live, cand Decider) (*Shadow, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewShadow(live, cand, log), &buf
}

func TestShadowReturnsLiveAndLogsDifferences(t *testing.T) {
	live := NewEngine(mustCompile(t, map[string]string{"live.cedar": shadowPermitAll}))
	cand := NewEngine(mustCompile(t, map[string]string{"next.cedar": shadowForbidDelete}))
	s, logs := newShadow(t, live, cand)
	ctx := context.Background()

	for _, tc := range []struct {
		tool  string
		diffs uint64
	}{
		{"list_issues", 0},
		{"delete_repo", 1},
		{"delete_repo", 2},
	} {
		d := s.DecideContext(ctx, call(alice, "github", tc.tool, map[string]any{"token": "hunter2"}))
		if d.Effect != Allow || !slices.Equal(d.Reasons, []string{"all"}) {
			t.Errorf("%s: %v %q, want the live Allow", tc.tool, d.Effect, d.Reasons)
		}
		if got := s.Differences(); got != tc.diffs {
			t.Errorf("after %s: %d differences, want %d", tc.tool, got, tc.diffs)
		}
	}
	out := logs.String()
	if n := strings.Count(out, `msg="policy shadow differs"`); n != 2 {
		t.Errorf("%d difference lines, want 2:\n%s", n, out)
	}
	for _, want := range []string{"method=tools/call", "upstream=github", "name=delete_repo", "agent=claude",
		"live=allow", "live_reasons=[all]", "shadow=deny", "shadow_reasons=[no-delete]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("log shows an argument value:\n%s", out)
	}
}

func TestShadowVisibleAllComparesEachItem(t *testing.T) {
	live := NewEngine(mustCompile(t, map[string]string{"live.cedar": shadowPermitAll}))
	cand := NewEngine(mustCompile(t, map[string]string{"next.cedar": shadowForbidDelete}))
	s, logs := newShadow(t, live, cand)
	rs := []Request{
		call(alice, "github", "list_issues", nil),
		call(alice, "github", "delete_repo", nil),
		call(robot, "github", "delete_repo", nil),
	}
	got, err := s.VisibleAll(context.Background(), rs)
	if err != nil || !slices.Equal(got, []bool{true, true, true}) {
		t.Fatalf("VisibleAll = %v, %v; want the live answer", got, err)
	}
	if s.Differences() != 2 {
		t.Errorf("%d differences, want 2", s.Differences())
	}
	out := logs.String()
	for _, want := range []string{"agent=claude", "agent=nightly-report", "live=listed", "shadow=hidden", "listing=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestShadowCandidateFailureNeverChangesTheAnswer: a failing candidate is
// logged, and the live answer stands, allow or deny.
func TestShadowCandidateFailureNeverChangesTheAnswer(t *testing.T) {
	live := NewEngine(mustCompile(t, map[string]string{"live.cedar": shadowForbidDelete}))
	s, logs := newShadow(t, live, brokenDecider{})
	ctx := context.Background()
	if d := s.DecideContext(ctx, call(alice, "github", "list_issues", nil)); d.Effect != Allow || len(d.Errors) > 0 {
		t.Errorf("allowed call: %v %q", d.Effect, d.Errors)
	}
	if d := s.DecideContext(ctx, call(alice, "github", "delete_repo", nil)); d.Effect != Deny || len(d.Errors) > 0 {
		t.Errorf("forbidden call: %v %q", d.Effect, d.Errors)
	}
	got, err := s.VisibleAll(ctx, []Request{call(alice, "github", "list_issues", nil)})
	if err != nil || !slices.Equal(got, []bool{true}) {
		t.Errorf("VisibleAll = %v, %v", got, err)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="policy shadow failed"`); n != 3 {
		t.Errorf("%d failure lines, want 3:\n%s", n, out)
	}
	if s.Differences() != 1 {
		t.Errorf("%d differences, want 1 (the allowed call the candidate denied)", s.Differences())
	}
}

// TestShadowLiveFailureIsReturned: the live decider's failure refuses the
// list, whatever the candidate says.
func TestShadowLiveFailureIsReturned(t *testing.T) {
	cand := NewEngine(mustCompile(t, map[string]string{"next.cedar": shadowPermitAll}))
	s, _ := newShadow(t, brokenDecider{}, cand)
	if got, err := s.VisibleAll(context.Background(), []Request{call(alice, "github", "x", nil)}); err == nil {
		t.Errorf("VisibleAll = %v, want the live error", got)
	}
	if d := s.DecideContext(context.Background(), call(alice, "github", "x", nil)); d.Effect != Deny || len(d.Errors) != 1 {
		t.Errorf("decision %v %q, want the live deny", d.Effect, d.Errors)
	}
}

func TestShadowVersionIsLive(t *testing.T) {
	snap := mustCompile(t, map[string]string{"live.cedar": shadowPermitAll})
	if got := NewShadow(NewEngine(snap), brokenDecider{}, nil).Version(); got != snap.Version() || got == "" {
		t.Errorf("version over an engine = %q, want %q", got, snap.Version())
	}
	if got := NewShadow(brokenDecider{}, NewEngine(snap), nil).Version(); got != "broken" {
		t.Errorf("version over a versioned decider = %q", got)
	}
}
