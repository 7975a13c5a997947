package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
)

const policyUsage = `usage:
  mandate policy validate DIR|FILE ...     compile policy files against the shipped schema
  mandate policy test FILE.yaml            check the decisions a test file expects
  mandate policy explain --policies DIR --agent CLIENT_ID --tool UPSTREAM/NAME
        [--user USER] [--groups G1,G2] [--scopes S1,S2] [--trust LEVEL] [--args JSON]
        [--annotations destructive,read_only,idempotent,open_world] [--risk CLASS]
        [--mandate-covered]                why a call would be allowed or denied

validate reads every *.cedar file of each DIR (not of its subdirectories)
and each FILE, and prints every problem as file:line:col: message (exit 1),
or "ok (N policies)". A DIR without .cedar files is a problem too.

test reads a YAML file:

  policies: [default.cedar]        # files or directories, relative to the YAML file
  cases:
    - name: delegated user with a mandate
      policies: [other.cedar]      # optional: this case's own set instead
      principal: {user: alice, agent: claude, groups: [eng], scopes: [mcp],
                  method: authorization_code,   # default method: authorization_code
                                                # with a user, client_credentials without
                  trust: standard}              # default standard; or untrusted, trusted
      method: tools/call           # default tools/call
      target: {kind: tool, upstream: github, name: create_issue}   # default kind: tool
      args: {repo: mandate, amount: 150}   # numbers reach context.numbers too
      annotations: {destructive: true, read_only: false, idempotent: false,
                    open_world: false, risk: high}
      mandate_covered: true
      session_tainted: false
      intent: ""
      time: 2026-03-01T12:00:00Z   # default: now
      expect: allow                # allow, deny or needs_approval
      visible: true                # optional: whether the target is listed

Every failing case is printed with the explanation of its decision; the last
line is "N passed, M failed", and any failure exits 1. A case whose decision
has errors (an unknown method, a policy that errs) fails whatever it
expects: its effect would be right for the wrong reason.

explain evaluates one tools/call against the *.cedar files of DIR (or one
FILE) and prints the decision, every policy that matched
and why, and the policy version. Without --user the agent is autonomous
(client credentials); with it, it acts for USER, the user's id. --trust is
the agent's level in the registry: untrusted (an agent that registered
itself), standard (the default: one pre-registered in the configuration)
or trusted. --args is a JSON object; its numbers reach context.numbers and
context.decimals as they would from the gateway.
`

// runPolicy runs "mandate policy …" and returns the exit code itself, as
// runConfig does: its reports end with their own summary line, which an
// error printed by Main would follow.
func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "validate":
		err = policyValidate(args[1:], stdout, stderr)
	case "test":
		err = policyTest(args[1:], stdout, stderr)
	case "explain":
		err = policyExplain(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "mandate policy: unknown command %q\n\n%s", args[0], policyUsage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errReported):
	default:
		fmt.Fprintln(stderr, "mandate:", err)
	}
	return 1
}

// errReported is a failure the command has already reported on stdout:
// policy problems or failed test cases.
var errReported = errors.New("failure reported")

// parsePolicyFlags parses the flags of a policy command and returns its
// positional arguments; want is how many it takes, or -1 for one or more.
func parsePolicyFlags(name, synopsis string, args []string, want int, stderr io.Writer, flags func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mandate %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	if flags != nil {
		flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage // The flag set has already said why.
	}
	if n := fs.NArg(); (want < 0 && n == 0) || (want >= 0 && n != want) {
		fmt.Fprintf(stderr, "usage: mandate %s %s\n", name, synopsis)
		return nil, errUsage
	}
	return fs.Args(), nil
}

func policyValidate(args []string, stdout, stderr io.Writer) error {
	paths, err := parsePolicyFlags("policy validate", "DIR|FILE ...", args, -1, stderr, nil)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, p := range paths {
		// Files are named as given, joined with their name in a DIR, so
		// that every problem points at a file the caller can open.
		if err := readPolicyFiles(files, p, p); err != nil {
			return err
		}
	}
	s, problems := policy.Compile(files)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p.String())
		}
		fmt.Fprintf(stdout, "%d problem(s)\n", len(problems))
		return errReported
	}
	fmt.Fprintf(stdout, "ok (%d policies)\n", s.Len())
	return nil
}

