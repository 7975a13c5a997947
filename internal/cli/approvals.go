package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
)

const approvalsUsage = `usage:
  mandate approvals list [--status STATUS]   list approval requests, newest first
  mandate approvals approve ID [--by NAME]   approve one pending call (by: "cli")
  mandate approvals deny ID [--by NAME]      deny one pending call (by: "cli")

Each also takes --config FILE and --data-dir DIR, as serve does.

A policy can require a human's approval of a call (@approval("required")).
When the agent's client cannot be asked itself, the call is held for up to
policy.approval_wait (default 45s) while a pending request waits here: approved
in that time, the call proceeds; denied, it is refused. Still pending, the
call is refused with the request's id, and once it is approved the agent's
retry of exactly that call (same user, agent, tool, arguments and policy
version) goes through, once. A request not decided and used before it
expires (policy.approval_timeout, default 5m) is denied.

STATUS is pending, approved, denied, used or expired; without --status
every request is listed.
`

func runApprovals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, approvalsUsage)
		return errUsage
	}
	switch args[0] {
	case "list":
		return approvalsList(ctx, args[1:], stdout, stderr)
	case "approve":
		return approvalsDecide(ctx, "approve", true, args[1:], stdout, stderr)
	case "deny":
		return approvalsDecide(ctx, "deny", false, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, approvalsUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mandate approvals: unknown command %q\n\n%s", args[0], approvalsUsage)
	return errUsage
}

func approvalsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var status string
	cmd := adminCommand{name: "approvals list", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&status, "status", "", "only requests in this status: pending, approved, denied, used or expired")
	}}
	f, _, err := cmd.parse(args, stderr)
	if err != nil {
		return err
	}
	if err := store.ValidateApprovalFilter(status); err != nil {
		fmt.Fprintf(stderr, "approvals list: unknown status %q\n", status)
		return errUsage
	}
	st, err := f.openAdminStore(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := consent.NewApprovals(st, nil).List(ctx, status)
	if err != nil {
		return err
	}
	names := usernames{st: st, byID: map[string]string{}}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tAGENT\tCALL\tARGUMENTS\tSTATUS\tEXPIRES\tDECIDED BY")
	for _, a := range list {
		user := a.User
		if user != "" {
			if name, err := names.of(ctx, a.User); err != nil {
				return err
			} else if name != "" {
				user = name
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, cell(orDash(user)), cell(a.Agent),
			cell(a.Upstream+"/"+a.Tool), cell(truncate(a.ArgsPreview, 60)), a.Status, formatTime(a.ExpiresAt),
			cell(orDash(a.DecidedBy)))
	}
	return tw.Flush()
}

func approvalsDecide(ctx context.Context, verb string, approve bool, args []string, stdout, stderr io.Writer) error {
	by := "cli"
	st, pos, err := adminCommand{name: "approvals " + verb, args: []string{"ID"}, flags: func(fs *flag.FlagSet) {
		fs.StringVar(&by, "by", by, "who decides, for the record")
	}}.open(ctx, args, stderr, true)
	if err != nil {
		return err
	}
	defer st.Close()
	svc := consent.NewApprovals(st, nil)
	a, err := svc.Decide(ctx, pos[0], approve, by)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no approval request %q", pos[0])
	case errors.Is(err, store.ErrConflict):
		// A decision is final and a late one changes nothing: say what the
		// request is instead.
		cur, gerr := svc.Get(ctx, pos[0])
		if gerr != nil {
			return gerr
		}
		return fmt.Errorf("approval request %s is %s, not pending; nothing changed", cur.ID, cur.Status)
	case err != nil:
		return err
	}
	if approve {
		fmt.Fprintf(stdout, "approval %s: approved by %s; agent %s may call %s/%s once with these arguments until %s\n",
			a.ID, cell(a.DecidedBy), cell(a.Agent), cell(a.Upstream), cell(a.Tool), formatTime(a.ExpiresAt))
	} else {
		fmt.Fprintf(stdout, "approval %s: denied by %s\n", a.ID, cell(a.DecidedBy))
	}
	return st.record(ctx, approvalRecord(approvalEvent(a), a, a.DecidedBy))
}
