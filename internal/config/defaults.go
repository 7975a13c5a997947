package config

import (
	"fmt"
	"path/filepath"
)

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
	if c.Audit.Enabled == nil {
		c.Audit.Enabled = new(true)
	}
	if c.Audit.CheckpointInterval == 0 {
		c.Audit.CheckpointInterval = DefaultCheckpointInterval
	}
	if a := c.Policy.AuthZEN; a != nil && a.Timeout == 0 {
		a.Timeout = DefaultAuthZENTimeout
	}
	c.Auth.applyDefaults(o, c.Listen)
	for i := range c.Upstreams {
		c.Upstreams[i].applyDefaults()
	}
}

// SetListen replaces the listen address after loading, as a --listen flag
// does, and moves a public_url that was derived from the old address with
// it. The caller validates the result again: whether "auth: none" is
// allowed depends on the address.
func (c *Config) SetListen(addr string) {
	if !c.src.has("auth.public_url") && c.Auth.PublicURL == derivedPublicURL(c.Listen) {
		c.Auth.PublicURL = derivedPublicURL(addr)
	}
	c.Listen = addr
}

// derivedPublicURL is the default public_url: the listen address as
// written, which is right for a loopback listener and a placeholder for
// anything else, where the externally visible name must be configured.
func derivedPublicURL(listen string) string {
	return "http://" + listen
}

func (a *Auth) applyDefaults(o *origin, listen string) {
	if a.Mode == "" && !o.has("auth.mode") {
		a.Mode = AuthEmbedded
	}
	if a.PublicURL == "" && !o.has("auth.public_url") {
		a.PublicURL = derivedPublicURL(listen)
	}
	if a.AccessTokenTTL == 0 {
		a.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if a.RefreshTokenTTL == 0 {
		a.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if a.KeyRotation == 0 {
		a.KeyRotation = DefaultKeyRotation
	}
	if a.DCR.Enabled == nil {
		a.DCR.Enabled = new(true)
	}
	if a.DCR.PerMinute == 0 {
		a.DCR.PerMinute = DefaultDCRPerMinute
	}
	if a.CIMD.Enabled == nil {
		a.CIMD.Enabled = new(true)
	}
	if a.CIMD.Timeout == 0 {
		a.CIMD.Timeout = DefaultCIMDTimeout
	}
	if a.CIMD.MaxBytes == 0 {
		a.CIMD.MaxBytes = DefaultCIMDMaxBytes
	}
	for i := range a.Clients {
		c := &a.Clients[i]
		base := fmt.Sprintf("auth.clients[%d].", i)
		// An explicit empty list is kept for Validate to refuse: a client
		// with no grant types is a mistake, not a request for the default.
		if c.GrantTypes == nil && !o.has(base+"grant_types") {
			c.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
		}
		if c.TrustLevel == "" && !o.has(base+"trust_level") {
			c.TrustLevel = TrustStandard
		}
	}
	for i := range a.Issuers {
		a.Issuers[i].Claims.applyDefaults()
	}
	for i := range a.IDJAG {
		a.IDJAG[i].Claims.applyDefaults()
	}
	if f := a.Federation; f != nil {
		if f.Scopes == nil && !o.has("auth.federation.scopes") {
			f.Scopes = []string{"openid", "email", "profile"}
		}
		f.Claims.applyDefaults()
	}
}

// applyDefaults fills every claim name left empty; a claim map has no use
// for an empty name, so "" is not kept for Validate as strings are
// elsewhere.
func (m *ClaimMap) applyDefaults() {
	for _, f := range []struct {
		p   *string
		def string
	}{
		{&m.User, DefaultClaimUser},
		{&m.Agent, DefaultClaimAgent},
		{&m.Email, DefaultClaimEmail},
		{&m.Groups, DefaultClaimGroups},
		{&m.Scopes, DefaultClaimScopes},
	} {
		if *f.p == "" {
			*f.p = f.def
		}
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
	if u.TrustAnnotations == nil {
		u.TrustAnnotations = new(true)
	}
}