// readPolicyFiles adds the policy files at path to files: the file itself,
// named name, or every *.cedar file directly in the directory, named name
// joined with its file name. A directory without any is an error, so that
// a mistyped directory is not reported as a valid, empty set.
func readPolicyFiles(files map[string][]byte, name, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read policies: %w", err)
	}
	if !fi.IsDir() {
		src, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read policies: %w", err)
		}
		files[name] = src
		return nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("read policies: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".cedar" {
			continue
		}
		src, err := os.ReadFile(filepath.Join(path, e.Name()))
		if err != nil {
			return fmt.Errorf("read policies: %w", err)
		}
		files[filepath.Join(name, e.Name())] = src
		n++
	}
	if n == 0 {
		return fmt.Errorf("read policies: no .cedar files in %s", path)
	}
	return nil
}

// compilePolicies compiles files, printing every problem to w.
func compilePolicies(files map[string][]byte, w io.Writer) (*policy.Snapshot, error) {
	s, problems := policy.Compile(files)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(w, p.String())
		}
		fmt.Fprintf(w, "%d problem(s)\n", len(problems))
		return nil, errReported
	}
	return s, nil
}

func policyExplain(args []string, stdout, stderr io.Writer) error {
	var (
		dir, user, agent, tool, argsJSON, groups, scopes, annotations, risk string
		trust                                                               = identity.TrustStandard
		covered                                                             bool
	)
	synopsis := "--policies DIR --agent CLIENT_ID --tool UPSTREAM/NAME [flags]"
	_, err := parsePolicyFlags("policy explain", synopsis, args, 0, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "policies", "", "directory of *.cedar files, or one file (required)")
		fs.StringVar(&user, "user", "", "user id the agent acts for (default: an autonomous agent)")
		fs.StringVar(&agent, "agent", "", "client id of the agent (required)")
		fs.StringVar(&groups, "groups", "", "comma-separated groups of the user")
		fs.StringVar(&scopes, "scopes", "", "comma-separated scopes of the token")
		fs.StringVar(&trust, "trust", trust, "the agent's trust level: untrusted, standard or trusted")
		fs.StringVar(&tool, "tool", "", "UPSTREAM/NAME of the tool called (required)")
		fs.StringVar(&argsJSON, "args", "", "the call's arguments as a JSON object")
		fs.StringVar(&annotations, "annotations", "", "comma-separated tool annotations: destructive, read_only, idempotent, open_world")
		fs.StringVar(&risk, "risk", "", "the tool's risk class")
		fs.BoolVar(&covered, "mandate-covered", false, "a mandate covers the call")
	})
	if err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "mandate policy explain: "+format+"\n", a...)
		return errUsage
	}
	var missing []string
	for _, m := range []struct{ flag, value string }{{"--policies", dir}, {"--agent", agent}, {"--tool", tool}} {
		if m.value == "" {
			missing = append(missing, m.flag)
		}
	}
	if len(missing) > 0 {
		return usage("%s required", strings.Join(missing, ", "))
	}
	upstream, name, ok := strings.Cut(tool, "/")
	if !ok || upstream == "" || name == "" {
		return usage("--tool %q is not UPSTREAM/NAME", tool)
	}
	if !validTrust(trust) {
		return usage("--trust %q: want untrusted, standard or trusted", trust)
	}
	var callArgs map[string]any
	if argsJSON != "" {
		if err := json.Unmarshal([]byte(argsJSON), &callArgs); err != nil || callArgs == nil {
			return usage("--args is not a JSON object")
		}
	}
	ann, err := parseAnnotations(annotations)
	if err != nil {
		return usage("--annotations: %v", err)
	}
	ann.Risk = risk

	// Files are named DIR/NAME.cedar, as the gateway names the files of
	// its policy directory, so that positional policy ids and the version
	// match its decisions when DIR is given as its configuration resolves
	// it.
	files := map[string][]byte{}
	if err := readPolicyFiles(files, dir, dir); err != nil {
		return err
	}
	s, err := compilePolicies(files, stdout)
	if err != nil {
		return err
	}
	req := policy.Request{
		Principal:   explainPrincipal(user, agent, trust, splitList(groups), splitList(scopes)),
		Method:      "tools/call",
		Target:      policy.Target{Kind: policy.KindTool, Upstream: upstream, Name: name},
		Args:        callArgs,
		Annotations: ann,
		Time:        time.Now(),
	}
	if covered {
		req.Mandate = policy.MandateRef{ID: "explain", Covered: true}
	}
	_, err = io.WriteString(stdout, s.Explain(req).String())
	return err
}

