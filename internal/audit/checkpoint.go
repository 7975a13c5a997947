package audit

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Checkpoint is a signed statement that the record at Seq of Chain had Hash
// at Time. Its JSON field names are stable: they appear in exports.
type Checkpoint struct {
	Chain string    `json:"chain"`
	Seq   int64     `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	// Key is the KeyID of the key that signed.
	Key       string `json:"key"`
	Signature []byte `json:"sig"`
}

// checkpointDomain separates checkpoint signatures from anything else the
// key might ever sign.
const checkpointDomain = "mandate audit checkpoint v1\n"

// message is what a checkpoint's signature covers: every field but the
// signature itself, one per line, the time in UTC at the store's precision.
func (c Checkpoint) message() []byte {
	return []byte(checkpointDomain + c.Chain + "\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Hash + "\n" +
		c.Time.UTC().Format(time.RFC3339Nano) + "\n" + c.Key + "\n")
}

// signCheckpoint returns the signed checkpoint of a chain whose head is head.
func signCheckpoint(s *Signer, head Record, at time.Time) Checkpoint {
	c := Checkpoint{
		Chain: head.Chain, Seq: head.Seq, Hash: head.Hash,
		Time: at.UTC().Truncate(store.TimePrecision), Key: s.KeyID(),
	}
	c.Signature = s.Sign(c.message())
	return c
}

// check verifies c's signature against the trusted keys.
func (c Checkpoint) check(keys map[string]ed25519.PublicKey) error {
	pub, ok := keys[c.Key]
	if !ok {
		return fmt.Errorf("signed by key %q, which is not trusted", c.Key)
	}
	if !ed25519.Verify(pub, c.message(), c.Signature) {
		return fmt.Errorf("signature by key %s does not verify (forged or altered)", c.Key)
	}
	return nil
}

func (c Checkpoint) toStore() store.AuditCheckpoint {
	return store.AuditCheckpoint{Chain: c.Chain, Seq: c.Seq, Hash: c.Hash, At: c.Time, KeyID: c.Key, Signature: c.Signature}
}

func checkpointFromStore(sc store.AuditCheckpoint) Checkpoint {
	return Checkpoint{Chain: sc.Chain, Seq: sc.Seq, Hash: sc.Hash, Time: sc.At, Key: sc.KeyID, Signature: sc.Signature}
}

// keyring indexes trusted public keys by KeyID.
func keyring(keys []ed25519.PublicKey) map[string]ed25519.PublicKey {
	m := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		m[KeyID(k)] = k
	}
	return m
}
