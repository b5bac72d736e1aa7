package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// The ledger writer is one goroutine: every store read an operation makes
// inside it stalls every other operation of every capability. So the hot
// path (Reserve, Ingest) reads before its operation, on the request's own
// goroutine, what a read made then decides exactly as one made inside:
//
//   - prices and generic meters, which are only ever added, never changed:
//     a read made after the request arrived holds every one acknowledged
//     before it; one added since is concurrent with the request, which may
//     then be ordered either side of it;
//   - the IDs of the provider's auto-recharges and terms (terms.go), for
//     the same reason (one is never deleted): a customer without one skips
//     the in-writer read of it, and a customer with one still reads it
//     inside, current;
//   - which event IDs are stored: an ID stored is never forgotten within
//     the window; one stored since is caught as before (by this batch's
//     rows, or by the store's key, which refuses the batch);
//   - a reservation an event settles: it can change after the read (a
//     release, the sweep), which the ledger then tells: its hold is no
//     longer open (ErrHoldResolved), and the event is charged again from
//     a read made inside. With objCache on, the reservation its Reserve
//     wrote is taken from there instead of the store, on the same terms.
//
// Inside, the operation adds what earlier operations of its own batch
// wrote (ledger.Added), as the reads inside did. A batch a shared store
// refused is recomputed from reads made inside (preread is dropped), so a
// retry sees what the other process wrote.
type preread struct {
	prices []pb.Price
	meters map[string]*pb.Meter
	// autoRecharge holds the IDs of the provider's auto-recharges; with
	// autoAll set there were too many to list, and each is read inside.
	autoRecharge map[string]bool
	autoAll      bool
	// terms holds the IDs of the provider's customers' terms (plans'
	// overage and caps), as autoRecharge; with termsAll set, each is read
	// inside.
	terms        map[string]bool
	termsAll     bool
	seen         map[string]bool
	reservations map[string]*pb.BillingObject
}

// known is what a process that is its store's only writer (SQLite) keeps
// of each provider's prices and auto-recharge IDs, so that the hot path
// reads them at all only after they changed: they change only through this
// process's CreatePrice and SetAutoRecharge, which drop the provider's
// entry once their operation committed and before they answer. With a
// shared store (PostgreSQL), another process's change can't drop it: known
// is off, and each request reads.
type known struct {
	on        bool
	providers service.Memo[string, *providerKnown]
}

type providerKnown struct {
	prices   []pb.Price
	autos    map[string]bool
	autoAll  bool
	terms    map[string]bool
	termsAll bool
}

// maxKnownProviders bounds known; past it, it starts again empty.
const maxKnownProviders = 10_000

// changed drops what is known of provider: its prices or auto-recharges
// changed (or may have: the caller's operation failed).
func (k *known) changed(provider string) {
	if k.on {
		k.providers.Forget(provider)
	}
}

// providerKnown returns provider's prices and auto-recharge IDs: as known,
// or read now (and kept, with known on).
func (s *Service) providerKnown(ctx context.Context, provider string) (*providerKnown, error) {
	pk, gen, ok := s.known.providers.Get(provider)
	if ok {
		return pk, nil
	}
	pk = &providerKnown{}
	var err error
	if pk.prices, _, err = listCurrent[pb.Price](s, nil, provider, "", kindPrice, pb.MaxProviderPrices); err != nil {
		return nil, err
	}
	if pk.autos, pk.autoAll, err = s.objectIDs(ctx, provider, kindAutoRecharge); err != nil {
		return nil, err
	}
	if pk.terms, pk.termsAll, err = s.objectIDs(ctx, provider, kindTerms); err != nil {
		return nil, err
	}
	if s.known.on {
		s.known.providers.Keep(gen, pk, provider)
	}
	return pk, nil
}

// maxPrereadAutoRecharges bounds the auto-recharges (and terms) listed
// before an operation; past it, each is read inside.
const maxPrereadAutoRecharges = 1000

// objectIDs returns the IDs of provider's objects of kind, or all set when
// there are more than maxPrereadAutoRecharges.
func (s *Service) objectIDs(ctx context.Context, provider, kind string) (ids map[string]bool, all bool, err error) {
	os, err := s.st.BillingObjects(ctx, provider, "", kind, maxPrereadAutoRecharges)
	if err != nil {
		return nil, false, err
	}
	ids = make(map[string]bool, len(os))
	for _, o := range os {
		ids[o.ID] = true
	}
	return ids, len(os) > maxPrereadAutoRecharges, nil
}

