package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// generationChannel is the channel migration 0007's triggers announce every
// new generation on.
const generationChannel = "mandate_generation"

// Timing of the generation listener. A listener proves it is current by
// receiving, on a channel of its own, a probe it sent through the pool
// every probeInterval: notifications arrive in commit order, so receiving
// a probe means every change committed before it was sent has arrived too.
// Without such proof for staleAfter, Generation reads the row instead; that
// bounds how long a listener cut off from the database without noticing
// (a half-open connection, a pooler that does not forward notifications)
// can vouch for a stale copy.
const (
	probeInterval = 250 * time.Millisecond
	staleAfter    = time.Second
	retryMax      = 2 * time.Second
)

// Generation implements store.ChangeStore. While the listener is current
// it answers from memory, with no round trip: a change committed by any
// process is reflected once its notification arrives, which on a healthy
// connection is well under a millisecond after the commit. Otherwise —
// before the listener has connected, while it reconnects, when its last
// proof is older than staleAfter, and after a write through this store
// until a probe sent after that write has come back — it reads the row,
// so it never answers from a copy it cannot vouch for.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	if err := s.open(); err != nil {
		return 0, fmt.Errorf("generation: %w", err)
	}
	if v, ok := s.gen.current(); ok {
		return v, nil
	}
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT value FROM generations WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("generation: %w", s.mapError(err))
	}
	return s.gen.raise(uint64(v)), nil
}

// generation is the in-memory copy of the change generation, kept current
// by a LISTEN connection of its own and the probes that prove it current.
type generation struct {
	pool  *pgxpool.Pool
	cfg   *pgx.ConnConfig
	probe string // this copy's own probe channel
	start time.Time

	value atomic.Uint64
	// confirmed is when, in nanoseconds since start, the last probe the
	// listener received was sent: every change committed before it is in
	// value. It is -1 while the listener is not listening.
	confirmed atomic.Int64
	// wrote is when a write through this store last returned; a copy is
	// trusted only once confirmed is later.
	wrote atomic.Int64

	// listenerPID is the backend process of the listening connection, 0
	// when there is none; tests end it to cut the listener off.
	listenerPID atomic.Uint32

	stop context.CancelFunc
	done sync.WaitGroup
}

// startGeneration starts listening with a connection configured as cfg
// and probing through pool, until close.
func startGeneration(pool *pgxpool.Pool, cfg *pgx.ConnConfig) *generation {
	g := &generation{
		pool: pool, cfg: cfg, start: time.Now(),
		probe: "mandate_probe_" + strings.ToLower(rand.Text()),
	}
	g.confirmed.Store(-1)
	ctx, stop := context.WithCancel(context.Background())
	g.stop = stop
	g.done.Go(func() { g.listen(ctx) })
	g.done.Go(func() { g.probeLoop(ctx) })
	return g
}

// close stops the listener and the probes and waits for both.
func (g *generation) close() {
	g.stop()
	g.done.Wait()
}

func (g *generation) now() int64 { return int64(time.Since(g.start)) }

// current returns the copy and whether it may be trusted now.
func (g *generation) current() (uint64, bool) {
	c := g.confirmed.Load()
	if c < 0 || c <= g.wrote.Load() || g.now()-c > int64(staleAfter) {
		return 0, false
	}
	return g.value.Load(), true
}

// written records that a write through the store has returned.
func (g *generation) written() { g.wrote.Store(g.now()) }

// raise moves the copy up to v, never down, and returns the copy.
func (g *generation) raise(v uint64) uint64 {
	for {
		cur := g.value.Load()
		if v <= cur {
			return cur
		}
		if g.value.CompareAndSwap(cur, v) {
			return v
		}
	}
}

// listen keeps a listening connection until ctx ends, reconnecting with
// backoff; the copy is not trusted while it is down.
func (g *generation) listen(ctx context.Context) {
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		if g.listenOnce(ctx) {
			wait = 50 * time.Millisecond
		}
		g.confirmed.Store(-1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// listenOnce connects, listens and applies notifications until the
// connection fails. It reports whether it got as far as listening.
func (g *generation) listenOnce(ctx context.Context) bool {
	conn, err := pgx.ConnectConfig(ctx, g.cfg)
	if err != nil {
		return false
	}
	g.listenerPID.Store(conn.PgConn().PID())
	defer func() {
		g.listenerPID.Store(0)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(ctx)
	}()
	for _, ch := range []string{generationChannel, g.probe} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false
		}
	}
	// Listening already, so a change committed after this read is
	// announced, and one committed before it is in what it reads.
	since := g.now()
	var v int64
	if err := conn.QueryRow(ctx, `SELECT value FROM generations WHERE id = 1`).Scan(&v); err != nil {
		return false
	}
	g.raise(uint64(v))
	g.confirmed.Store(since)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true
		}
		g.apply(n)
	}
}

// apply takes in one notification: a new generation, or one of this
// copy's probes, "sent:value".
func (g *generation) apply(n *pgconn.Notification) {
	switch n.Channel {
	case generationChannel:
		if v, err := strconv.ParseUint(n.Payload, 10, 64); err == nil {
			g.raise(v)
		}
	case g.probe:
		sent, value, ok := strings.Cut(n.Payload, ":")
		s, err1 := strconv.ParseInt(sent, 10, 64)
		v, err2 := strconv.ParseUint(value, 10, 64)
		if ok && err1 == nil && err2 == nil {
			g.raise(v)
			if s > g.confirmed.Load() {
				g.confirmed.Store(s)
			}
		}
	}
}

// probeLoop sends a probe every probeInterval until ctx ends. A probe that
// fails to send leaves the copy unconfirmed, which is the point.
func (g *generation) probeLoop(ctx context.Context) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.sendProbe(ctx)
	}
}

func (g *generation) sendProbe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeInterval)
	defer cancel()
	sent := strconv.FormatInt(g.now(), 10)
	_, _ = g.pool.Exec(ctx, `SELECT pg_notify($1, $2 || ':' || value) FROM generations WHERE id = 1`, g.probe, sent)
}
