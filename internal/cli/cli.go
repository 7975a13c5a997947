// Package cli is Mandate's command line and its only composition root: it
// reads the configuration, picks the storage backend and wires the
// upstreams, the gateway and the front ends together.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Version is Mandate's version, reported as serverInfo.version.
const Version = "0.1.0-dev"

const usage = `Mandate — an MCP security gateway.

Usage:
  mandate serve  [--config FILE] [--listen ADDR] [--data-dir DIR]   serve MCP over HTTP
  mandate stdio  [--config FILE] [--data-dir DIR]                   serve one client over stdin/stdout
  mandate config check [FILE | --config FILE]                       report every problem in a config file
  mandate users  add USERNAME [--email E] [--group G ...] [--password-file F]
                                                                    add a local account (password from F or stdin)
  mandate users  list | disable USERNAME | enable USERNAME          list, disable or re-enable accounts
  mandate agents list | show ID | suspend ID | resume ID            list, inspect, suspend or resume agents
  mandate mandates list [--user U] [--agent A] | show ID            list or inspect mandates
  mandate mandates grant --user U --agent A --tool GLOB [--upstream GLOB]
                 [--constraint ARG:KIND=VALUE ...] [--purpose T] [--expires 24h|RFC3339] [--uses N]
                                                                    grant a mandate for a user to an agent
  mandate mandates revoke ID [--by NAME]                            withdraw a mandate
  mandate approvals list [--status S] | approve ID | deny ID        list or decide calls waiting for a human
  mandate audit verify [--file EXPORT] | query [--user U] [--tool T] ... [--json] | explain ID | export | pubkey
                                                                    verify, search and export the audit log
  mandate policy validate DIR|FILE ...                              report every problem in Cedar policy files
  mandate policy test FILE.yaml                                     check the decisions a test file expects
  mandate policy explain --policies DIR --agent A --tool UPSTREAM/NAME [--user U] [--args JSON] ...
                                                                    why a call would be allowed or denied
  mandate version

users, agents, mandates, approvals and audit take --config FILE and
--data-dir DIR, as serve does, to find the store. "mandate mandates help",
"mandate approvals help", "mandate audit help" and "mandate policy help"
describe their flags, the constraint syntax and the test file format.

With no --config, the embedded quickstart configuration is used: 127.0.0.1:8787
with the built-in demo upstream.
`

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !config.GOGCSet() && (args[0] == "serve" || args[0] == "stdio") {
		go tuneGC(ctx)
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stderr)
	case "stdio":
		err = runStdio(ctx, args[1:], stdin, stdout, stderr)
	case "config":
		return runConfig(args[1:], stdout, stderr)
	case "users":
		err = runUsers(ctx, args[1:], stdin, stdout, stderr)
	case "agents":
		err = runAgents(ctx, args[1:], stdout, stderr)
	case "mandates":
		err = runMandates(ctx, args[1:], stdout, stderr)
	case "approvals":
		err = runApprovals(ctx, args[1:], stdout, stderr)
	case "audit":
		err = runAudit(ctx, args[1:], stdout, stderr)
	case "policy":
		return runPolicy(args[1:], stdout, stderr)
	case "demo-upstream":
		// The built-in demo server, started by the quickstart as a child.
		err = demo.Run(ctx, &mcp.StdioTransport{})
	case "version", "--version":
		fmt.Fprintln(stdout, "mandate", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mandate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil && !errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "mandate:", err)
		return 1
	}
	return 0
}

// errUsage reports a command line a subcommand refused after printing why;
// Main exits 2 for it, as for every other usage error, so that scripts can
// tell a typo from a failed run.
var errUsage = errors.New("usage error")

// commonFlags are the flags every serving subcommand takes.
type commonFlags struct {
	config  string
	listen  string
	dataDir string
	verbose bool
	// cpuProfile, if set, receives a CPU profile of the whole run; it is
	// how the benchmark finds where forwarding time goes.
	cpuProfile string
}

func parseFlags(name string, args []string, stderr io.Writer, withListen bool) (*commonFlags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &commonFlags{}
	fs.StringVar(&f.config, "config", "", "configuration file (default: the embedded quickstart)")
	fs.StringVar(&f.dataDir, "data-dir", "", "override data_dir")
	fs.BoolVar(&f.verbose, "v", false, "debug logging")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	if withListen {
		fs.StringVar(&f.listen, "listen", "", "override listen (host:port)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage // The flag set has already said why.
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, errUsage
	}
	return f, nil
}

func (f *commonFlags) load() (*config.Config, error) {
	var cfg *config.Config
	var err error
	if f.config == "" {
		cfg, err = config.Quickstart()
	} else {
		cfg, err = config.Load(f.config)
	}
	if err != nil {
		return nil, err
	}
	if f.listen != "" {
		cfg.SetListen(f.listen)
	}
	if f.dataDir != "" {
		// The default SQLite path was derived from the file's data_dir when
		// the file was loaded; it moves with the override, or --data-dir
		// would leave the database where the file said. An explicit dsn
		// elsewhere stays where the operator put it.
		if cfg.Store.Driver == "sqlite" && cfg.Store.DSN == filepath.Join(cfg.DataDir, "mandate.db") {
			cfg.Store.DSN = filepath.Join(f.dataDir, "mandate.db")
		}
		cfg.DataDir = f.dataDir
	}
	if f.listen != "" || f.dataDir != "" {
		// Overrides are validated like the file itself, so a flag cannot
		// slip past a check (auth: none on a non-loopback --listen).
		if problems := config.Validate(cfg); len(problems) > 0 {
			return nil, &config.Error{Problems: problems}
		}
	}
	return cfg, nil
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func runConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, "usage: mandate config check FILE\n")
		return 2
	}
	args = args[1:]
	path := ""
	switch {
	case len(args) == 1:
		path = args[0]
	case len(args) == 2 && (args[0] == "--config" || args[0] == "-config"):
		path = args[1]
	default:
		fmt.Fprint(stderr, "usage: mandate config check FILE\n")
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			for _, p := range cerr.Problems {
				fmt.Fprintln(stdout, p.String())
			}
			fmt.Fprintf(stdout, "%s: %d problem(s)\n", path, len(cerr.Problems))
			return 1
		}
		fmt.Fprintln(stderr, "mandate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d upstreams)\n", path, len(cfg.Upstreams))
	return 0
}