func explainPrincipal(user, agent, trust string, groups, scopes []string) *identity.Principal {
	p := &identity.Principal{Issuer: "explain", User: user, Agent: agent, TrustLevel: trust, Groups: groups, Scopes: scopes}
	p.Method = identity.MethodClientCredentials
	if user != "" {
		p.Method = identity.MethodAuthorizationCode
	}
	return p
}

// validTrust reports whether level is one of the registry's trust levels.
// The policy reads any other level as untrusted; a test or explanation
// that names one is a typo, refused rather than silently untrusted.
func validTrust(level string) bool {
	switch level {
	case identity.TrustUntrusted, identity.TrustStandard, identity.TrustTrusted:
		return true
	}
	return false
}

func parseAnnotations(list string) (policy.Annotations, error) {
	var a policy.Annotations
	for _, n := range splitList(list) {
		switch n {
		case "destructive":
			a.Destructive = true
		case "read_only":
			a.ReadOnly = true
		case "idempotent":
			a.Idempotent = true
		case "open_world":
			a.OpenWorld = true
		default:
			return a, fmt.Errorf("unknown annotation %q", n)
		}
	}
	return a, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// policyTestFile is the YAML of "mandate policy test".
type policyTestFile struct {
	// Policies are files or directories, relative to the YAML file.
	Policies []string         `yaml:"policies"`
	Cases    []policyTestCase `yaml:"cases"`
}

type policyTestCase struct {
	Name string `yaml:"name"`
	// Policies, when set, replace the file's policies for this case.
	Policies  []string `yaml:"policies"`
	Principal struct {
		User   string   `yaml:"user"`
		Email  string   `yaml:"email"`
		Agent  string   `yaml:"agent"`
		Groups []string `yaml:"groups"`
		Scopes []string `yaml:"scopes"`
		Method string   `yaml:"method"`
		// Trust is the agent's trust level; "" means standard, the
		// level of an agent pre-registered in the configuration.
		Trust string `yaml:"trust"`
	} `yaml:"principal"`
	Method string `yaml:"method"`
	Target struct {
		Kind     string `yaml:"kind"`
		Upstream string `yaml:"upstream"`
		Name     string `yaml:"name"`
	} `yaml:"target"`
	Args        map[string]any `yaml:"args"`
	Annotations struct {
		ReadOnly    bool   `yaml:"read_only"`
		Destructive bool   `yaml:"destructive"`
		Idempotent  bool   `yaml:"idempotent"`
		OpenWorld   bool   `yaml:"open_world"`
		Risk        string `yaml:"risk"`
	} `yaml:"annotations"`
	MandateCovered bool      `yaml:"mandate_covered"`
	SessionTainted bool      `yaml:"session_tainted"`
	Intent         string    `yaml:"intent"`
	Time           time.Time `yaml:"time"`
	Expect         string    `yaml:"expect"`
	Visible        *bool     `yaml:"visible"`
}

// expectEffects reads the expect field; "needs-approval", the spelling of
// policy.Effect.String, is accepted too.
var expectEffects = map[string]policy.Effect{
	"allow": policy.Allow, "deny": policy.Deny, "needs_approval": policy.NeedsApproval, "needs-approval": policy.NeedsApproval,
}

func policyTest(args []string, stdout, stderr io.Writer) error {
	pos, err := parsePolicyFlags("policy test", "FILE.yaml", args, 1, stderr, nil)
	if err != nil {
		return err
	}
	file := pos[0]
	tf, err := readPolicyTests(file)
	if err != nil {
		return err
	}
	base := filepath.Dir(file)
	snapshots := map[string]*policy.Snapshot{}
	now := time.Now()
	passed, failed := 0, 0
	for _, c := range tf.Cases {
		set := c.Policies
		if len(set) == 0 {
			set = tf.Policies
		}
		key := strings.Join(set, "\x00")
		s, ok := snapshots[key]
		if !ok {
			files := map[string][]byte{}
			for _, p := range set {
				if err := readPolicyFiles(files, p, filepath.Join(base, p)); err != nil {
					return err
				}
			}
			if s, err = compilePolicies(files, stdout); err != nil {
				return err
			}
			snapshots[key] = s
		}
		if why := c.run(s, now); len(why) > 0 {
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %s\n", c.Name, strings.Join(why, "; "))
			for _, line := range strings.Split(strings.TrimSuffix(s.Explain(c.request(now)).String(), "\n"), "\n") {
				if line != "" {
					line = "    " + line
				}
				fmt.Fprintln(stdout, line)
			}
			continue
		}
		passed++
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return errReported
	}
	return nil
}

// readPolicyTests reads and checks a test file. Unknown keys are refused,
// so a misspelt field cannot leave a case testing less than it says.
func readPolicyTests(file string) (*policyTestFile, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read tests: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var tf policyTestFile
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(tf.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", file)
	}
	for i := range tf.Cases {
		c := &tf.Cases[i]
		if err := c.check(len(tf.Policies) > 0); err != nil {
			return nil, fmt.Errorf("%s: case %d (%q): %w", file, i+1, c.Name, err)
		}
	}
	return &tf, nil
}

// check fills in the defaults of c and refuses a case that cannot say
// anything: unnamed, without policies, or without an agent, which every
// decision needs and whose absence would pass any case expecting deny.
func (c *policyTestCase) check(filePolicies bool) error {
	switch {
	case c.Name == "":
		return errors.New("no name")
	case !filePolicies && len(c.Policies) == 0:
		return errors.New("no policies, in the case or the file")
	case c.Principal.Agent == "":
		return errors.New("principal has no agent")
	}
	if _, ok := expectEffects[c.Expect]; !ok {
		return fmt.Errorf("expect %q: want allow, deny or needs_approval", c.Expect)
	}
	if c.Principal.Trust == "" {
		c.Principal.Trust = identity.TrustStandard
	}
	if !validTrust(c.Principal.Trust) {
		return fmt.Errorf("principal trust %q: want untrusted, standard or trusted", c.Principal.Trust)
	}
	if c.Method == "" {
		c.Method = "tools/call"
	}
	if c.Target.Kind == "" {
		c.Target.Kind = policy.KindTool
	}
	if c.Visible != nil && !slices.Contains([]string{policy.KindTool, policy.KindPrompt, policy.KindResource}, c.Target.Kind) {
		return fmt.Errorf("visible: a %s is not listed", c.Target.Kind)
	}
	return nil
}

func (c *policyTestCase) request(now time.Time) policy.Request {
	p := &identity.Principal{
		Issuer: "policy-test", User: c.Principal.User, Email: c.Principal.Email, Agent: c.Principal.Agent,
		TrustLevel: c.Principal.Trust, Groups: c.Principal.Groups, Scopes: c.Principal.Scopes,
		Method: identity.Method(c.Principal.Method),
	}
	if p.Method == "" {
		p.Method = identity.MethodClientCredentials
		if p.User != "" {
			p.Method = identity.MethodAuthorizationCode
		}
	}
	r := policy.Request{
		Principal: p,
		Method:    c.Method,
		Target:    policy.Target{Kind: c.Target.Kind, Upstream: c.Target.Upstream, Name: c.Target.Name},
		Args:      c.Args,
		Annotations: policy.Annotations{
			ReadOnly: c.Annotations.ReadOnly, Destructive: c.Annotations.Destructive,
			Idempotent: c.Annotations.Idempotent, OpenWorld: c.Annotations.OpenWorld, Risk: c.Annotations.Risk,
		},
		Intent:         c.Intent,
		Time:           c.Time,
		SessionTainted: c.SessionTainted,
	}
	if r.Time.IsZero() {
		r.Time = now
	}
	if c.MandateCovered {
		r.Mandate = policy.MandateRef{ID: "policy-test", Covered: true}
	}
	return r
}

// run decides the case and returns why it failed, or nothing.
func (c *policyTestCase) run(s *policy.Snapshot, now time.Time) []string {
	r := c.request(now)
	var why []string
	d := s.Decide(r)
	if want := expectEffects[c.Expect]; d.Effect != want {
		why = append(why, fmt.Sprintf("got %s, want %s", d.Effect, want))
	}
	if len(d.Errors) > 0 {
		why = append(why, "the decision has errors: "+strings.Join(d.Errors, "; "))
	}
	if c.Visible != nil {
		if got := s.Visible(r); got != *c.Visible {
			why = append(why, fmt.Sprintf("visible %t, want %t", got, *c.Visible))
		}
	}
	return why
}
