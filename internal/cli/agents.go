package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/web"
)

const agentsUsage = `usage:
  mandate agents list           list agents
  mandate agents show ID        every field of one agent, as JSON
  mandate agents suspend ID     refuse the agent's tokens until it is resumed
  mandate agents resume ID      accept them again

Each also takes --config FILE and --data-dir DIR, as serve does.
`

func runAgents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, agentsUsage)
		return errUsage
	}
	switch args[0] {
	case "list":
		return agentsList(ctx, args[1:], stdout, stderr)
	case "show":
		return agentsShow(ctx, args[1:], stdout, stderr)
	case "suspend":
		return agentsSetStatus(ctx, "suspend", store.AgentSuspended, args[1:], stdout, stderr)
	case "resume":
		return agentsSetStatus(ctx, "resume", store.AgentActive, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, agentsUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mandate agents: unknown command %q\n\n%s", args[0], agentsUsage)
	return errUsage
}

func agentsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st, _, err := adminCommand{name: "agents list"}.open(ctx, args, stderr, false)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListAgents(ctx)
	if err != nil {
		return fmt.Errorf("list agents: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tREGISTRATION\tOWNER\tTRUST\tSTATUS\tFIRST SEEN\tLAST SEEN")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, orDash(a.Name), a.Registration, orDash(a.Owner),
			a.TrustLevel, a.Status, formatTime(a.FirstSeen), formatTime(a.LastSeen))
	}
	return tw.Flush()
}

// agentsShow prints web.ViewAgent, the representation the admin API
// answers with too.
func agentsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st, pos, err := adminCommand{name: "agents show", args: []string{"ID"}}.open(ctx, args, stderr, false)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.GetAgent(ctx, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no agent %q", pos[0])
	}
	if err != nil {
		return fmt.Errorf("find agent %q: %w", pos[0], err)
	}
	out, err := json.MarshalIndent(web.ViewAgent(a), "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

func agentsSetStatus(ctx context.Context, verb, status string, args []string, stdout, stderr io.Writer) error {
	st, pos, err := adminCommand{name: "agents " + verb, args: []string{"ID"}}.open(ctx, args, stderr, true)
	if err != nil {
		return err
	}
	defer st.Close()
	before, err := st.GetAgent(ctx, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no agent %q", pos[0])
	}
	if err != nil {
		return fmt.Errorf("find agent %q: %w", pos[0], err)
	}
	err = st.SetAgentStatus(ctx, pos[0], status)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no agent %q", pos[0])
	}
	if err != nil {
		return fmt.Errorf("%s agent %q: %w", verb, pos[0], err)
	}
	fmt.Fprintf(stdout, "agent %s: %s\n", pos[0], status)
	event := audit.EventAgentResumed
	if status == store.AgentSuspended {
		event = audit.EventAgentSuspended
	}
	after := before
	after.Status = status
	rec := agentRecord(event, after, actorCLI)
	rec.Detail["from"] = before.Status
	return st.record(ctx, rec)
}
