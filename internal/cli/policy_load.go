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
	"github.com/mandate-mcp/mandate/internal/policy"
)

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

// watchPolicies re-reads the policy directory every interval and swaps in
// a new set when the files changed and compile; a set with problems is
// reported and the old one keeps serving.
func watchPolicies(ctx context.Context, dir string, e *policy.Engine, interval time.Duration, log *slog.Logger) {
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
			continue
		}
		log.Info("policy reloaded", "version", e.Snapshot().Version())
	}
}
