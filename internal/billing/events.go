package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Event is one usage event as a provider sends it.
type Event struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	// Meter is pb.MeterLLMTokens (the default) or a generic meter's ID.
	Meter string `json:"meter,omitempty"`
	// Timestamp is when the usage happened (default: when it arrives).
	Timestamp *time.Time `json:"timestamp,omitempty"`
	// Reservation, when set, is settled by this event.
	Reservation string `json:"reservation,omitempty"`
	// Model and Usage are the LLM meter's: tokens per token type.
	Model string           `json:"model,omitempty"`
	Usage map[string]int64 `json:"usage,omitempty"`
	// Data is a generic meter's event body, read at its value_path and
	// group_by paths.
	Data map[string]any `json:"data,omitempty"`
}

// EventResult is what became of one event of a batch.
type EventResult struct {
	ID string `json:"id"`
	// Status is accepted, duplicate (its ID was seen: counted, not
	// charged) or refused (Error says why; nothing was stored).
	Status      string    `json:"status"`
	Charged     int64     `json:"charged"`
	Overdraft   int64     `json:"overdraft,omitempty"`
	Uncollected int64     `json:"uncollected,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	Error       *pb.Error `json:"error,omitempty"`
}

// IngestResult answers a batch: each event's fate, in order, and counts.
type IngestResult struct {
	Object     string        `json:"object"` // "billing_event_batch"
	Accepted   int           `json:"accepted"`
	Duplicates int           `json:"duplicates"`
	Refused    int           `json:"refused"`
	Data       []EventResult `json:"data"`
}

// Event statuses.
const (
	EventAccepted  = "accepted"
	EventDuplicate = "duplicate"
	EventRefused   = "refused"
)

// Ingest (provider) records a batch of at most pb.MaxEventBatch usage
// events and charges them, in one ledger operation: the answer comes once
// the batch is durable. An event whose ID the provider sent before (in this
// batch or any earlier one) is a duplicate: counted, never charged again.
// An event older than the late window is refused (ErrEventTooLate); one
// within it is recorded at its own time, so it counts in its own period
// and is priced by the price version effective then. Each event is charged
// on its own (one event's refusal leaves the others).
func (s *Service) Ingest(ctx context.Context, caller pb.Principal, events []Event) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if len(events) == 0 || len(events) > pb.MaxEventBatch {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "events", "events must hold from 1 to %d usage events", pb.MaxEventBatch)}
	}
	now := s.cfg.Clock.Now()
	arrival := now.UTC().Truncate(time.Millisecond) // the events' default time, shared
	res := &IngestResult{Object: "billing_event_batch", Data: make([]EventResult, len(events))}
	for i := range events {
		res.Data[i].ID = events[i].ID
		if err := s.checkEvent(&events[i], i, now, &arrival); err != nil {
			res.Data[i].Status, res.Data[i].Error = EventRefused, asError(err)
		}
	}
	var ids, meters, rsvs []string
	for i := range events {
		if res.Data[i].Status == EventRefused {
			continue
		}
		ids = append(ids, events[i].ID)
		if !slices.Contains(meters, events[i].Meter) {
			meters = append(meters, events[i].Meter)
		}
		if events[i].Reservation != "" {
			rsvs = append(rsvs, events[i].Reservation)
		}
	}
	pr, err := s.prereadFor(ctx, caller.ID, meters, ids, rsvs)
	if err != nil {
		return service.Result{Err: err}
	}
	var wrote []pb.BillingObject
	r := s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		// Each run starts afresh: a batch recomputed after a conflict, from
		// reads made inside (preread).
		mark := len(ledger.Added(tx, objects))
		defer func() { wrote = written(tx, mark) }()
		out := &IngestResult{Object: res.Object, Data: slices.Clone(res.Data)}
		c, err := s.newIngestCache(tx, pr, caller.ID, ids)
		pr = nil
		if err != nil {
			return nil, err
		}
		for i := range events {
			r := &out.Data[i]
			if r.Status == EventRefused {
				continue
			}
			mark := len(c.undo)
			err := tx.Atomic(func() error { return s.ingest(tx, c, caller.ID, &events[i], r) })
			if err != nil && c.pre != nil && staleReservation(err) && c.pre.reservations[events[i].Reservation] != nil {
				// The reservation changed since it was read: read it now.
				c.rollback(mark)
				delete(c.pre.reservations, events[i].Reservation)
				err = tx.Atomic(func() error { return s.ingest(tx, c, caller.ID, &events[i], r) })
			}
			if err != nil {
				c.rollback(mark)
				if pb.ErrorCode(err) == pb.ErrInternal {
					return nil, err // the store or the ledger: fail the batch
				}
				*r = EventResult{ID: r.ID, Status: EventRefused, Error: asError(err)}
			}
		}
		if err := tx.Atomic(func() error { return s.flush(tx, c) }); err != nil {
			return nil, err
		}
		for _, r := range out.Data {
			switch r.Status {
			case EventAccepted:
				out.Accepted++
			case EventDuplicate:
				out.Duplicates++
			default:
				out.Refused++
			}
		}
		return out, nil
	})
	if r.Err == nil {
		s.objs.confirm(wrote)
	}
	return r
}

func asError(err error) *pb.Error {
	var e *pb.Error
	if errors.As(err, &e) {
		return e
	}
	return &pb.Error{Code: pb.ErrorCode(err), Message: err.Error()}
}

// checkEvent checks e on its own (i is its index, for the error's param),
// and fills its defaults: arrival (shared, read only) is its time when it
// has none.
func (s *Service) checkEvent(e *Event, i int, now time.Time, arrival *time.Time) error {
	param := func(f string) string { return "events[" + strconv.Itoa(i) + "]." + f }
	if !isName(e.ID) {
		return checkName(e.ID, param("id"))
	}
	if !pb.HasPrefix(e.Customer, pb.PrefixUser) && !pb.HasPrefix(e.Customer, pb.PrefixAgent) {
		return pb.Errorf(pb.ErrParameterInvalid, param("customer"), "customer must be a user (usr_…) or an agent (agt_…) ID")
	}
	if e.Meter == "" {
		e.Meter = pb.MeterLLMTokens
	}
	if e.Timestamp == nil {
		e.Timestamp = arrival
	} else {
		*e.Timestamp = e.Timestamp.UTC().Truncate(time.Millisecond) // its own, decoded
	}
	t := *e.Timestamp
	switch {
	case t.After(now.Add(maxFutureSkew)):
		return pb.Errorf(pb.ErrParameterInvalid, param("timestamp"), "timestamp %s is in the future", t.Format(time.RFC3339))
	case t.Before(now.Add(-s.cfg.LateWindow)):
		return pb.Errorf(pb.ErrEventTooLate, param("timestamp"), "event %s happened at %s, before the late window of %v: it can no longer be billed", e.ID, t.Format(time.RFC3339), s.cfg.LateWindow)
	}
	if e.Reservation != "" && !pb.HasPrefix(e.Reservation, pb.PrefixReservation) {
		return pb.Errorf(pb.ErrParameterInvalid, param("reservation"), "reservation must be a reservation ID (rsv_…)")
	}
	if e.Meter != pb.MeterLLMTokens {
		if e.Model != "" || e.Usage != nil {
			return pb.Errorf(pb.ErrParameterInvalid, param("usage"), "model and usage are the llm_tokens meter's; a generic meter's event carries data")
		}
		return nil
	}
	if e.Data != nil {
		return pb.Errorf(pb.ErrParameterInvalid, param("data"), "the llm_tokens meter's events carry model and usage, not data")
	}
	if !isName(e.Model) {
		return checkName(e.Model, param("model"))
	}
	if strings.Contains(e.Model, "*") {
		return pb.Errorf(pb.ErrParameterInvalid, param("model"), "model is a model's name")
	}
	if len(e.Usage) == 0 {
		return pb.Errorf(pb.ErrParameterMissing, param("usage"), "usage is required: tokens per token type, such as {\"input\": 1200, \"output\": 300}")
	}
	for k, v := range e.Usage {
		if !slices.Contains(pb.TokenTypes, k) {
			return pb.Errorf(pb.ErrParameterInvalid, param("usage."+k), "%q is not a token type: input, cached_input, cache_write, output or reasoning", k)
		}
		if v < 0 || v > pb.MaxEventQuantity {
			return pb.Errorf(pb.ErrParameterInvalid, param("usage."+k), "a token count must be from 0 to %d", int64(pb.MaxEventQuantity))
		}
	}
	return nil
}

// ingestCache holds what one ingest operation reads once, and what it
// writes once, at its end (flush): the accruals and grants its events
// changed, and the credit they took outside reservations, as one transfer
// per credit account. Every change records its undo, so that an event
// that fails takes its own back, as tx.Atomic takes back its writes.
type ingestCache struct {
	// pre is what was read before the operation (nil on a recomputed
	// batch).
	pre    *preread
	prices []pb.Price
	loaded bool
	meters map[string]*pb.Meter
	// seen are the provider's event IDs stored, or taken by this batch.
	seen     map[string]bool
	accruals map[string]*accrualState
	// counts are the graduated prices' monthly counters read or started.
	counts map[string]*countState
	grants map[string]*grantSet
	// terms are the customers' terms read (nil: none), written at the end
	// when dirty.
	terms  map[string]*termsState
	debits map[string]*debit
	// before is each credit account's available balance when the
	// operation first touched it, for the auto-recharge's crossings.
	before map[*pb.Account]balanceBefore
	order  []string // the keys of accruals, grants and debits, in the order first used
	undo   []func()
	// rows is how many events the operation may store, for which the
	// batch's lists get room at the first (grown set then).
	rows  int
	grown bool
	// lines is the chunk newLine takes lines from.
	lines []line
	names map[[2]string]*custNames // by customer and currency (namesOf)
}

// newLine returns a new line from c's chunk of them, which each event
// takes afresh (ingest): an event's lines live while it is charged (the
// batch keeps copies), so a few allocations serve an operation's lines.
func (c *ingestCache) newLine() *line {
	if len(c.lines) == cap(c.lines) {
		c.lines = make([]line, 0, 8)
	}
	c.lines = c.lines[:len(c.lines)+1]
	return &c.lines[len(c.lines)-1]
}

// custNames are the object and account names of a customer in a
// currency, which each event of the customer looks up.
type custNames struct{ accrual, terms, grants, credit string }

// namesOf returns customer's names in cur, built once an operation.
func (c *ingestCache) namesOf(provider, customer, cur string) *custNames {
	k := [2]string{customer, cur}
	if n, ok := c.names[k]; ok {
		return n
	}
	n := &custNames{accrual: pb.AccrualID(provider, customer, cur), terms: termsID(provider, customer, cur),
		grants: "grants:" + provider + ":" + customer + ":" + cur, credit: pb.BillingCreditOwner(provider, customer)}
	if c.names == nil {
		c.names = map[[2]string]*custNames{}
	}
	c.names[k] = n
	return n
}

// growBy returns part, which first makes room in the batch's list for n
// more rows: appended one by one, a thousand events' rows (large ones)
// would regrow the list several times, each copying it.
func growBy[T any](part func(*pb.Batch) *[]T, n int) func(*pb.Batch) *[]T {
	return func(b *pb.Batch) *[]T {
		l := part(b)
		*l = slices.Grow(*l, n)
		return l
	}
}

type termsState struct {
	t     *Terms // its Version is the one read
	dirty bool
}

type accrualState struct {
	acc   pb.Accrual // its Version is the one read
	dirty bool
}

// grantSet is a customer's grants in a currency with credit left, in the
// order they are drawn.
type grantSet struct {
	gs    []pb.Grant // each Version the one read
	dirty []bool
}

type balanceBefore struct {
	provider, customer string
	available          int64
}

// debit is what the operation's events took from a credit account outside
// their reservations.
type debit struct {
	credit   *pb.Account
	provider string
	amount   int64
	// overdraft: credit is customer's overdraft room, and what is taken
	// from it is recorded as debt.
	overdraft bool
	customer  string
}

// newIngestCache starts an ingest operation's cache: which of ids (the
// batch's events not refused) are stored already (as read before the
// operation, with pr) or written by this batch's earlier operations.
func (s *Service) newIngestCache(tx *ledger.Tx, pr *preread, provider string, ids []string) (*ingestCache, error) {
	c := &ingestCache{pre: pr, meters: map[string]*pb.Meter{}, accruals: map[string]*accrualState{}, grants: map[string]*grantSet{}, debits: map[string]*debit{},
		counts: map[string]*countState{},
		terms:  map[string]*termsState{},
		before: map[*pb.Account]balanceBefore{}}
	var seen map[string]bool
	if pr != nil && pr.seen != nil {
		seen = pr.seen
	} else {
		var err error
		if seen, err = s.st.UsageEventsSeen(tx.Context(), provider, ids); err != nil {
			return nil, err
		}
	}
	for _, ids := range [2][]pb.UsageEventID{ledger.InFlight(tx, eventIDs), ledger.Added(tx, eventIDs)} {
		for _, id := range ids {
			if id.ProviderID == provider {
				seen[id.EventID] = true
			}
		}
	}
	c.seen = seen
	c.rows = len(ids)
	return c, nil
}

// rollback takes back every change made since the undo log had mark
// entries.
func (c *ingestCache) rollback(mark int) {
	for i := len(c.undo) - 1; i >= mark; i-- {
		c.undo[i]()
	}
	c.undo = c.undo[:mark]
}

// accrual returns the customer's accrual in cur, read once.
func (s *Service) accrual(tx *ledger.Tx, c *ingestCache, provider, customer, cur string) (*accrualState, error) {
	id := c.namesOf(provider, customer, cur).accrual
	if a, ok := c.accruals[id]; ok {
		return a, nil
	}
	a := &accrualState{}
	o, err := s.current(tx, id, &a.acc)
	switch {
	case pb.ErrorCode(err) == pb.ErrNotFound:
		a.acc = pb.Accrual{ID: id, ProviderID: provider, CustomerID: customer, Currency: cur}
	case err != nil:
		return nil, err
	default:
		a.acc.Version = o.Version
	}
	c.accruals[id] = a
	c.order = append(c.order, id)
	return a, nil
}

// termsOf returns the customer's terms in cur (t nil: none), read once.
func (s *Service) termsIn(tx *ledger.Tx, c *ingestCache, provider, customer, cur string) (*termsState, error) {
	id := c.namesOf(provider, customer, cur).terms
	if ts, ok := c.terms[id]; ok {
		return ts, nil
	}
	t, err := s.termsOf(tx, c.pre, provider, customer, cur)
	if err != nil {
		return nil, err
	}
	ts := &termsState{t: t}
	c.terms[id] = ts
	c.order = append(c.order, id)
	return ts, nil
}

// grantsOf returns the customer's grants in cur with credit left, read
// once, in draw order: lower priority first, then promotional before
// included before paid, then earliest expiry (none last), then oldest.
func (s *Service) grantsOf(tx *ledger.Tx, c *ingestCache, provider, customer, cur string) (*grantSet, error) {
	k := c.namesOf(provider, customer, cur).grants
	if g, ok := c.grants[k]; ok {
		return g, nil
	}
	gs, vs, err := listCurrent[pb.Grant](s, tx, provider, customer, kindGrant, pb.MaxCustomerGrants*10)
	if err != nil {
		return nil, err
	}
	set := &grantSet{}
	for i := range gs {
		if gs[i].Currency == cur && gs[i].Remaining > 0 {
			gs[i].Version = vs[i]
			set.gs = append(set.gs, gs[i])
		}
	}
	slices.SortStableFunc(set.gs, func(a, b pb.Grant) int { return drawOrder(&a, &b) })
	set.dirty = make([]bool, len(set.gs))
	c.grants[k] = set
	c.order = append(c.order, k)
	return set, nil
}

// drawDown takes amt from set's grants, in order.
func (c *ingestCache) drawDown(set *grantSet, amt int64) error {
	for i := range set.gs {
		if amt == 0 {
			return nil
		}
		g := &set.gs[i]
		take := min(amt, g.Remaining)
		if take == 0 {
			continue
		}
		old, wasDirty := g.Remaining, set.dirty[i]
		c.undo = append(c.undo, func() { g.Remaining, set.dirty[i] = old, wasDirty })
		g.Remaining -= take
		set.dirty[i] = true
		amt -= take
	}
	if amt > 0 {
		// The grants' remaining sums to the credit account's posted
		// balance: a shortfall is a broken invariant.
		return fmt.Errorf("billing: the grants lack %d of the credit account's balance", amt)
	}
	return nil
}

// take records amt taken from credit (or an overdraft room) outside a
// reservation; overdraft says credit is customer's overdraft room.
func (c *ingestCache) take(credit *pb.Account, provider, customer string, overdraft bool, amt int64) {
	k := "debit:" + credit.Owner + ":" + credit.Currency
	d, ok := c.debits[k]
	if !ok {
		d = &debit{credit: credit, provider: provider, customer: customer, overdraft: overdraft}
		c.debits[k] = d
		c.order = append(c.order, k)
	}
	d.amount += amt
	c.undo = append(c.undo, func() { d.amount -= amt })
}

// pending is what the operation took from credit so far, not yet
// transferred.
func (c *ingestCache) pending(credit *pb.Account) int64 {
	if d, ok := c.debits["debit:"+credit.Owner+":"+credit.Currency]; ok {
		return d.amount
	}
	return 0
}

// flush writes what the operation's events changed: a transfer per credit
// account of what they took outside reservations, and each accrual and
// grant changed, once.
func (s *Service) flush(tx *ledger.Tx, c *ingestCache) error {
	for _, k := range c.order {
		switch {
		case c.debits[k] != nil:
			d := c.debits[k]
			if d.amount == 0 {
				continue
			}
			usage, err := tx.EnsureAccount(pb.BillingUsageOwner(d.provider), d.credit.Currency, 0)
			if err != nil {
				return err
			}
			if _, err := tx.Transfer(d.credit, usage, d.amount, "billing usage"); err != nil {
				return fmt.Errorf("billing: couldn't take %d of credit the events used: %w", d.amount, err)
			}
			if d.overdraft {
				if err := recordDebt(tx, d.provider, d.customer, d.credit.Currency, d.amount); err != nil {
					return err
				}
			}
		case c.accruals[k] != nil:
			a := c.accruals[k]
			if !a.dirty {
				continue
			}
			a.acc.Version++
			if err := s.put(tx, kindAccrual, a.acc.ID, a.acc.ProviderID, a.acc.CustomerID, a.acc.Version, tx.Now().Truncate(time.Second), nil, a.acc); err != nil {
				return err
			}
		case c.counts[k] != nil:
			n := c.counts[k]
			if !n.dirty {
				continue
			}
			n.n.Version++
			if err := s.put(tx, kindTierCount, n.n.ID, n.n.ProviderID, n.n.CustomerID, n.n.Version, tx.Now().Truncate(time.Second), nil, n.n); err != nil {
				return err
			}
		case c.terms[k] != nil:
			ts := c.terms[k]
			if ts.dirty {
				if err := s.putTerms(tx, ts.t); err != nil {
					return err
				}
			}
		case c.grants[k] != nil:
			set := c.grants[k]
			for i := range set.gs {
				if !set.dirty[i] {
					continue
				}
				g := &set.gs[i]
				g.Version++
				var due *time.Time
				switch {
				case g.Status == statusActive && g.ExpiresAt != nil:
					due = g.ExpiresAt
				case g.Status != statusActive && g.Remaining > 0:
					d := tx.Now().Add(time.Minute).Truncate(time.Second)
					due = &d
				}
				if err := s.put(tx, kindGrant, g.ID, g.ProviderID, g.CustomerID, g.Version, g.CreatedAt, due, g); err != nil {
					return err
				}
			}
		}
	}
	for credit, b := range c.before {
		if err := s.crossed(tx, c.pre, b.provider, b.customer, credit.Currency, b.available, available(credit)); err != nil {
			return err
		}
	}
	return nil
}

// line is one priced line of an event before it is charged.
type line struct {
	pb.UsageLine
	nanos    int64
	currency string
	// graduated is the line's price when it has tiers (the line is split
	// by tier before it is charged).
	graduated *pb.Price
}

// ingest records and charges event e in tx, filling r.
func (s *Service) ingest(tx *ledger.Tx, c *ingestCache, provider string, e *Event, r *EventResult) error {
	if c.seen[e.ID] {
		r.Status = EventDuplicate
		return nil
	}
	c.lines = c.lines[:0] // the last event's lines are copied into the batch
	var err error
	if !c.loaded {
		if c.pre != nil {
			c.prices, err = c.pre.pricesIn(tx, provider)
		} else {
			c.prices, _, err = listCurrent[pb.Price](s, tx, provider, "", kindPrice, pb.MaxProviderPrices)
		}
		if err != nil {
			return err
		}
		c.loaded = true
	}
	m, ok := c.meters[e.Meter]
	if !ok {
		if m, err = c.pre.meter(s, tx, provider, e.Meter); err != nil {
			return err
		}
		c.meters[e.Meter] = m
	}
	lines, err := s.price(c, provider, m, e)
	if err != nil {
		return err
	}
	if lines, err = s.graduate(tx, c, provider, e, lines); err != nil {
		return err
	}
	var rsv *pb.Reservation
	if e.Reservation != "" {
		if rsv, err = c.pre.reservation(s, tx, provider, e.Reservation); err != nil {
			return err
		}
		if rsv.CustomerID != e.Customer {
			return pb.Errorf(pb.ErrParameterInvalid, "reservation", "reservation %s is not customer %s's", rsv.ID, e.Customer)
		}
	}
	// Charge per currency (a provider may price token types in several).
	var currencies []string
	for _, l := range lines {
		if !slices.Contains(currencies, l.currency) {
			currencies = append(currencies, l.currency)
		}
	}
	for _, cur := range currencies {
		if err := s.charge(tx, c, provider, e, rsv, cur, lines); err != nil {
			return err
		}
	}
	if rsv != nil && rsv.Status == statusActive {
		// Priced in another currency than it held: release it whole.
		if err := s.end(tx, rsv, statusSettled); err != nil {
			return err
		}
	}
	r.Status = EventAccepted
	idsPart, linesPart := eventIDs, usageLines
	if !c.grown {
		c.grown = true
		idsPart, linesPart = growBy(eventIDs, c.rows), growBy(usageLines, c.rows*len(lines))
	}
	ledger.Add(tx, idsPart, pb.UsageEventID{ProviderID: provider, EventID: e.ID, SeenAt: tx.Now().UTC().Truncate(time.Millisecond)})
	c.seen[e.ID] = true
	c.undo = append(c.undo, func() { delete(c.seen, e.ID) })
	for _, l := range lines {
		r.Charged += l.Charged
		r.Overdraft += l.Overdraft
		r.Uncollected += l.Uncollected
		r.Currency = l.currency
		l.CreatedAt = tx.Now().Truncate(time.Second) // the arrival: part of the line's key
		ledger.Add(tx, linesPart, l.UsageLine)
		linesPart = usageLines
	}
	return nil
}

// price turns e into priced lines: a line per token type with tokens (the
// LLM meter), or the one value of a generic meter.
func (s *Service) price(c *ingestCache, provider string, m *pb.Meter, e *Event) ([]*line, error) {
	ps := c.prices
	base := pb.UsageLine{ProviderID: provider, EventID: e.ID, CustomerID: e.Customer, Meter: e.Meter, Time: *e.Timestamp,
		Model: e.Model, ReservationID: e.Reservation}
	out := make([]*line, 0, max(1, len(e.Usage)))
	add := func(l pb.UsageLine, model, tokenType string) error {
		p := pickPrice(ps, e.Meter, model, tokenType, *e.Timestamp)
		if p == nil {
			what := e.Meter
			if m == nil {
				what = "model " + model + ", " + tokenType + " tokens"
			}
			return pb.Errorf(pb.ErrNoPrice, "", "no price applies to %s at %s: create one (POST /v1/billing/prices)", what, e.Timestamp.Format(time.RFC3339))
		}
		l.PriceID = p.ID
		var g *pb.Price
		if len(p.Tiers) > 0 {
			g = p
		}
		nl := c.newLine()
		*nl = line{UsageLine: l, nanos: p.UnitPriceNanos, currency: p.Currency, graduated: g}
		out = append(out, nl)
		return nil
	}
	if m == nil {
		for _, tt := range pb.TokenTypes {
			q, ok := e.Usage[tt]
			if !ok {
				continue
			}
			l := base
			l.Line, l.Quantity = tt, q
			if err := add(l, e.Model, tt); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	l := base
	l.Dims = map[string]string{}
	for _, g := range m.GroupBy {
		if v, ok := lookup(e.Data, g); ok {
			l.Dims[g] = v
		}
	}
	switch m.Aggregation {
	case "count":
		l.Quantity = 1
	default:
		v, ok := lookup(e.Data, m.ValuePath)
		if !ok {
			return nil, pb.Errorf(pb.ErrParameterMissing, "data."+m.ValuePath, "meter %s reads %s from the event's data; it is missing", m.ID, m.ValuePath)
		}
		if m.Aggregation == "unique_count" {
			l.Dims["_value"], l.Quantity = v, 1
			break
		}
		q, err := strconv.ParseInt(v, 10, 64)
		if err != nil || q < 0 || q > pb.MaxEventQuantity {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "data."+m.ValuePath, "meter %s's value must be an integer from 0 to %d", m.ID, int64(pb.MaxEventQuantity))
		}
		l.Quantity = q
	}
	if len(l.Dims) == 0 {
		l.Dims = nil
	}
	if err := add(l, "", ""); err != nil {
		return nil, err
	}
	if m.Aggregation != "sum" && m.Aggregation != "count" {
		// max, unique_count and latest are not sums of events: they are
		// recorded and reported, and charged by none.
		out[0].nanos, out[0].graduated = 0, nil
	}
	return out, nil
}

// lookup reads a dotted path of data as a string (numbers as integers).
func lookup(data map[string]any, path string) (string, bool) {
	var v any = data
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[k]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		if len(x) > pb.MaxBillingIDLength {
			return "", false
		}
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// charge charges e's lines in currency cur: the accrual turns their exact
// cost into whole minor units; rsv, when active and in cur, is posted for
// up to what it held and the rest released; what exceeds it is taken from
// the available credit (transferred with the operation's other events'
// at its end); what the credit can't cover is recorded as uncollected on
// the lines. The grants are drawn down by what was taken.
func (s *Service) charge(tx *ledger.Tx, c *ingestCache, provider string, e *Event, rsv *pb.Reservation, cur string, lines []*line) error {
	exp, _ := pb.CurrencyExponent(cur)
	acc, err := s.accrual(tx, c, provider, e.Customer, cur)
	if err != nil {
		return err
	}
	oldCarry, oldDirty := acc.acc.Carry, acc.dirty
	c.undo = append(c.undo, func() { acc.acc.Carry, acc.dirty = oldCarry, oldDirty })
	var total int64
	var mine []*line
	for _, l := range lines {
		if l.currency != cur {
			continue
		}
		var minor int64
		minor, acc.acc.Carry = Charge(acc.acc.Carry, l.Quantity, l.nanos, exp)
		l.Charged = minor
		total += minor
		mine = append(mine, l)
	}
	acc.dirty = true
	if total > pb.MaxAmount {
		return pb.Errorf(pb.ErrAmountTooLarge, "usage", "event %s costs more than %d minor units", e.ID, pb.MaxAmount)
	}
	if credit, err := tx.Account(c.namesOf(provider, e.Customer, cur).credit, cur); err == nil {
		if _, ok := c.before[credit]; !ok {
			c.before[credit] = balanceBefore{provider, e.Customer, available(credit)}
			c.undo = append(c.undo, func() { delete(c.before, credit) })
		}
	} else if pb.ErrorCode(err) != pb.ErrNotFound {
		return err
	}
	ts, err := s.termsIn(tx, c, provider, e.Customer, cur)
	if err != nil {
		return err
	}
	now := tx.Now()
	if ts.t.in(now) && ts.t.UsageCap > 0 && total > 0 {
		// The month's usage, whoever pays it, counts against the cap.
		t, old, wasDirty := ts.t, ts.t.PeriodUsed, ts.dirty
		c.undo = append(c.undo, func() { t.PeriodUsed, ts.dirty = old, wasDirty })
		t.PeriodUsed += total
		ts.dirty = true
	}
	// taken is what the credit paid; overdrawn what the overdraft did.
	taken, overdrawn := int64(0), int64(0)
	if rsv != nil && rsv.Status == statusActive && rsv.Currency == cur {
		if !now.Before(rsv.ExpiresAt) {
			// Expired: the sweep has not released it yet. Its holds can't be
			// posted; the usage is charged from the available credit.
			if err := s.end(tx, rsv, statusExpired); err != nil {
				return err
			}
		} else {
			// The credit's hold first, then the overdraft's; what neither
			// uses is released.
			postC := min(total, rsv.Amount-rsv.Overdraft)
			postO := min(total-postC, rsv.Overdraft)
			for _, h := range []struct{ id, amt int64 }{{rsv.HoldID, postC}, {rsv.OverdraftHoldID, postO}} {
				switch {
				case h.id == 0:
				case h.amt > 0:
					if _, err := tx.Post(h.id, h.amt, e.ID); err != nil {
						return err
					}
				default:
					if _, err := tx.Void(h.id, e.ID); err != nil {
						return err
					}
				}
			}
			if postO > 0 {
				if err := recordDebt(tx, provider, e.Customer, cur, postO); err != nil {
					return err
				}
			}
			taken, overdrawn = postC, postO
			rsv.Status, rsv.Settled, rsv.EventID = statusSettled, postC+postO, e.ID
			rsv.Version++
			if err := s.putReservation(tx, rsv); err != nil {
				return err
			}
		}
	}
	if rest := total - taken - overdrawn; rest > 0 {
		credit, err := tx.Account(c.namesOf(provider, e.Customer, cur).credit, cur)
		switch {
		case pb.ErrorCode(err) == pb.ErrNotFound:
		case err != nil:
			return err
		default:
			pending := c.pending(credit)
			if ok, err := tx.HasFunds(credit, pending+rest); err != nil {
				return err
			} else if !ok {
				rest = max(available(credit)-pending, 0)
			}
			if rest > 0 {
				c.take(credit, provider, e.Customer, false, rest)
				taken += rest
			}
		}
	}
	if rest := total - taken - overdrawn; rest > 0 && ts.t.allows(now) {
		// Beyond the credit, under terms that allow it: the overdraft
		// room, as far as it goes (recorded as debt at the end, flush).
		od, err := room(tx, provider, e.Customer, cur)
		if err != nil {
			return err
		}
		if rest = min(rest, headroom(od)-c.pending(od)); rest > 0 {
			c.take(od, provider, e.Customer, true, rest)
			overdrawn += rest
		}
	}
	if taken > 0 {
		set, err := s.grantsOf(tx, c, provider, e.Customer, cur)
		if err != nil {
			return err
		}
		if err := c.drawDown(set, taken); err != nil {
			return err
		}
	}
	// What the credit paid covers the lines in order, then what the
	// overdraft did; the rest is uncollected.
	leftC, leftO := taken, overdrawn
	for _, l := range mine {
		got := min(l.Charged, leftC)
		leftC -= got
		od := min(l.Charged-got, leftO)
		leftO -= od
		l.Uncollected, l.Overdraft, l.Charged = l.Charged-got-od, od, got
	}
	return nil
}