// prereadFor reads what an operation of provider over meters (IDs), event
// IDs and reservations needs.
func (s *Service) prereadFor(ctx context.Context, provider string, meters, eventIDs, reservations []string) (*preread, error) {
	pr := &preread{meters: map[string]*pb.Meter{}, reservations: map[string]*pb.BillingObject{}}
	pk, err := s.providerKnown(ctx, provider)
	if err != nil {
		return nil, err
	}
	pr.prices, pr.autoRecharge, pr.autoAll = pk.prices, pk.autos, pk.autoAll
	pr.terms, pr.termsAll = pk.terms, pk.termsAll
	for _, id := range meters {
		if _, ok := pr.meters[id]; ok || id == pb.MeterLLMTokens {
			continue
		}
		o, err := s.st.BillingObject(ctx, id)
		switch {
		case pb.ErrorCode(err) == pb.ErrNotFound:
			continue // decided inside, as before
		case err != nil:
			return nil, err
		case o.Kind != kindMeter || o.ProviderID != provider:
			continue
		}
		var m pb.Meter
		if err := json.Unmarshal(o.Data, &m); err != nil {
			return nil, fmt.Errorf("billing object %s is unreadable: %w", o.ID, err)
		}
		pr.meters[id] = &m
	}
	if len(eventIDs) > 0 {
		if pr.seen, err = s.st.UsageEventsSeen(ctx, provider, eventIDs); err != nil {
			return nil, err
		}
	}
	for _, id := range reservations {
		if _, ok := pr.reservations[id]; ok {
			continue
		}
		if o, ok := s.objs.get(id); ok {
			pr.reservations[id] = o
			continue
		}
		o, err := s.st.BillingObject(ctx, id)
		switch {
		case pb.ErrorCode(err) == pb.ErrNotFound:
			continue // read inside: an earlier operation of the batch may write it
		case err != nil:
			return nil, err
		}
		pr.reservations[id] = o
	}
	return pr, nil
}

// pricesIn returns the prices read before, with those earlier operations of
// tx's batch added.
func (pr *preread) pricesIn(tx *ledger.Tx, provider string) ([]pb.Price, error) {
	out := pr.prices
	for _, o := range ledger.Added(tx, objects) {
		if o.Kind != kindPrice || o.ProviderID != provider {
			continue
		}
		var p pb.Price
		if err := json.Unmarshal(o.Data, &p); err != nil {
			return nil, fmt.Errorf("billing object %s is unreadable: %w", o.ID, err)
		}
		if len(out) == len(pr.prices) {
			out = append([]pb.Price(nil), pr.prices...)
		}
		out = append(out, p)
	}
	if len(out) > pb.MaxProviderPrices {
		return nil, tooMany(kindPrice, pb.MaxProviderPrices)
	}
	return out, nil
}

// meter returns meter id as s.meter does, from the read made before when
// it found it.
func (pr *preread) meter(s *Service, tx *ledger.Tx, provider, id string) (*pb.Meter, error) {
	if pr != nil {
		if m, ok := pr.meters[id]; ok {
			return m, nil
		}
	}
	return s.meter(tx, provider, id)
}

// mayAutoRecharge reports whether id may be an auto-recharge: false only
// when the read before listed them all and id was not among them.
func (pr *preread) mayAutoRecharge(id string) bool {
	return pr == nil || pr.autoAll || pr.autoRecharge[id]
}

// mayHaveTerms reports whether id may be terms: false only when the read
// before listed them all and id was not among them (terms, like
// auto-recharges, are never deleted).
func (pr *preread) mayHaveTerms(id string) bool {
	return pr == nil || pr.termsAll || pr.terms[id]
}

// reservation returns reservation id of provider as of this point in tx:
// as this batch wrote it, else as read before, else read now.
func (pr *preread) reservation(s *Service, tx *ledger.Tx, provider, id string) (*pb.Reservation, error) {
	var o *pb.BillingObject
	if pr != nil {
		o = pr.reservations[id]
	}
	if o == nil {
		return s.reservation(tx, provider, id)
	}
	if _, ok := latest(tx, id); ok {
		return s.reservation(tx, provider, id)
	}
	return decodeReservation(o, provider, id)
}

// decodeReservation decodes object o as reservation id of provider.
func decodeReservation(o *pb.BillingObject, provider, id string) (*pb.Reservation, error) {
	if o.Kind != kindReservation || o.ProviderID != provider {
		return nil, pb.Errorf(pb.ErrNotFound, "reservation", "no such reservation: %s", id)
	}
	var d reservationData
	if err := json.Unmarshal(o.Data, &d); err != nil {
		return nil, fmt.Errorf("reservation %s is unreadable: %w", id, err)
	}
	d.Reservation.HoldID, d.Reservation.OverdraftHoldID, d.Reservation.Version = d.Hold, d.OverdraftHold, o.Version
	return &d.Reservation, nil
}

// staleReservation reports whether err says a reservation read before the
// operation had been settled or released since (its hold is not open).
func staleReservation(err error) bool { return errors.Is(err, ledger.ErrHoldResolved) }
