package config

import (
	"os"
	"sort"
)

// Environ is the complete environment of a stdio upstream: Mandate's own
// environment overlaid with the configured env. It lives here because this
// package is the only one that reads the process environment.
func (s Stdio) Environ() []string {
	base := os.Environ()
	if len(s.Env) == 0 {
		return base
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(base)+len(keys))
	for _, kv := range base {
		k := kv
		for i := range kv {
			if kv[i] == '=' {
				k = kv[:i]
				break
			}
		}
		if _, overridden := s.Env[k]; !overridden {
			out = append(out, kv)
		}
	}
	for _, k := range keys {
		out = append(out, k+"="+s.Env[k])
	}
	return out
}

// GOGCSet reports whether the operator tuned the garbage collector through
// the GOGC environment variable; Mandate only applies its own default
// when not.
func GOGCSet() bool {
	_, ok := os.LookupEnv("GOGC")
	return ok
}
