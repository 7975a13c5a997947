package store

import "context"

// ChangeStore tells a caller when what it cached of users, agents and
// mandates may no longer be what the store holds. Reading one number per
// request is far cheaper than reading the records again, and the number
// comes from the database, so a change made by another replica or by the
// CLI reaches every cache at once, as a revocation or a suspension must,
// rather than when an expiry runs out.
type ChangeStore interface {
	// Generation returns a number that grows whenever a user, an agent or
	// a mandate is created, changed or deleted, through this store or
	// through any other process sharing its database, and never shrinks.
	// A write through this store counts once it returns. A write by
	// another process counts from its commit on where the backend reads
	// the database on every call (sqlite), and once the backend is told
	// of it where it is told (postgres, whose Generation says how soon).
	// Bookkeeping nothing decides on leaves it unchanged, so that
	// the calls the gateway makes on every request do not empty every
	// cache: a mandate's use count (ConsumeMandateUse, itself atomic in
	// the store, so a cached count may be stale but is never trusted), an
	// agent's sighting times (TouchAgent) and a user's last login. A
	// caller therefore must not rely on those three fields of a cached
	// record. A caller that gets an error must read the records instead.
	Generation(ctx context.Context) (uint64, error)
}
