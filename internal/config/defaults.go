package config

import "path/filepath"

// ApplyDefaults fills in what the file left out. Load, Parse and Quickstart
// call it; code that builds a Config by hand calls it before Validate.
//
// A string the file sets explicitly, even to "", is kept so that Validate
// can refuse it: silently replacing `listen: ""` would hide a typo. A zero
// number or duration always means the default, so a timeout cannot be
// switched off: an upstream that never answers must not hold a request, a
// session or a slot forever.
func (c *Config) ApplyDefaults() {
	o := c.src
	if c.Listen == "" && !o.has("listen") {
		c.Listen = DefaultListen
	}
	if c.DataDir == "" && !o.has("data_dir") {
		c.DataDir = DefaultDataDir
	}
	if c.Separator == "" && !o.has("separator") {
		c.Separator = DefaultSeparator
	}
	if c.Store.Driver == "" && !o.has("store.driver") {
		c.Store.Driver = "sqlite"
	}
	if c.Store.Driver == "sqlite" && c.Store.DSN == "" && c.DataDir != "" {
		c.Store.DSN = filepath.Join(c.DataDir, "mandate.db")
	}
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.HTTP.SessionTimeout == 0 {
		c.HTTP.SessionTimeout = DefaultSessionTimeout
	}
	if c.HTTP.MaxSessionsPerClient == 0 {
		c.HTTP.MaxSessionsPerClient = DefaultMaxClientSess
	}
	for i := range c.Upstreams {
		c.Upstreams[i].applyDefaults()
	}
}

func (u *Upstream) applyDefaults() {
	if u.Timeout == 0 {
		u.Timeout = DefaultTimeout
	}
	if u.Session == "" && !u.src.has("session") {
		u.Session = SessionShared
	}
	if u.MaxSessions == 0 {
		u.MaxSessions = DefaultMaxSessions
	}
	if u.IdleTimeout == 0 {
		u.IdleTimeout = DefaultIdleTimeout
	}
	if u.Restart.MaxBackoff == 0 {
		u.Restart.MaxBackoff = DefaultMaxBackoff
	}
}
