package authserver

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mandate-mcp/mandate/internal/keyfile"
)

// Sealer protects secrets the authorization server keeps at rest (signing
// keys) and secrets it hands to browsers (cookies, CSRF tokens): Seal
// encrypts and authenticates, Open refuses anything Seal did not produce with
// the same key. Every replica that shares a store must share the sealer's
// key, or it can neither sign with the stored keys nor read another
// replica's cookies.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// SealKeyFile is the name of the key file NewFileSealer reads in its
// directory.
const SealKeyFile = "authserver-seal.key"

// sealVersion prefixes every sealed value so that a later key or algorithm
// change can tell old values from new ones.
const sealVersion = 1

// FileSealer is an AES-256-GCM Sealer keyed from a 32-byte file.
type FileSealer struct {
	aead cipher.AEAD
	key  []byte // the file's key, for DeriveKey
}

var _ Sealer = (*FileSealer)(nil)

// NewFileSealer returns a sealer keyed from dir/SealKeyFile, creating the
// directory (0700) and a fresh random key (0600) when the file is absent.
// The key is created under a temporary name and linked into place, so two
// processes starting together agree on one key and neither reads a
// half-written file.
func NewFileSealer(dir string) (*FileSealer, error) {
	key, err := loadOrCreateKey(dir)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return newSealer(key)
}

func newSealer(key []byte) (*FileSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return &FileSealer{aead: aead, key: key}, nil
}

// DeriveKey returns a 32-byte key for purpose, derived from the seal key
// with HKDF-SHA256. It is for a component that seals values of its own,
// such as the federated login cookie: every replica sharing the key file
// derives the same key, so a login started on one replica finishes on
// another, yet no two purposes share a key, and none is the sealer's.
func (s *FileSealer) DeriveKey(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, s.key, nil, "mandate authserver "+purpose, 32)
	if err != nil {
		panic(err) // HKDF-SHA256 fails only for lengths over 8160 bytes
	}
	return k
}

func loadOrCreateKey(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return keyfile.LoadOrCreate(filepath.Join(dir, SealKeyFile), func() ([]byte, error) {
		key := make([]byte, 32)
		_, err := rand.Read(key)
		return key, err
	}, readKey)
}

func readKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s holds %d bytes, want 32", path, len(key))
	}
	return key, nil
}

// Seal implements Sealer: version byte, random nonce, ciphertext and tag.
func (s *FileSealer) Seal(plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[1:], plaintext, out[:1]), nil
}

// errUnsealable hides why a value could not be opened: callers treat a
// forged, truncated or foreign value alike.
var errUnsealable = errors.New("sealed value cannot be opened")

// Open implements Sealer.
func (s *FileSealer) Open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errUnsealable
	}
	out, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealed[:1])
	if err != nil {
		return nil, errUnsealable
	}
	return out, nil
}
