package paybound

import "context"

// MandateRequestStore is the storage of agents' mandate requests
// (internal/mandatereqs).
type MandateRequestStore interface {
	// MandateRequest returns request id.
	MandateRequest(ctx context.Context, id string) (*MandateRequest, error)
	// ListMandateRequests lists requests, newest first.
	ListMandateRequests(ctx context.Context, f MandateRequestFilter) (_ []MandateRequest, hasMore bool, _ error)
}

// MandateRequestPart is the mandate requests' share of a Batch. A store
// writes MandateRequests in order, each a new request (Version 1) or its
// decision (Version 2), applied only to a request still at Version 1: a
// shared store refuses the batch with ErrStoreConflict otherwise (another
// process decided it meanwhile), so a request is decided once.
type MandateRequestPart struct {
	MandateRequests []MandateRequest
}

// Empty reports whether p writes nothing.
func (p *MandateRequestPart) Empty() bool { return len(p.MandateRequests) == 0 }
