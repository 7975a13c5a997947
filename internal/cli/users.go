package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/users"
)

const usersUsage = `usage:
  mandate users add USERNAME [--email E] [--group G ...] [--password-file F]   add a local account
  mandate users list                                                           list accounts
  mandate users disable USERNAME                                               stop an account logging in
  mandate users enable USERNAME                                                let it log in again

Each also takes --config FILE and --data-dir DIR, as serve does.

The password of "users add" is the one line of the --password-file, or of
standard input when that is not a terminal; at least 12 characters. It is never
taken from a flag, since command lines show up in process lists and shell
history.
`

func runUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage)
		return errUsage
	}
	switch args[0] {
	case "add":
		return usersAdd(ctx, args[1:], stdin, stdout, stderr)
	case "list":
		return usersList(ctx, args[1:], stdout, stderr)
	case "disable":
		return usersSetDisabled(ctx, "disable", true, args[1:], stdout, stderr)
	case "enable":
		return usersSetDisabled(ctx, "enable", false, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usersUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mandate users: unknown command %q\n\n%s", args[0], usersUsage)
	return errUsage
}

func usersAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		email, passwordFile string
		groups              stringList
	)
	cmd := adminCommand{name: "users add", args: []string{"USERNAME"}, flags: func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "e-mail address")
		fs.Var(&groups, "group", "group the user belongs to (repeat for several)")
		fs.StringVar(&passwordFile, "password-file", "", "file holding the password on one line (default: standard input)")
	}}
	f, pos, err := cmd.parse(args, stderr)
	if err != nil {
		return err
	}
	// The password is read and checked before the store is opened, so a
	// refused password changes nothing.
	pw, err := readPassword(passwordFile, stdin)
	if err != nil {
		return err
	}
	spec := users.Spec{Username: pos[0], Email: email, Groups: groups, Password: pw}
	if err := spec.Check(); err != nil {
		return err
	}
	st, err := f.openAdminStore(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := users.Add(ctx, st, spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added user %s (id %s)\n", u.Username, u.ID)
	return st.record(ctx, userRecord(eventUserAdded, u, "", ""))
}

func usersList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st, _, err := adminCommand{name: "users list"}.open(ctx, args, stderr, false)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tID\tEMAIL\tGROUPS\tDISABLED\tCREATED")
	for _, u := range list {
		disabled := "no"
		if u.Disabled {
			disabled = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.ID, orDash(u.Email),
			orDash(strings.Join(u.Groups, ",")), disabled, formatTime(u.CreatedAt))
	}
	return tw.Flush()
}

