package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/policy/authzen"
)

// policyReload is how often policy directories are checked for changes.
const policyReload = 2 * time.Second

// policyDecider builds what the gateway decides with: an AuthZEN PDP when
// policy.authzen is set, otherwise the Cedar engine of policyEngine, kept
// current by re-reading its directory. With policy.shadow_dir the live
// decider is wrapped in a policy.Shadow whose candidate is that second
// Cedar directory, reloaded the same way, so its differences are logged
// while the live decider alone answers. Background reloads stop with ctx.
// report, if set, gives the reporter of each directory's reloads, by role
// ("live", "shadow"), for the audit log.
func policyDecider(ctx context.Context, cfg *config.Config, stdioEntry bool, log *slog.Logger, report func(role string) policyReport) (gateway.PolicyDecider, error) {
	reporter := func(role string) policyReport {
		if report == nil {
			return nil
		}
		return report(role)
	}
	var live gateway.PolicyDecider
	if a := cfg.Policy.AuthZEN; a != nil {
		c, err := authzen.New(a.URL, &authzen.Options{Timeout: a.Timeout, Headers: a.Headers})
		if err != nil {
			return nil, err
		}
		// An unreachable PDP denies until it answers; it is not a reason
		// to refuse to start, but the operator should hear of it at once.
		if err := c.Discover(ctx); err != nil {
			log.Warn("AuthZEN PDP not usable yet; every decision is denied until it is", "pdp", c.Version(), "err", err)
		}
		live = c
	} else {
		engine, err := policyEngine(cfg, stdioEntry)
		if err != nil {
			return nil, err
		}
		if dir := cfg.PolicyDir(); dir != "" {
			go watchPolicies(ctx, dir, engine, policyReload, log, reporter("live"))
		}
		live = engine
	}
	dir := cfg.PolicyShadowDir()
	if dir == "" {
		return live, nil
	}
	files, _, err := readPolicyDir(dir)
	if err != nil {
		return nil, fmt.Errorf("shadow policy: %w", err)
	}
	snap, problems := policy.Compile(files)
	if len(problems) > 0 {
		return nil, fmt.Errorf("shadow %w", policyError(problems))
	}
	shadow := policy.NewEngine(snap)
	go watchPolicies(ctx, dir, shadow, policyReload, log.With("policy", "shadow"), reporter("shadow"))
	log.Info("policy shadow on: differences are logged, answers are unchanged", "shadow_dir", dir, "version", snap.Version())
	return policy.NewShadow(live, shadow, log), nil
}

// policyEngine builds the policy the gateway decides with: the configured
// directory, or the built-in set for the auth mode (allow-all for
// `auth: none` and for the stdio entry, whose only principal is the local
// operator; the default set otherwise). A directory that does not compile
// is an error at start — never a silent allow-all.
func policyEngine(cfg *config.Config, stdioEntry bool) (*policy.Engine, error) {
	dir := cfg.PolicyDir()
	if dir == "" {
		name := policy.BuiltinDefault
		if cfg.Auth.Mode == config.AuthNone || stdioEntry {
			name = policy.BuiltinAllowAll
		}
		snap, err := policy.Builtin(name)
		if err != nil {
			return nil, err
		}
		return policy.NewEngine(snap), nil
	}
	files, _, err := readPolicyDir(dir)
	if err != nil {
		return nil, err
	}
	snap, problems := policy.Compile(files)
	if len(problems) > 0 {
		return nil, policyError(problems)
	}
	return policy.NewEngine(snap), nil
}

func policyError(problems []policy.Problem) error {
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message))
	}
	return fmt.Errorf("policy does not compile:\n%s", strings.Join(msgs, "\n"))
}

// readPolicyDir reads every *.cedar file of dir and a fingerprint of them.
func readPolicyDir(dir string) (map[string][]byte, [32]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return nil, [32]byte{}, err
	}
	if len(paths) == 0 {
		return nil, [32]byte{}, errors.New("policy directory " + dir + " has no .cedar files")
	}
	sort.Strings(paths)
	files := make(map[string][]byte, len(paths))
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, [32]byte{}, err
		}
		files[p] = b
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return files, sum, nil
}

// policyReport hears what watchPolicies did with a changed policy
// directory: the version it swapped in, or, with problems, the set it
// refused and the version that keeps serving.
type policyReport func(dir, version string, problems []string)

// watchPolicies re-reads the policy directory every interval and swaps in
// a new set when the files changed and compile; a set with problems is
// reported and the old one keeps serving. report, if set, hears of both.
func watchPolicies(ctx context.Context, dir string, e *policy.Engine, interval time.Duration, log *slog.Logger, report policyReport) {
	_, last, _ := readPolicyDir(dir)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		files, sum, err := readPolicyDir(dir)
		if err != nil || sum == last {
			if err != nil {
				log.Warn("policy directory unreadable; keeping the current policy", "err", err)
			}
			continue
		}
		last = sum
		if problems, err := e.Reload(files); err != nil {
			log.Error("new policy does not compile; keeping the current policy", "err", policyError(problems))
			if report != nil {
				msgs := make([]string, 0, max(len(problems), 1))
				for _, p := range problems {
					msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message))
				}
				if len(msgs) == 0 {
					msgs = append(msgs, err.Error())
				}
				report(dir, e.Snapshot().Version(), msgs)
			}
			continue
		}
		log.Info("policy reloaded", "version", e.Snapshot().Version())
		if report != nil {
			report(dir, e.Snapshot().Version(), nil)
		}
	}
}
