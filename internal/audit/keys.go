package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mandate-mcp/mandate/internal/keyfile"
)

// Files of one replica's audit identity, in its data directory's "audit"
// subdirectory. They are created on first use, readable by the owner only.
const (
	// SigningKeyFile holds the Ed25519 checkpoint key, PKCS #8 in PEM.
	SigningKeyFile = "signing.key"
	// DigestKeyFile holds the HMAC key of argument digests, hex.
	DigestKeyFile = "digest.key"
	// ChainFile holds the replica's chain id, so a restart continues the
	// same chain.
	ChainFile = "chain"
)

// Keys are one replica's audit identity: who signs its checkpoints, the
// secret its argument digests are keyed with, and the chain it writes.
type Keys struct {
	Signer    *Signer
	DigestKey []byte
	Chain     string
}

// KeysDir is where LoadKeys keeps the files of the data directory dataDir.
func KeysDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// LoadKeys reads the audit identity kept under dir, creating what is missing.
// Creation is race-free: of two processes creating a file together, both end
// up with the one that was written first.
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	signer, err := LoadOrCreateSigner(filepath.Join(dir, SigningKeyFile))
	if err != nil {
		return nil, err
	}
	digest, err := loadOrCreate(filepath.Join(dir, DigestKeyFile), func() ([]byte, error) {
		k := make([]byte, 32)
		rand.Read(k)
		return []byte(hex.EncodeToString(k) + "\n"), nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit digest key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(digest)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("audit digest key %s: not at least 16 bytes of hex", filepath.Join(dir, DigestKeyFile))
	}
	chain, err := loadOrCreate(filepath.Join(dir, ChainFile), func() ([]byte, error) {
		return []byte(NewChainID() + "\n"), nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit chain id: %w", err)
	}
	id := strings.TrimSpace(string(chain))
	if id == "" || strings.ContainsAny(id, "\x00\n") {
		return nil, fmt.Errorf("audit chain id in %s is empty or not one line", filepath.Join(dir, ChainFile))
	}
	return &Keys{Signer: signer, DigestKey: key, Chain: id}, nil
}

// NewChainID returns a fresh chain id.
func NewChainID() string { return "chain_" + strings.ToLower(rand.Text()[:16]) }

// Signer signs checkpoints with an Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a Signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// LoadOrCreateSigner reads the PEM PKCS #8 Ed25519 key at path, generating
// and writing one (mode 0600) if there is none. A key file others may read
// is refused: whoever can read it can forge checkpoints.
func LoadOrCreateSigner(path string) (*Signer, error) {
	data, err := loadOrCreate(path, func() ([]byte, error) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	return parseSigner(path, data)
}

// LoadSigner reads the key at path like LoadOrCreateSigner, but never
// creates one: a missing key is an error wrapping fs.ErrNotExist. Commands
// that only check a log use it, so a typo in a path cannot mint a key.
func LoadSigner(path string) (*Signer, error) {
	data, err := readSecret(path)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	return parseSigner(path, data)
}

func parseSigner(path string, data []byte) (*Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit signing key %s: not a PEM private key", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit signing key %s: not an Ed25519 key", path)
	}
	return NewSigner(key), nil
}

// Public returns the key that verifies the Signer's signatures.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID names the Signer's key in checkpoints.
func (s *Signer) KeyID() string { return s.id }

// PublicPEM returns the public key as a PEM "PUBLIC KEY" (PKIX), the form
// `mandate audit pubkey` prints and `verify --pubkey` reads.
func (s *Signer) PublicPEM() []byte { return PublicPEM(s.Public()) }

// Sign signs msg.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.key, msg) }

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PublicPEM encodes pub as a PEM "PUBLIC KEY".
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // An Ed25519 key always marshals.
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKeys reads every PEM "PUBLIC KEY" in data; each must be Ed25519.
func ParsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse audit public key: %w", err)
		}
		pub, ok := parsed.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("parse audit public key: not an Ed25519 key")
		}
		out = append(out, pub)
	}
	if len(out) == 0 {
		return nil, errors.New("parse audit public key: no PEM PUBLIC KEY block")
	}
	return out, nil
}

// loadOrCreate returns the content of the secret file at path, first
// writing what create makes if it does not exist (see keyfile.LoadOrCreate).
func loadOrCreate(path string, create func() ([]byte, error)) ([]byte, error) {
	return keyfile.LoadOrCreate(path, create, readSecret)
}

// readSecret reads a secret file, refusing one that group or others may
// read or write.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is accessible to others (mode %04o); make it 0600", path, fi.Mode().Perm())
	}
	return io.ReadAll(f)
}