func usersSetDisabled(ctx context.Context, verb string, disabled bool, args []string, stdout, stderr io.Writer) error {
	st, pos, err := adminCommand{name: "users " + verb, args: []string{"USERNAME"}}.open(ctx, args, stderr, true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.GetUserByUsername(ctx, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", pos[0])
	}
	if err != nil {
		return fmt.Errorf("find user %q: %w", pos[0], err)
	}
	was := u.Disabled
	if u.Disabled != disabled {
		u.Disabled = disabled
		if err := st.UpdateUser(ctx, u); err != nil {
			return fmt.Errorf("%s user %q: %w", verb, u.Username, err)
		}
	}
	fmt.Fprintf(stdout, "user %s: %sd\n", u.Username, verb)
	event := eventUserEnabled
	if disabled {
		event = eventUserDisabled
	}
	return st.record(ctx, userRecord(event, u, userState(was), userState(disabled)))
}

// userRecord is the event of a change to account u; from and to are its
// states before and after, when it was enabled or disabled.
func userRecord(event string, u store.User, from, to string) audit.Record {
	detail := map[string]any{"username": u.Username}
	if from != "" {
		detail["from"], detail["to"] = from, to
	}
	if len(u.Groups) > 0 {
		detail["groups"] = u.Groups
	}
	return audit.Record{Kind: audit.KindAdmin, Event: event, Target: u.ID, User: u.ID, Detail: detail}
}

// userState names whether an account may sign in.
func userState(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}

// readPassword returns the one line of the file at path or, when path is
// "", of stdin. A terminal is refused rather than read: without a way to
// turn echo off, the password would be shown as it is typed.
func readPassword(path string, stdin io.Reader) (string, error) {
	r := stdin
	switch {
	case path != "":
		file, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		defer file.Close()
		r = file
	case stdin == nil || isTerminal(stdin):
		return "", errors.New("no password: give --password-file FILE, or pipe the password to standard input")
	}
	// One byte more than the longest line allowed, to tell it was longer.
	data, err := io.ReadAll(io.LimitReader(r, users.MaxPasswordBytes+3))
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(data) > users.MaxPasswordBytes+2 {
		return "", fmt.Errorf("password must be at most %d bytes", users.MaxPasswordBytes)
	}
	line, rest, _ := strings.Cut(string(data), "\n")
	if rest != "" {
		return "", errors.New("the password must be a single line")
	}
	return strings.TrimSuffix(line, "\r"), nil
}

// isTerminal reports whether r is a terminal. Any character device counts,
// which is the safe side: a password is never waited for on one.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// adminCommand is a store administration command: "users …" and
// "agents …". They take the --config and --data-dir that serve takes, so
// that they find the same store, plus their own flags and a fixed number of
// arguments.
type adminCommand struct {
	name  string   // "users add"
	args  []string // names of the positional arguments, for the usage line
	flags func(*flag.FlagSet)
}

// parse parses args. Flags may come before or after the positional
// arguments ("users disable alice --config m.yaml"), which the flag package
// alone does not allow; after "--" everything is positional.
func (c adminCommand) parse(args []string, stderr io.Writer) (*commonFlags, []string, error) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	synopsis := strings.Join(append([]string{"mandate", c.name}, c.args...), " ")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [flags]\n", synopsis)
		fs.PrintDefaults()
	}
	f := &commonFlags{}
	fs.StringVar(&f.config, "config", "", "configuration file (default: the embedded quickstart)")
	fs.StringVar(&f.dataDir, "data-dir", "", "override data_dir")
	if c.flags != nil {
		c.flags(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, errUsage // The flag set has already said why.
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) != len(c.args) {
		fmt.Fprintf(stderr, "usage: %s [flags]\n", synopsis)
		return nil, nil, errUsage
	}
	return f, pos, nil
}

// open parses args and opens the configured store, which the caller
// closes; changes says whether the command writes to it.
func (c adminCommand) open(ctx context.Context, args []string, stderr io.Writer, changes bool) (*adminStore, []string, error) {
	f, pos, err := c.parse(args, stderr)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.openAdminStore(ctx, changes)
	if err != nil {
		return nil, nil, err
	}
	return st, pos, nil
}

// openAdminStore loads the configuration and opens its store. A command
// that changes something refuses the memory store, where the change would
// vanish as the command exits while looking like it worked.
func (f *commonFlags) openAdminStore(ctx context.Context, changes bool) (*adminStore, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	if changes && cfg.Store.Driver == "memory" {
		return nil, errors.New("store.driver is memory: a change would be lost when this command exits")
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &adminStore{Store: st, cfg: cfg}, nil
}

// adminStore is the store an administrative command opened, with the
// configuration it came from, so that a change can be recorded in the
// audit log of the same data directory.
type adminStore struct {
	store.Store
	cfg *config.Config
}

// record appends the administrative event of a change the command has
// made to the audit log the gateway writes: the same data directory's
// chain in the same store, which serializes the two writers' appends. It
// is called only once the change succeeded, and its failure is the
// command's, so the operator learns the change stands unrecorded.
func (s *adminStore) record(ctx context.Context, rec audit.Record) error {
	if !s.cfg.Audit.On() {
		return nil
	}
	if rec.Actor == "" {
		rec.Actor = actorCLI
	}
	a, err := openAudit(ctx, s.cfg, s.Store, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnrecorded, err)
	}
	err = a.admin(ctx, rec)
	if cerr := a.close(ctx); err == nil && cerr != nil {
		return fmt.Errorf("the change was made and recorded, but the audit log could not be signed: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errUnrecorded, err)
	}
	return nil
}

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatTime shows a stored time in UTC to the second; the zero time, a
// moment that has not happened yet, is "-".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Interface guards.
var _ flag.Value = (*stringList)(nil)
