// Package keyfile creates the secret files Mandate keeps in its data
// directory (the authorization server's seal key, the audit log's signing
// and digest keys) exactly once, even when several processes start at the
// same moment, and never lets a reader see one half written.
package keyfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreate returns what read makes of the file at path, first writing
// what create makes if the file does not exist. The new file is written,
// owner-only, under a temporary name in the same directory, synced, and
// hard-linked into place: linking fails if another process got there
// first, whose file then wins whole and is the one read. read is the
// caller's check of the content (its length, its permissions).
func LoadOrCreate(path string, create func() ([]byte, error), read func(string) ([]byte, error)) ([]byte, error) {
	data, err := read(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	content, err := create()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	syncDir(filepath.Dir(path))
	return read(path)
}

// syncDir makes the new directory entry durable; where a directory cannot
// be synced, the file is still complete, only its name may be lost with
// power.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
