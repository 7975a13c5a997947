package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
)

// quickstartYAML is the configuration used when none is given: loopback
// only, with the built-in demo upstream, so a first run needs no file.
//
//go:embed quickstart.yaml
var quickstartYAML []byte

// quickstartName is how problems in the embedded quickstart are located.
const quickstartName = "quickstart.yaml"

// Load reads, expands and validates the configuration file at path. A
// configuration with problems is returned as an *Error listing all of them,
// never as a partly usable Config.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for bytes already read. name is used as the file in
// problems and as Config.Source, so relative ${file:…} paths resolve
// against its directory.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, name, data)
}

// Quickstart returns the embedded quickstart configuration, ready to use.
// Its Source is "", so relative ${file:…} paths resolve against the
// working directory.
func Quickstart() (*Config, error) {
	return parse(quickstartName, "", quickstartYAML)
}

// parse runs the whole pipeline and collects every problem from every
// stage, so an operator fixes a file in one pass.
func parse(file, source string, data []byte) (*Config, error) {
	cfg, problems, fatal := decodeFile(file, data)
	if fatal {
		return nil, &Error{Problems: problems}
	}
	cfg.Source = source
	cfg.ApplyDefaults()
	var expandErr *Error
	if errors.As(Expand(cfg), &expandErr) {
		problems = append(problems, expandErr.Problems...)
	}
	problems = append(problems, Validate(cfg)...)
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &Error{Problems: problems}
	}
	return cfg, nil
}
