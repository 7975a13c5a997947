package authserver

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/store"
)

const (
	keyAlgorithm = "RS256"
	keyBits      = 2048
	// keyRefresh bounds how long a replica trusts its view of the stored
	// keys, so a key another replica created is published and verifiable
	// here soon after.
	keyRefresh = 30 * time.Second
)

// signingKey is a stored key, unsealed and parsed.
type signingKey struct {
	id       string
	private  *rsa.PrivateKey
	notAfter time.Time // stops signing
	retireAt time.Time // stops being published
}

// keyring holds the signing keys. The newest key whose NotAfter lies ahead
// signs; every key not yet retired is published and verifies. When the
// signing key's time is up the next call creates a successor, so rotation
// needs no timer and a replica that was down simply rotates on its next
// token.
type keyring struct {
	store    AuthStore
	sealer   Sealer
	now      func() time.Time
	log      *slog.Logger
	rotation time.Duration
	grace    time.Duration // AccessTTL: how long a key verifies after it stops signing

	mu     sync.Mutex
	keys   []*signingKey // newest first, as the store lists them
	loaded time.Time
}

// current returns the key to sign with, creating one when none may sign.
func (k *keyring) current(ctx context.Context) (*signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if err := k.refreshLocked(ctx, now, false); err != nil {
		return nil, err
	}
	if key := k.signerLocked(now); key != nil {
		return key, nil
	}
	// Another replica may have rotated already: look again before adding a
	// key of our own.
	if err := k.refreshLocked(ctx, now, true); err != nil {
		return nil, err
	}
	if key := k.signerLocked(now); key != nil {
		return key, nil
	}
	key, err := k.createLocked(ctx, now)
	if err != nil {
		return nil, err
	}
	k.pruneLocked(ctx, now)
	return key, nil
}

// published returns every key not yet retired, newest first.
func (k *keyring) published(ctx context.Context) ([]*signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if err := k.refreshLocked(ctx, now, false); err != nil {
		return nil, err
	}
	out := make([]*signingKey, 0, len(k.keys))
	for _, key := range k.keys {
		if key.retireAt.After(now) {
			out = append(out, key)
		}
	}
	return out, nil
}

// lookup returns the published key with id, reloading once if it is unknown
// (another replica may have just created it).
func (k *keyring) lookup(ctx context.Context, id string) (*signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	for force := false; ; force = true {
		if err := k.refreshLocked(ctx, now, force); err != nil {
			return nil, err
		}
		for _, key := range k.keys {
			if key.id == id && key.retireAt.After(now) {
				return key, nil
			}
		}
		if force {
			return nil, fmt.Errorf("unknown signing key %q", id)
		}
	}
}

func (k *keyring) signerLocked(now time.Time) *signingKey {
	for _, key := range k.keys {
		if key.notAfter.After(now) {
			return key
		}
	}
	return nil
}

// refreshLocked reloads the stored keys when forced or stale, reusing the
// parsed form of keys it already holds.
func (k *keyring) refreshLocked(ctx context.Context, now time.Time, force bool) error {
	if !force && !k.loaded.IsZero() && !now.Before(k.loaded) && now.Sub(k.loaded) < keyRefresh {
		return nil
	}
	stored, err := k.store.ListSigningKeys(ctx, now)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	known := make(map[string]*signingKey, len(k.keys))
	for _, key := range k.keys {
		known[key.id] = key
	}
	keys := make([]*signingKey, 0, len(stored))
	for _, sk := range stored {
		if key, ok := known[sk.ID]; ok {
			keys = append(keys, key)
			continue
		}
		key, err := k.unseal(sk)
		if err != nil {
			// One unreadable key (sealed under another key file) must not
			// stop the others from signing and verifying.
			k.log.Error("authserver: unusable signing key", "kid", sk.ID, "err", err)
			continue
		}
		keys = append(keys, key)
	}
	k.keys, k.loaded = keys, now
	return nil
}

func (k *keyring) unseal(sk store.SigningKey) (*signingKey, error) {
	if sk.Algorithm != keyAlgorithm {
		return nil, fmt.Errorf("algorithm %q", sk.Algorithm)
	}
	der, err := k.sealer.Open(sk.Private)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return &signingKey{id: sk.ID, private: priv, notAfter: sk.NotAfter, retireAt: sk.RetireAt}, nil
}

func (k *keyring) createLocked(ctx context.Context, now time.Time) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	sealed, err := k.sealer.Seal(der)
	if err != nil {
		return nil, fmt.Errorf("seal signing key: %w", err)
	}
	id, err := keyID(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(k.rotation)
	sk := store.SigningKey{
		ID: id, Algorithm: keyAlgorithm, Private: sealed,
		CreatedAt: now, NotAfter: notAfter, RetireAt: notAfter.Add(k.grace),
	}
	if err := k.store.PutSigningKey(ctx, sk); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	key := &signingKey{id: id, private: priv, notAfter: sk.NotAfter, retireAt: sk.RetireAt}
	k.keys = append([]*signingKey{key}, k.keys...)
	k.log.Info("authserver: new signing key", "kid", id, "signs_until", sk.NotAfter)
	return key, nil
}

// pruneLocked deletes stored keys that are retired; a failure only delays
// the cleanup to the next rotation.
func (k *keyring) pruneLocked(ctx context.Context, now time.Time) {
	all, err := k.store.ListSigningKeys(ctx, time.Unix(0, 0))
	if err != nil {
		k.log.Warn("authserver: list signing keys for pruning", "err", err)
		return
	}
	for _, sk := range all {
		if !sk.RetireAt.After(now) {
			if err := k.store.DeleteSigningKey(ctx, sk.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				k.log.Warn("authserver: delete retired signing key", "kid", sk.ID, "err", err)
			}
		}
	}
}

// keyID is the RFC 7638 thumbprint of the public key, so the same key always
// has the same kid.
func keyID(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// newID returns prefix followed by 128 random bits, hex-encoded.
func newID(prefix string) string {
	return prefix + hex.EncodeToString(randomBytes(16))
}

// randomToken returns 256 random bits, base64url-encoded: refresh tokens,
// codes, client secrets, cookies.
func randomToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// tokenHash is the stored identifier of a bearer secret (refresh token):
// the secret itself is never stored.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
