package sqlite

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// tNewNonces is where a batch's nonces go first (migration 0025).
var tNewNonces = sqlstore.NewTable("signature_nonces_new", "keyid, nonce, expires_ms", "")

// agentParts is what b writes of agent identity: keys and nonces (b's,
// split by splitNonces), those of x402 authorizations straight into
// signature_nonces (they begin with the time: wire.NewNonce), the others
// into signature_nonces_new.
func agentParts(b *pb.Batch, x402, signed []pb.Nonce) []part {
	return []part{
		partOf(sqlstore.AgentKeys, b.AgentKeys, sqlstore.AgentKeyRow),
		partOf(sqlstore.Nonces, x402, sqlstore.NonceRow),
		partOf(tNewNonces, signed, sqlstore.NonceRow),
	}
}

// splitNonces separates x402 authorizations' nonces from signed requests'.
func splitNonces(ns []pb.Nonce) (x402, signed []pb.Nonce) {
	for _, n := range ns {
		if isX402(&n) {
			x402 = append(x402, n)
		} else {
			signed = append(signed, n)
		}
	}
	return x402, signed
}

func isX402(n *pb.Nonce) bool { return strings.HasPrefix(n.Nonce, pb.NoncePrefixX402) }

// moveNoncesEvery is how many nonces signature_nonces_new holds before the
// writer moves them into signature_nonces. A signed request's nonce is
// keyed by its expiry, in whole seconds, then its key and the random nonce:
// a second's nonces, from many agents, are spread over the pages of that
// second, and a batch's few landed on a page each (2.7 KB of WAL a signed
// payment in bench payments --signed). Appended to signature_nonces_new
// instead, and moved a few thousand at a time in key order, they share
// pages. Replays are looked up in memory meanwhile (recentNonces).
const moveNoncesEvery = 2048

// nonceKey is a signed request's nonce: its key, nonce and expiry.
type nonceKey struct {
	keyid, nonce string
	expiresMs    int64
}

func keyOf(n *pb.Nonce) nonceKey { return nonceKey{n.KeyID, n.Nonce, n.Expires.UnixMilli()} }

// recentNonces holds the signed requests' nonces that signature_nonces_new
// has (tail) and those that the last move took into signature_nonces
// (moved). NonceSeen asks it before the database. Only Commit adds, under
// the writer's lock; DeleteNonces forgets the expired ones it deleted.
type recentNonces struct {
	mu          sync.Mutex
	tail, moved map[nonceKey]bool
}

func (r *recentNonces) has(k nonceKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tail[k] || r.moved[k]
}

// size is how many nonces signature_nonces_new holds.
func (r *recentNonces) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tail)
}

// committed records ns, signed requests' nonces that a batch stored; with
// moved, the batch moved the tail, ns included, into signature_nonces.
func (r *recentNonces) committed(ns []pb.Nonce, moved bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range ns {
		r.tail[keyOf(&ns[i])] = true
	}
	if moved {
		r.moved, r.tail = r.tail, map[nonceKey]bool{}
	}
}

// forget drops ks.
func (r *recentNonces) forget(ks []nonceKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range ks {
		delete(r.tail, k)
		delete(r.moved, k)
	}
}

// loadNonces reads signature_nonces_new into s.nonces.
func (s *Store) loadNonces(ctx context.Context) error {
	s.nonces.tail, s.nonces.moved = map[nonceKey]bool{}, map[nonceKey]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT keyid, nonce, expires_ms FROM signature_nonces_new`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var n pb.Nonce
		var exp int64
		if err := rows.Scan(&n.KeyID, &n.Nonce, &exp); err != nil {
			return err
		}
		n.Expires = time.UnixMilli(exp)
		s.nonces.tail[keyOf(&n)] = true
	}
	return rows.Err()
}

// checkNonces refuses signed, a batch's signed requests' nonces, when one
// of them is stored already, recent or not: stored twice, it would be a
// replay accepted. (The ledger's writer checks each first, NonceSeen; this
// is the store's own guarantee, which signature_nonces_new has no key for,
// at one primary-key read a nonce.)
func (s *Store) checkNonces(ctx context.Context, signed []pb.Nonce) error {
	for i := range signed {
		n := &signed[i]
		seen := s.nonces.has(keyOf(n))
		if !seen {
			st, err := s.writerStmt(ctx, `SELECT EXISTS (SELECT 1 FROM signature_nonces WHERE expires_ms = ? AND keyid = ? AND nonce = ?)`)
			if err != nil {
				return err
			}
			if err := st.QueryRowContext(ctx, n.Expires.UnixMilli(), n.KeyID, n.Nonce).Scan(&seen); err != nil {
				return fmt.Errorf("couldn't look up a nonce: %w", err)
			}
		}
		if seen {
			return fmt.Errorf("couldn't write signature_nonces: the nonce %q of key %s is stored already", n.Nonce, n.KeyID)
		}
	}
	return nil
}

// moveNonces moves signature_nonces_new into signature_nonces, in key
// order, in the writer's transaction. A nonce stored already is left (OR
// IGNORE): checkNonces refused every batch with one, and a failure here
// would fail every batch after.
func (s *Store) moveNonces(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO signature_nonces (keyid, nonce, expires_ms)
		SELECT keyid, nonce, expires_ms FROM signature_nonces_new ORDER BY expires_ms, keyid, nonce`); err != nil {
		return fmt.Errorf("couldn't move nonces into signature_nonces: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM signature_nonces_new`); err != nil {
		return fmt.Errorf("couldn't move nonces into signature_nonces: %w", err)
	}
	return nil
}

// NonceSeen looks a signed request's nonce up among the recent ones, then
// in signature_nonces, in that order: a nonce leaves the recent ones only
// after the commit that moved it, which the database read that follows
// sees. An x402 nonce is in signature_nonces from its commit on.
func (s *Store) NonceSeen(ctx context.Context, n pb.Nonce) (bool, error) {
	if !isX402(&n) && s.nonces.has(keyOf(&n)) {
		return true, nil
	}
	return s.Reads.NonceSeen(ctx, n)
}

// DeleteNonces deletes up to limit nonces expired before cutoff, from
// signature_nonces first, then from signature_nonces_new, and forgets the
// latter's.
func (s *Store) DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	var n int64
	var gone []nonceKey
	err := s.inTx(ctx, func(db sqlstore.DB) error {
		var err error
		if n, err = db.Exec(ctx, `DELETE FROM signature_nonces WHERE (expires_ms, keyid, nonce) IN
			(SELECT expires_ms, keyid, nonce FROM signature_nonces WHERE expires_ms < $1 ORDER BY expires_ms LIMIT $2)`, cutoff.UnixMilli(), limit); err != nil {
			return err
		}
		if n >= int64(limit) {
			return nil
		}
		return db.Query(ctx, func(r sqlstore.Scanner) error {
			var nc pb.Nonce
			var exp int64
			if err := r.Scan(&nc.KeyID, &nc.Nonce, &exp); err != nil {
				return err
			}
			nc.Expires = time.UnixMilli(exp)
			gone = append(gone, keyOf(&nc))
			return nil
		}, `DELETE FROM signature_nonces_new WHERE rowid IN
			(SELECT rowid FROM signature_nonces_new WHERE expires_ms < $1 LIMIT $2) RETURNING keyid, nonce, expires_ms`, cutoff.UnixMilli(), int64(limit)-n)
	})
	if err != nil {
		return 0, err
	}
	s.nonces.forget(gone)
	return int(n) + len(gone), nil
}
