package authserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/mandate-mcp/mandate/internal/store"
)

// Keys returns the public keys that verify tokens this server issued (every
// key not yet retired). The resource server in the same process reads them
// directly instead of fetching its own JWKS over HTTP; it satisfies
// authn.KeySource.
func (s *Server) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	keys, err := s.keys.published(ctx)
	if err != nil {
		return nil, err
	}
	set := &jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.private.PublicKey, KeyID: k.id, Algorithm: "RS256", Use: "sig"})
	}
	return set, nil
}

// ConfigClient is an agent pre-registered in the configuration file.
type ConfigClient struct {
	ID, Name     string
	Secret       string // makes the client confidential (client_secret_basic/post)
	JWKSURL      string // or JWKS: keys of a private_key_jwt client
	JWKS         string
	RedirectURIs []string
	GrantTypes   []string
	Scopes       []string
	TrustLevel   string
}

// RegisterClients writes the configured agents to the store, hashing their
// secrets. An agent already known keeps its status (an operator's
// suspension survives a restart) and its first/last-seen times; everything
// else follows the file.
func (s *Server) RegisterClients(ctx context.Context, clients []ConfigClient) error {
	for _, c := range clients {
		a := store.Agent{
			ID: c.ID, Name: c.Name, Registration: store.RegistrationConfig,
			TrustLevel: c.TrustLevel, Status: store.AgentActive,
			RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, Scopes: c.Scopes,
			AuthMethod: "none", JWKSURL: c.JWKSURL, CreatedAt: s.now(),
		}
		if a.TrustLevel == "" {
			a.TrustLevel = "standard"
		}
		if len(a.Scopes) == 0 {
			a.Scopes = s.defaultScopes()
		}
		switch {
		case c.Secret != "":
			hash, err := hashSecret(c.Secret)
			if err != nil {
				return err
			}
			a.AuthMethod, a.SecretHash = "client_secret_basic", hash
		case c.JWKS != "" || c.JWKSURL != "":
			a.AuthMethod = "private_key_jwt"
			if c.JWKS != "" {
				a.JWKS = []byte(c.JWKS)
			}
		}
		old, err := s.store.GetAgent(ctx, c.ID)
		known := err == nil
		switch {
		case known:
			a.Status, a.CreatedAt, a.FirstSeen, a.LastSeen = old.Status, old.CreatedAt, old.FirstSeen, old.LastSeen
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("register client %s: %w", c.ID, err)
		}
		if err := s.store.PutAgent(ctx, a); err != nil {
			return fmt.Errorf("register client %s: %w", c.ID, err)
		}
		if !known {
			if err := s.agentRegistered(ctx, a); err != nil {
				return fmt.Errorf("register client %s: %w", c.ID, err)
			}
		}
	}
	return nil
}
