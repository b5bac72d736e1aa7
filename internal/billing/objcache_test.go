package billing

import (
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// The cache serves an object only once the last write of it was
// confirmed: never a write that was not (undone, or whose batch failed),
// never an older one after a newer write, and nothing when off.
func TestObjCache(t *testing.T) {
	c := objCache{on: true, objs: map[string]*cachedObj{}}
	v1 := pb.BillingObject{ID: "acr_1", Version: 1, Data: []byte(`{"carry":1}`)}
	v2 := pb.BillingObject{ID: "acr_1", Version: 2, Data: []byte(`{"carry":2}`)}
	c.wrote(v1)
	if _, ok := c.get("acr_1"); ok {
		t.Fatal("a write not confirmed was served")
	}
	c.confirm([]pb.BillingObject{v1})
	if o, ok := c.get("acr_1"); !ok || o.Version != 1 {
		t.Fatalf("confirmed write: %v %v", o, ok)
	}
	c.wrote(v2) // undone, or its batch failed: never confirmed
	if _, ok := c.get("acr_1"); ok {
		t.Fatal("an older version was served after a newer write")
	}
	c.confirm([]pb.BillingObject{v1}) // a late confirmation of the older one
	if _, ok := c.get("acr_1"); ok {
		t.Fatal("a stale confirmation made an entry servable")
	}
	other := v2
	other.Data = []byte(`{"carry":3}`)
	c.confirm([]pb.BillingObject{other}) // same version, other content
	if _, ok := c.get("acr_1"); ok {
		t.Fatal("a confirmation of other content made an entry servable")
	}
	c.confirm([]pb.BillingObject{v2})
	if o, ok := c.get("acr_1"); !ok || o.Version != 2 {
		t.Fatalf("confirmed write: %v %v", o, ok)
	}
	off := objCache{objs: map[string]*cachedObj{}}
	off.wrote(v1)
	off.confirm([]pb.BillingObject{v1})
	if _, ok := off.get("acr_1"); ok {
		t.Fatal("a cache that is off served an object")
	}
}

// A customer's list of grants is dropped once a grant of theirs that it
// does not hold is written, and kept when a listed one is written again.
func TestObjCacheLists(t *testing.T) {
	c := objCache{on: true, objs: map[string]*cachedObj{}, lists: map[listKey]map[string]bool{}}
	k := listKey{"mch_1", "usr_1", kindGrant}
	c.list(k, map[string]bool{"grt_1": true})
	c.wrote(pb.BillingObject{ID: "grt_1", Kind: kindGrant, ProviderID: "mch_1", CustomerID: "usr_1", Version: 2})
	if _, ok := c.listed(k); !ok {
		t.Fatal("writing a listed grant dropped the list")
	}
	c.wrote(pb.BillingObject{ID: "grt_2", Kind: kindGrant, ProviderID: "mch_1", CustomerID: "usr_2", Version: 1})
	if _, ok := c.listed(k); !ok {
		t.Fatal("another customer's grant dropped the list")
	}
	c.wrote(pb.BillingObject{ID: "grt_3", Kind: kindGrant, ProviderID: "mch_1", CustomerID: "usr_1", Version: 1})
	if _, ok := c.listed(k); ok {
		t.Fatal("a new grant of the customer's left the list")
	}
}

// A reservation that ended is dropped: the hot path reads it no more.
func TestObjCacheDropsEndedReservations(t *testing.T) {
	c := objCache{on: true, objs: map[string]*cachedObj{}, lists: map[listKey]map[string]bool{}}
	due := time.Now()
	active := pb.BillingObject{ID: "rsv_1", Kind: kindReservation, Version: 1, Data: []byte(`{"status":"active"}`), DueAt: &due}
	c.wrote(active)
	c.confirm([]pb.BillingObject{active})
	if _, ok := c.get("rsv_1"); !ok {
		t.Fatal("an active reservation confirmed was not served")
	}
	c.wrote(pb.BillingObject{ID: "rsv_1", Kind: kindReservation, Version: 2, Data: []byte(`{"status":"settled"}`)})
	if _, ok := c.get("rsv_1"); ok || len(c.objs) != 0 {
		t.Fatal("a settled reservation was kept")
	}
}
