package billing

import (
	"bytes"
	"sync"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// objCache spares the hot path's store reads of objects it just wrote: a
// settlement's reservation (read before its operation) and the customer's
// accrual (read inside it, where a store read stalls the ledger writer).
// It is on only where this process is its store's one writer (SQLite), as
// known is: with a shared store, another process's write would not reach
// it, and each read goes to the store.
//
// Every object write (put, in the writer) records the object as pending;
// the request whose operation wrote it confirms it once its batch has
// committed (confirm), if it is still the last one written. A read
// (get) returns only a confirmed object, which is therefore both
// committed and the last version written by anyone: a write undone by its
// operation (tx.Atomic), one whose batch failed to commit, and one not yet
// confirmed (its batch may be committing, or its request was not one that
// confirms) all leave a pending entry, and the reader goes to the store.
// (Inside the writer, the batch being applied and the one committing are
// looked at first: latest.)
//
// It also keeps, for a settlement's draw on the grants, which grants each
// customer has (lists): the IDs a listing made inside the writer found
// (the store's, the batch's and the batch committing), until an object of
// the customer's of that kind with another ID is written (a new grant;
// objects are never deleted). The grants are then each read as above (a
// listed one that is found nowhere was written by a batch that failed,
// and is skipped).
type objCache struct {
	mu    sync.Mutex
	on    bool
	objs  map[string]*cachedObj
	lists map[listKey]map[string]bool
}

// listKey names a customer's objects of a kind with a provider.
type listKey struct{ provider, customer, kind string }

type cachedObj struct {
	o         pb.BillingObject
	confirmed bool
}

// maxCachedObjects bounds objCache (each object a few hundred bytes of
// JSON; a reservation is dropped once it ends); past it, it starts again
// empty.
const maxCachedObjects = 100_000

// wrote records o, just written by an operation, as pending.
func (c *objCache) wrote(o pb.BillingObject) {
	if !c.on {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.objs) >= maxCachedObjects {
		c.objs = map[string]*cachedObj{}
	}
	if o.Kind == kindReservation && o.DueAt == nil {
		// Settled, released or expired: the hot path reads it no more,
		// and a read of it goes to the store.
		delete(c.objs, o.ID)
	} else {
		c.objs[o.ID] = &cachedObj{o: o}
	}
	k := listKey{o.ProviderID, o.CustomerID, o.Kind}
	if ids, ok := c.lists[k]; ok && !ids[o.ID] {
		delete(c.lists, k)
	}
}

// listed returns the IDs of k's objects as a listing inside the writer
// last found them, unless one more was written since.
func (c *objCache) listed(k listKey) (map[string]bool, bool) {
	if !c.on {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, ok := c.lists[k]
	return ids, ok
}

// list keeps ids as k's objects: a listing made inside the writer (so
// that no write of one can come between it and this call).
func (c *objCache) list(k listKey, ids map[string]bool) {
	if !c.on {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lists) >= maxCachedObjects {
		c.lists = map[listKey]map[string]bool{}
	}
	c.lists[k] = ids
}

// confirm marks os, written by an operation whose batch committed, as
// committed: each one that is still the last written of its ID.
func (c *objCache) confirm(os []pb.BillingObject) {
	if !c.on || len(os) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range os {
		e := c.objs[os[i].ID]
		if e != nil && e.o.Version == os[i].Version && bytes.Equal(e.o.Data, os[i].Data) {
			e.confirmed = true
		}
	}
}

// get returns object id when the last write of it is confirmed.
func (c *objCache) get(id string) (*pb.BillingObject, bool) {
	if !c.on {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.objs[id]; e != nil && e.confirmed {
		o := e.o
		return &o, true
	}
	return nil, false
}

// written returns the objects tx's batch holds from the mark'th on: those
// an operation that took mark (len(ledger.Added(tx, objects))) at its
// start wrote and kept, to confirm once its batch committed.
func written(tx *ledger.Tx, mark int) []pb.BillingObject {
	return append([]pb.BillingObject(nil), ledger.Added(tx, objects)[mark:]...)
}
