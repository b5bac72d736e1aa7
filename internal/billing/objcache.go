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
type objCache struct {
	mu   sync.Mutex
	on   bool
	objs map[string]*cachedObj
}

type cachedObj struct {
	o         pb.BillingObject
	confirmed bool
}

// maxCachedObjects bounds objCache; past it, it starts again empty.
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
	c.objs[o.ID] = &cachedObj{o: o}
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
