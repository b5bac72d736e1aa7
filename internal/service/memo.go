package service

import "sync"

// Memo remembers values read from a store that only this process writes
// (SQLite), until the change that makes one stale drops it: the changer
// calls Forget once its change is committed and before it answers. A read
// that began before a Forget is not kept after it, for it may predate the
// change: Get returns the generation it looked in, and Keep keeps nothing
// once a Forget came since. Past Max entries (default 10,000) it starts
// again empty. Agents' signing keys, agent cards and Token Pay providers'
// prices are remembered in one each. The zero Memo is ready; safe for
// concurrent use.
type Memo[K comparable, V any] struct {
	Max int
	mu  sync.Mutex
	gen uint64 // one more at each Forget
	m   map[K]V
}

// Get returns the value kept under k, if any, and the generation to give
// Keep with a value read now.
func (m *Memo[K, V]) Get(k K) (v V, gen uint64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok = m.m[k]
	return v, m.gen, ok
}

// Keep keeps v under each of keys, all at once, unless a Forget came
// since gen (from Get, before v was read).
func (m *Memo[K, V]) Keep(gen uint64, v V, keys ...K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return
	}
	limit := m.Max
	if limit <= 0 {
		limit = 10_000
	}
	if m.m == nil || len(m.m)+len(keys) > max(limit, len(keys)) {
		m.m = make(map[K]V)
	}
	for _, k := range keys {
		m.m[k] = v
	}
}

// Forget drops keys, and any value read before it from being kept.
func (m *Memo[K, V]) Forget(keys ...K) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	for _, k := range keys {
		delete(m.m, k)
	}
}
