package sqlite

import (
	"context"
	"database/sql"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Usage event IDs are looked up before every ingest, a thousand a batch,
// nearly all of them new; a key search each was about a tenth of an
// ingest's CPU. The store keeps, in memory, a Bloom filter of the stored
// IDs: an ID it does not hold is certainly not stored, and only the others
// (a duplicate, or one in a thousand or so by chance) are looked up.
//
// The filter must never miss a stored ID. Commit adds a batch's IDs to it
// before the batch commits (an ID of a batch that then fails is a false
// positive, which only costs a lookup). A filter is built from a read of
// the table, and until then lookups go to the database: the build first
// marks the new filter, with no commit in progress (it holds the writer's
// turn, hooks.mu), so that every commit after that adds to it, then reads
// the table, which holds every ID committed before. Forgotten IDs stay in
// the filter, as false positives. Once more IDs were added than it was
// built for, a larger one is built the same way, and replaces it when
// whole.

// idSeed keys the filter's hash: the filter lives in memory only.
var idSeed = maphash.MakeSeed()

// idHash is the filter's hash of provider's event ID id.
func idHash(provider, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(idSeed)
	h.WriteString(provider)
	h.WriteByte(0)
	h.WriteString(id)
	return h.Sum64()
}

// Sizes of the filter: 16 bits an ID, in blocks of 512 bits (a cache
// line), 7 bits of a block set an ID: about 0.1% false positives when it
// holds what it was built for. At least minIDFilter IDs; at most
// maxIDFilterBits (256 MiB), past which more IDs raise the false positives
// (lookups), never the misses.
const (
	idFilterBitsPerID = 16
	idFilterK         = 7
	minIDFilter       = 1 << 20
	maxIDFilterBits   = 1 << 31
)

// idFilterMin is the least a store's filters are built for (tests lower
// it before Open).
var idFilterMin = func() (v atomic.Int64) { v.Store(minIDFilter); return }()

// idFilter is a blocked Bloom filter of hashes; add and has are safe for
// concurrent use.
type idFilter struct {
	words    []atomic.Uint64 // 8 a block
	blocks   uint64
	capacity int64        // the IDs it was built for
	added    atomic.Int64 // IDs added
}

func newIDFilter(capacity int64) *idFilter {
	bits := min(max(capacity, 1)*idFilterBitsPerID, maxIDFilterBits)
	blocks := uint64(max(bits/512, 1))
	return &idFilter{words: make([]atomic.Uint64, blocks*8), blocks: blocks, capacity: capacity}
}

// block returns h's block of words, and h mixed again, whose 9-bit pieces
// pick the bits in it.
func (f *idFilter) block(h uint64) ([]atomic.Uint64, uint64) {
	b := (h >> 32) * f.blocks >> 32 // h's high half, scaled
	return f.words[b*8 : b*8+8], h * 0x9E3779B97F4A7C15
}

func (f *idFilter) add(h uint64) {
	words, g := f.block(h)
	for i := range idFilterK {
		bit := g >> (9 * i) & 511
		words[bit>>6].Or(1 << (bit & 63))
	}
	f.added.Add(1)
}

// has reports whether h may have been added (false: certainly not).
func (f *idFilter) has(h uint64) bool {
	words, g := f.block(h)
	for i := range idFilterK {
		bit := g >> (9 * i) & 511
		if words[bit>>6].Load()&(1<<(bit&63)) == 0 {
			return false
		}
	}
	return true
}

// idFilters are a store's filters: the one lookups use, and the one being
// built, which commits fill too.
type idFilters struct {
	cur, next atomic.Pointer[idFilter]
	building  atomic.Bool
	// minCapacity is the least a filter is built for (tests lower it).
	minCapacity int64
	// lookups counts the IDs the filter left to the database (tests).
	lookups atomic.Int64
	ctx     context.Context // canceled by Close, which waits for builds
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// startIDFilter sets the filters up and builds the first (Open, before
// any commit).
func (s *Store) startIDFilter() {
	f := &s.idf
	f.ctx, f.stop = context.WithCancel(context.Background())
	f.minCapacity = idFilterMin.Load()
	s.buildIDFilter()
}

// closeIDFilter stops a build and waits for it (Close).
func (s *Store) closeIDFilter() {
	if f := &s.idf; f.stop != nil {
		f.stop()
		f.wg.Wait()
	}
}

// addToIDFilter adds the IDs' hashes to the filters (Commit, before the
// batch commits), and starts a larger filter once the current one holds
// more than it was built for.
func (s *Store) addToIDFilter(hs []uint64) {
	f := &s.idf
	cur, next := f.cur.Load(), f.next.Load()
	for _, h := range hs {
		if cur != nil {
			cur.add(h)
		}
		if next != nil {
			next.add(h)
		}
	}
	if cur != nil && cur.added.Load() > cur.capacity {
		s.buildIDFilter()
	}
}

// buildIDFilter builds a filter in the background, unless one is being
// built.
func (s *Store) buildIDFilter() {
	f := &s.idf
	if !f.building.CompareAndSwap(false, true) {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.building.Store(false)
		if err := s.fillIDFilter(f.ctx); err != nil {
			f.next.Store(nil) // lookups go on with the filter they had, or the database
		}
	}()
}

// fillIDFilter marks a new filter (with the writer's turn), reads every
// stored ID into it, and makes it the current one.
func (s *Store) fillIDFilter(ctx context.Context) error {
	f := &s.idf
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM billing_event_ids`).Scan(&n); err != nil {
		return err
	}
	next := newIDFilter(max(2*n, f.minCapacity))
	s.hooks.mu.Lock()
	f.next.Store(next)
	s.hooks.mu.Unlock()
	rows, err := s.db.QueryContext(ctx, `SELECT provider_id, event_id FROM billing_event_ids`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var provider, id sql.RawBytes
	for first := true; rows.Next(); first = false {
		if err := rows.Scan(&provider, &id); err != nil {
			return err
		}
		next.add(idHash(string(provider), string(id)))
		if fn := testIDFilterScanning.Load(); first && fn != nil {
			(*fn)(s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	f.cur.Store(next)
	f.next.CompareAndSwap(next, nil)
	return nil
}

// testIDFilterScanning, when set (tests), runs once a build has read the
// table's first row: its read sees no later commit.
var testIDFilterScanning atomic.Pointer[func(s *Store)]

// mayBeStored returns those of ids the filter says may be stored (all of
// them while there is no filter yet).
func (s *Store) mayBeStored(provider string, ids []string) []string {
	cur := s.idf.cur.Load()
	if cur == nil {
		return ids
	}
	var out []string
	for _, id := range ids {
		if cur.has(idHash(provider, id)) {
			out = append(out, id)
		}
	}
	s.idf.lookups.Add(int64(len(out)))
	return out
}
