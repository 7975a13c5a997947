package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestListMandatesUsesIndexes guards the lookup the gateway makes on every
// uncached call: with a filter that may or may not apply, SQLite scanned
// every mandate (milliseconds at ten thousand) instead of using an index.
func TestListMandatesUsesIndexes(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	tests := []struct {
		user, agent, index string
	}{
		{"u1", "agent-a", "mandates_user_agent"},
		{"u1", "", "mandates_user_agent"},
		{"", "agent-a", "mandates_agent"},
	}
	for _, tc := range tests {
		query, args := listMandatesQuery(tc.user, tc.agent)
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("explain %q: %v", query, err)
		}
		plan := explained(t, rows)
		if !strings.Contains(plan, "USING INDEX "+tc.index) || strings.Contains(plan, "SCAN mandates") {
			t.Errorf("ListMandates(%q, %q) plan:\n%s\nwant a search using %s", tc.user, tc.agent, plan, tc.index)
		}
	}
}

func explained(t *testing.T, rows *sql.Rows) string {
	t.Helper()
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatalf("scan plan: %v", err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read plan: %v", err)
	}
	return strings.Join(lines, "\n")
}
