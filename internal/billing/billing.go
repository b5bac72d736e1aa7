// Package billing is Token Pay: a provider (a merchant) meters its
// customers' usage (the built-in LLM token meter and generic meters),
// prices it per 1M units in exact decimals, grants them credit, and holds
// that credit on the hot path with the ledger's holds, so that concurrent
// requests can never spend more than there is: a reservation is a hold
// the ledger writer places against the credit account's available balance,
// in one process or across several sharing a PostgreSQL database; the
// usage event that names it posts what was used and releases the rest.
//
// Credit is money in the ledger (see the root's billing.go for the
// accounts). Usage is priced exactly (price.go) and the ledger is charged
// the whole minor units of each customer's running total, the fraction
// carried in an accrual, so amounts are rounded once.
package billing

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Core is what Token Pay needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// CreatePayment makes a payment (its Within runs in the same
	// operation): a recharge.
	CreatePayment(ctx context.Context, caller pb.Principal, idem *service.Idempotency, params service.CreatePaymentParams) service.Result
}

// Store is what Token Pay reads: its own rows, the ledger's accounts (the
// balances), and the customers it checks exist.
type Store interface {
	pb.BillingStore
	Account(ctx context.Context, owner, currency string) (*pb.Account, error)
	User(ctx context.Context, id string) (*pb.User, error)
	Agent(ctx context.Context, id string) (*pb.Agent, error)
}

// Config is the capability's configuration.
type Config struct {
	// LateWindow is how old a usage event may be when it arrives; an
	// older one is refused with ErrEventTooLate. Default and maximum:
	// pb.EventDedupWindow, so that a late event can never outlive the
	// memory of its ID.
	LateWindow time.Duration
	// SweepInterval is how often expired reservations and grants are
	// released (default 1 s).
	SweepInterval time.Duration
	// PruneInterval is how often the event IDs past the deduplication
	// window are forgotten (default 1 minute; PruneEventIDs).
	PruneInterval time.Duration
	Clock         pb.Clock
	Logger        *slog.Logger
}

// maxFutureSkew is how far in the future an event's timestamp may be.
const maxFutureSkew = 5 * time.Minute

// Service is Token Pay. Safe for concurrent use.
type Service struct {
	core Core
	st   Store
	cfg  Config
	stop chan struct{}
	wg   sync.WaitGroup
	// known keeps providers' prices and auto-recharge IDs (preread.go).
	known known
	// objs keeps the objects the hot path wrote (objcache.go).
	objs objCache
}

// New returns Token Pay over core and st.
func New(core Core, st Store, cfg Config) (*Service, error) {
	if cfg.LateWindow == 0 {
		cfg.LateWindow = pb.EventDedupWindow
	}
	if cfg.LateWindow < 0 || cfg.LateWindow > pb.EventDedupWindow {
		return nil, fmt.Errorf("billing: LateWindow %v must be positive and at most the deduplication window, %v", cfg.LateWindow, pb.EventDedupWindow)
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{core: core, st: st, cfg: cfg, stop: make(chan struct{})}
	_, shared := st.(pb.SharedStore)
	s.known = known{on: !shared, providers: service.Memo[string, *providerKnown]{Max: maxKnownProviders}}
	s.objs = objCache{on: !shared, objs: map[string]*cachedObj{}, lists: map[listKey]map[string]bool{}}
	return s, nil
}

// Start runs the sweep (expired reservations and grants) and the pruner
// (event IDs past the deduplication window) until Close.
func (s *Service) Start() {
	s.wg.Add(2)
	go service.Every(s.stop, &s.wg, s.cfg.Logger, s.cfg.SweepInterval, "billing sweep", func(ctx context.Context) error {
		_, err := s.Sweep(ctx)
		return err
	})
	go service.Every(s.stop, &s.wg, s.cfg.Logger, s.cfg.PruneInterval, "billing event ID pruner", func(ctx context.Context) error {
		_, err := s.PruneEventIDs(ctx)
		return err
	})
}

// dedupMargin is how much longer than pb.EventDedupWindow an event ID is
// remembered: more than the future skew an event's timestamp may have, so
// that an event whose ID was forgotten is always refused as too late when
// it comes again with its timestamp.
const dedupMargin = 24 * time.Hour

// Pruning's bounds: a batch of IDs forgotten by one statement, and the
// batches one run makes (the next run goes on).
const (
	pruneBatch   = 1000
	pruneBatches = 100
)

// PruneEventIDs forgets the usage event IDs seen more than
// pb.EventDedupWindow plus a margin ago, in batches of at most pruneBatch
// (each a short statement of its own, so the writers are never held up
// for long), at most pruneBatches of them, and returns how many it forgot.
//
// Forgetting is safe: an event is accepted only within the late window
// (at most pb.EventDedupWindow) of its timestamp, and seen no earlier than
// its timestamp less maxFutureSkew, so when its ID is forgotten, the same
// event sent again is refused as too late (billing_event_too_late) and is
// never charged twice. An event sent again without its timestamp (it
// defaults to its arrival) is then a new event: IDs are deduplicated for
// at least the window, not forever. The lines stay, for usage and
// invoices.
func (s *Service) PruneEventIDs(ctx context.Context) (int, error) {
	cutoff := s.cfg.Clock.Now().Add(-pb.EventDedupWindow - dedupMargin)
	total := 0
	for range pruneBatches {
		n, err := s.st.DeleteUsageEventIDs(ctx, cutoff, pruneBatch)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
	return total, nil
}

// Close stops the sweep.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Object kinds.
const (
	kindMeter       = "meter"
	kindPrice       = "price"
	kindGrant       = "grant"
	kindReservation = "reservation"
	kindAccrual     = "accrual"
)

// Statuses of grants and reservations.
const (
	statusActive   = "active"
	statusVoided   = "voided"
	statusExpired  = "expired"
	statusSettled  = "settled"
	statusReleased = "released"
)

func objects(b *pb.Batch) *[]pb.BillingObject { return &b.BillingObjects }
func usageLines(b *pb.Batch) *[]pb.UsageLine  { return &b.UsageLines }
func eventIDs(b *pb.Batch) *[]pb.UsageEventID { return &b.UsageEventIDs }

// put writes v as object id of kind in tx's batch, at version.
func (s *Service) put(tx *ledger.Tx, kind, id, provider, customer string, version int64, created time.Time, due *time.Time, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("couldn't encode billing object %s: %w", id, err)
	}
	o := pb.BillingObject{ID: id, Kind: kind, ProviderID: provider, CustomerID: customer,
		Version: version, Data: data, DueAt: due, CreatedAt: created}
	ledger.Add(tx, objects, o)
	s.objs.wrote(o)
	return nil
}

// current returns object id as of this point in tx's batch, decoded into
// v, and its version; ErrNotFound when there is none.
func (s *Service) current(tx *ledger.Tx, id string, v any) (*pb.BillingObject, error) {
	if o, ok := latest(tx, id); ok {
		return o, json.Unmarshal(o.Data, v)
	}
	if o, ok := s.objs.get(id); ok {
		return o, json.Unmarshal(o.Data, v)
	}
	o, err := s.st.BillingObject(tx.Context(), id)
	if err != nil {
		return nil, err
	}
	return o, json.Unmarshal(o.Data, v)
}

// latest returns object id as tx's batch last wrote it, else as the batch
// before it did while that one may still be committing (the store may not
// have it yet: ledger.InFlight); false when neither wrote it.
func latest(tx *ledger.Tx, id string) (*pb.BillingObject, bool) {
	o, ok := ledger.Latest(tx, objects, func(o *pb.BillingObject) string { return o.ID }, id)
	return &o, ok
}

// listCurrent returns provider's objects of kind (the customer's when
// set) as of this point in tx's batch, oldest first, decoded. It fails
// when there are more than limit.
func listCurrent[T any](s *Service, tx *ledger.Tx, provider, customer, kind string, limit int) ([]T, []int64, error) {
	stored, err := s.listObjects(tx, provider, customer, kind, limit)
	if err != nil {
		return nil, nil, err
	}
	out := make([]T, len(stored))
	versions := make([]int64, len(stored))
	for i, o := range stored {
		if err := json.Unmarshal(o.Data, &out[i]); err != nil {
			return nil, nil, fmt.Errorf("billing object %s is unreadable: %w", o.ID, err)
		}
		versions[i] = o.Version
	}
	return out, versions, nil
}

// listObjects returns listCurrent's objects, undecoded. Inside the writer
// (tx set), a customer's grants are listed from objCache once a listing
// there found them (then in no particular order: their draw order is
// total).
func (s *Service) listObjects(tx *ledger.Tx, provider, customer, kind string, limit int) ([]pb.BillingObject, error) {
	k := listKey{provider, customer, kind}
	cacheable := tx != nil && customer != "" && kind == kindGrant
	if cacheable {
		if ids, ok := s.objs.listed(k); ok {
			return s.listedObjects(tx, kind, ids, limit)
		}
	}
	var ctx context.Context = context.Background()
	if tx != nil {
		ctx = tx.Context()
	}
	stored, err := s.st.BillingObjects(ctx, provider, customer, kind, limit)
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for i, o := range stored {
		idx[o.ID] = i
	}
	if tx != nil {
		// The batch still committing, then this one: the latest wins.
		for _, o := range slices.Concat(ledger.InFlight(tx, objects), ledger.Added(tx, objects)) {
			if o.Kind != kind || o.ProviderID != provider || (customer != "" && o.CustomerID != customer) {
				continue
			}
			if i, ok := idx[o.ID]; ok {
				stored[i] = o
			} else {
				idx[o.ID] = len(stored)
				stored = append(stored, o)
			}
		}
	}
	if len(stored) > limit {
		return nil, tooMany(kind, limit)
	}
	if cacheable {
		ids := make(map[string]bool, len(idx))
		for id := range idx {
			ids[id] = true
		}
		s.objs.list(k, ids)
	}
	return stored, nil
}

// listedObjects reads the objects ids (objCache's list) as current does;
// one found nowhere was written by a batch that failed, and is skipped.
func (s *Service) listedObjects(tx *ledger.Tx, kind string, ids map[string]bool, limit int) ([]pb.BillingObject, error) {
	if len(ids) > limit {
		return nil, tooMany(kind, limit)
	}
	out := make([]pb.BillingObject, 0, len(ids))
	for id := range ids {
		if o, ok := latest(tx, id); ok {
			out = append(out, *o)
			continue
		}
		if o, ok := s.objs.get(id); ok {
			out = append(out, *o)
			continue
		}
		o, err := s.st.BillingObject(tx.Context(), id)
		switch {
		case pb.ErrorCode(err) == pb.ErrNotFound:
		case err != nil:
			return nil, err
		default:
			out = append(out, *o)
		}
	}
	return out, nil
}

// tooMany refuses a list of more than limit objects of kind.
func tooMany(kind string, limit int) error {
	return pb.Errorf(pb.ErrParameterInvalid, "", "more than %d %ss: the limit of one provider or customer", limit, kind)
}

// requireProvider refuses any caller but a merchant.
func requireProvider(caller pb.Principal) error {
	if caller.Role != pb.RoleMerchant {
		return pb.Errorf(pb.ErrForbidden, "", "only a provider (a merchant's key) can do this")
	}
	return nil
}

// checkCustomer checks that id names a user or an agent.
func (s *Service) checkCustomer(ctx context.Context, id string) error {
	var err error
	switch {
	case pb.HasPrefix(id, pb.PrefixUser):
		_, err = s.st.User(ctx, id)
	case pb.HasPrefix(id, pb.PrefixAgent):
		_, err = s.st.Agent(ctx, id)
	default:
		return pb.Errorf(pb.ErrParameterInvalid, "customer", "customer must be a user (usr_…) or an agent (agt_…) ID")
	}
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return pb.Errorf(pb.ErrNotFound, "customer", "no such customer: %s", id)
	}
	return err
}

// --- meters ---

// MeterParams is a new generic meter.
type MeterParams struct {
	EventType   string
	ValuePath   string
	Aggregation string
	GroupBy     []string
}

func checkName(v, param string) error {
	if v == "" {
		return pb.Errorf(pb.ErrParameterMissing, param, "%s is required", param)
	}
	if !isName(v) {
		return pb.Errorf(pb.ErrParameterInvalid, param, "%s must be at most %d letters, digits or ._-:/*", param, pb.MaxBillingIDLength)
	}
	return nil
}

// nameByte holds the bytes of names: letters, digits and ._-:/*.
var nameByte = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/*") {
		t[c] = true
	}
	return t
}()

// isName reports whether v is a name checkName accepts, without building
// the error's param. (strings.Trim with a cutset builds its set at each
// call: a thousand names a batch.)
func isName(v string) bool {
	if v == "" || len(v) > pb.MaxBillingIDLength {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !nameByte[v[i]] {
			return false
		}
	}
	return true
}

// CreateMeter (provider) defines a generic meter.
func (s *Service) CreateMeter(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in MeterParams) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if err := checkName(in.EventType, "event_type"); err != nil {
		return service.Result{Err: err}
	}
	if !slices.Contains(pb.Aggregations, in.Aggregation) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "aggregation", "aggregation must be sum, count, max, unique_count or latest")}
	}
	if in.Aggregation != "count" {
		if err := checkName(in.ValuePath, "value_path"); err != nil {
			return service.Result{Err: err}
		}
	} else if in.ValuePath != "" {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "value_path", "a count meter counts events: it takes no value_path")}
	}
	if len(in.GroupBy) > pb.MaxGroupBy {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "group_by", "group_by takes at most %d paths", pb.MaxGroupBy)}
	}
	for _, g := range in.GroupBy {
		if err := checkName(g, "group_by"); err != nil {
			return service.Result{Err: err}
		}
	}
	if in.GroupBy == nil {
		in.GroupBy = []string{}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		ms, _, err := listCurrent[pb.Meter](s, tx, caller.ID, "", kindMeter, pb.MaxProviderPrices-1)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.EventType == in.EventType {
				return nil, pb.Errorf(pb.ErrParameterInvalid, "event_type", "meter %s already meters event type %s", m.ID, m.EventType)
			}
		}
		now := tx.Now().Truncate(time.Second)
		m := pb.Meter{ID: pb.NewID(pb.PrefixMeter, tx.Now()), Object: "billing_meter", ProviderID: caller.ID, EventType: in.EventType,
			ValuePath: in.ValuePath, Aggregation: in.Aggregation, GroupBy: in.GroupBy, CreatedAt: now}
		return &m, s.put(tx, kindMeter, m.ID, caller.ID, "", 1, now, nil, m)
	})
}

// Meters lists the provider's generic meters, oldest first (the built-in
// llm_tokens meter is not listed).
func (s *Service) Meters(ctx context.Context, caller pb.Principal) ([]pb.Meter, error) {
	if err := requireProvider(caller); err != nil {
		return nil, err
	}
	ms, _, err := listCurrent[pb.Meter](s, nil, caller.ID, "", kindMeter, pb.MaxProviderPrices)
	return ms, err
}

// meter returns the provider's meter id (nil for the built-in one).
func (s *Service) meter(tx *ledger.Tx, provider, id string) (*pb.Meter, error) {
	if id == pb.MeterLLMTokens {
		return nil, nil
	}
	var m pb.Meter
	o, err := s.current(tx, id, &m)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && (o.Kind != kindMeter || o.ProviderID != provider)) {
		return nil, pb.Errorf(pb.ErrNotFound, "meter", "no such meter: %s (the built-in one is %s)", id, pb.MeterLLMTokens)
	}
	return &m, err
}

// --- prices ---

// PriceParams is a new price, or a new version of one.
type PriceParams struct {
	Meter     string
	Model     string
	TokenType string
	Currency  string
	UnitPrice string
	// Tiers, instead of UnitPrice, make the price graduated (pb.Price).
	Tiers         []TierParams
	EffectiveFrom time.Time // zero: now
}

// CreatePrice (provider) prices a meter's usage from EffectiveFrom on. A
// price with the same meter, model pattern, token type and currency as an
// earlier one is its next version: it takes over from its effective_from,
// and events before that keep the earlier version's price.
func (s *Service) CreatePrice(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in PriceParams) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if in.Meter == "" {
		in.Meter = pb.MeterLLMTokens
	}
	if in.Model == "" {
		in.Model = "*"
	}
	if err := checkName(in.Model, "model"); err != nil {
		return service.Result{Err: err}
	}
	if i := strings.IndexByte(in.Model, '*'); i >= 0 && i != len(in.Model)-1 {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "model", "model is a name, a prefix ending in * (gpt-4o*), or * alone")}
	}
	if in.TokenType != "" && (in.Meter != pb.MeterLLMTokens || !slices.Contains(pb.TokenTypes, in.TokenType)) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "token_type", "token_type is one of input, cached_input, cache_write, output, reasoning, for the llm_tokens meter only")}
	}
	if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	var tiers []pb.PriceTier
	var nanos int64
	var err error
	if in.Tiers != nil {
		if in.UnitPrice != "" {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "unit_price", "a graduated price gives each tier's unit_price in tiers, and no unit_price of its own")}
		}
		if len(in.Tiers) == 0 {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "tiers", "tiers, when given, holds from 1 to %d tiers", pb.MaxPriceTiers)}
		}
		if tiers, err = parseTiers(in.Tiers); err != nil {
			return service.Result{Err: err}
		}
		nanos = tiers[0].UnitPriceNanos
	} else if nanos, err = ParseUnitPrice(in.UnitPrice); err != nil {
		return service.Result{Err: err}
	}
	// Whatever became of it, what was known of the prices is dropped.
	defer s.known.changed(caller.ID)
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		if _, err := s.meter(tx, caller.ID, in.Meter); err != nil {
			return nil, err
		}
		ps, _, err := listCurrent[pb.Price](s, tx, caller.ID, "", kindPrice, pb.MaxProviderPrices-1)
		if err != nil {
			return nil, err
		}
		from := in.EffectiveFrom
		if from.IsZero() {
			from = tx.Now()
		}
		from = from.UTC().Truncate(time.Millisecond)
		version := int64(1)
		for _, p := range ps {
			if p.Meter == in.Meter && p.Model == in.Model && p.TokenType == in.TokenType && p.Currency == in.Currency {
				version++
				if !from.After(p.EffectiveFrom) {
					return nil, pb.Errorf(pb.ErrParameterInvalid, "effective_from", "version %d of this price is effective from %s: a new version must start later", p.Version, p.EffectiveFrom.Format(time.RFC3339Nano))
				}
			}
		}
		p := pb.Price{ID: pb.NewID(pb.PrefixPrice, tx.Now()), Object: "billing_price", ProviderID: caller.ID, Meter: in.Meter,
			Model: in.Model, TokenType: in.TokenType, Currency: in.Currency, UnitPrice: FormatNanos(nanos), UnitPriceNanos: nanos,
			Tiers: tiers, Version: version, EffectiveFrom: from, CreatedAt: tx.Now().Truncate(time.Second)}
		return &p, s.put(tx, kindPrice, p.ID, caller.ID, "", 1, p.CreatedAt, nil, p)
	})
}

// Prices lists the provider's prices, every version, oldest first.
func (s *Service) Prices(ctx context.Context, caller pb.Principal) ([]pb.Price, error) {
	if err := requireProvider(caller); err != nil {
		return nil, err
	}
	ps, _, err := listCurrent[pb.Price](s, nil, caller.ID, "", kindPrice, pb.MaxProviderPrices)
	return ps, err
}

// --- grants ---

// GrantParams is new credit for a customer.
type GrantParams struct {
	Customer  string
	Amount    int64
	Currency  string
	Category  string
	Priority  int
	ExpiresAt time.Time // zero: never
}

// maxPriority bounds a grant's priority.
const maxPriority = 1000

// CreateGrant (provider) gives a customer credit: the amount moves from the
// provider's issuing account to the customer's credit account, at once.
func (s *Service) CreateGrant(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in GrantParams) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if err := pb.ValidateAmount(in.Amount, "amount"); err != nil {
		return service.Result{Err: err}
	}
	if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	if !slices.Contains([]string{pb.GrantPaid, pb.GrantPromotional, pb.GrantIncluded}, in.Category) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "category", "category must be paid, promotional or included")}
	}
	if in.Priority < 0 || in.Priority > maxPriority {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "priority", "priority must be from 0 to %d (lower is drawn first)", maxPriority)}
	}
	now := s.cfg.Clock.Now()
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(now) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "expires_at", "expires_at must be in the future")}
	}
	if err := s.checkCustomer(ctx, in.Customer); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		return s.grant(tx, caller.ID, in)
	})
}

// grant writes a grant of in inside tx.
func (s *Service) grant(tx *ledger.Tx, provider string, in GrantParams) (*pb.Grant, error) {
	g := pb.Grant{ID: pb.NewID(pb.PrefixGrant, tx.Now()), Object: "billing_grant", ProviderID: provider, CustomerID: in.Customer,
		Currency: in.Currency, Category: in.Category, Priority: in.Priority, Amount: in.Amount, Remaining: in.Amount,
		Status: statusActive, EffectiveAt: tx.Now().Truncate(time.Second), CreatedAt: tx.Now().Truncate(time.Second), Version: 1}
	var due *time.Time
	if !in.ExpiresAt.IsZero() {
		exp := in.ExpiresAt.UTC().Truncate(time.Second)
		g.ExpiresAt, due = &exp, &exp
	}
	err := tx.Atomic(func() error {
		issued, err := tx.EnsureAccount(pb.BillingIssuedOwner(provider), in.Currency, 0)
		if err != nil {
			return err
		}
		credit, err := tx.EnsureAccount(pb.BillingCreditOwner(provider, in.Customer), in.Currency, pb.DebitsMustNotExceedCredits)
		if err != nil {
			return err
		}
		if _, err := tx.Transfer(issued, credit, in.Amount, g.ID); err != nil {
			return err
		}
		return s.put(tx, kindGrant, g.ID, provider, in.Customer, 1, g.CreatedAt, due, g)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// VoidGrant (provider) voids a grant: what remains of it is moved back out
// of the customer's credit account (an entry in the ledger; the grant's
// history stays). What open reservations hold of it is withdrawn once they
// settle, by the sweep.
func (s *Service) VoidGrant(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(id, pb.PrefixGrant) {
		return service.Result{Err: noGrant(id)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		var g pb.Grant
		o, err := s.current(tx, id, &g)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && o.ProviderID != caller.ID) {
			return nil, noGrant(id)
		}
		if err != nil {
			return nil, err
		}
		g.Version = o.Version
		if g.Status != statusActive {
			return nil, pb.Errorf(pb.ErrGrantState, "", "grant %s is already %s", g.ID, g.Status)
		}
		now := tx.Now().Truncate(time.Second)
		g.Status, g.VoidedAt = statusVoided, &now
		return &g, s.withdraw(tx, &g)
	})
}

func noGrant(id string) error { return pb.Errorf(pb.ErrNotFound, "id", "no such grant: %s", id) }

// withdraw moves what remains of a voided or expired grant g out of the
// credit account, as much as is not held, and puts g; with some still
// held, g is due again in a minute.
func (s *Service) withdraw(tx *ledger.Tx, g *pb.Grant) error {
	return tx.Atomic(func() error {
		if err := takeBack(tx, g, g.Remaining); err != nil {
			return err
		}
		var due *time.Time
		if g.Remaining > 0 {
			d := tx.Now().Add(time.Minute).Truncate(time.Second)
			due = &d
		}
		g.Version++
		return s.put(tx, kindGrant, g.ID, g.ProviderID, g.CustomerID, g.Version, g.CreatedAt, due, g)
	})
}

// takeBack moves up to amt of grant g's remaining credit back to the
// issuing account, as much as is not held, and counts it withdrawn; the
// caller puts g.
func takeBack(tx *ledger.Tx, g *pb.Grant, amt int64) error {
	if amt <= 0 {
		return nil
	}
	credit, err := tx.Account(pb.BillingCreditOwner(g.ProviderID, g.CustomerID), g.Currency)
	if err != nil {
		return err
	}
	if amt = min(amt, g.Remaining, available(credit)); amt <= 0 {
		return nil
	}
	issued, err := tx.EnsureAccount(pb.BillingIssuedOwner(g.ProviderID), g.Currency, 0)
	if err != nil {
		return err
	}
	if _, err := tx.Transfer(credit, issued, amt, g.ID); err != nil {
		return err
	}
	g.Remaining -= amt
	g.Withdrawn += amt
	return nil
}

// available is what a credit account can still be debited.
func available(a *pb.Account) int64 { return a.CreditsPosted - a.DebitsPosted - a.DebitsPending }

// Grants lists a customer's grants with the provider, oldest first, to the
// provider or the customer (a user sees its agents' too).
func (s *Service) Grants(ctx context.Context, caller pb.Principal, provider, customer string) ([]pb.Grant, error) {
	provider, customer, err := s.readAccess(ctx, caller, provider, customer)
	if err != nil {
		return nil, err
	}
	gs, vs, err := listCurrent[pb.Grant](s, nil, provider, customer, kindGrant, pb.MaxCustomerGrants*10)
	for i := range gs {
		gs[i].Version = vs[i]
	}
	return gs, err
}

// Me names the caller as a customer (GET /v1/billing/customers/me/…): how
// the metering gateway learns whose key a request carries.
const Me = "me"

// readAccess checks caller may read customer's billing with provider, and
// returns the provider and the customer: a merchant reads its own
// customers; a user reads its own and its agents' billing with the
// provider it names; customer Me is the calling user or agent.
func (s *Service) readAccess(ctx context.Context, caller pb.Principal, provider, customer string) (string, string, error) {
	if customer == Me && (caller.Role == pb.RoleUser || caller.Role == pb.RoleAgent) {
		customer = caller.ID
	}
	p, err := s.access(ctx, caller, provider, customer)
	return p, customer, err
}

func (s *Service) access(ctx context.Context, caller pb.Principal, provider, customer string) (string, error) {
	switch caller.Role {
	case pb.RoleMerchant:
		if provider != "" && provider != caller.ID {
			return "", pb.Errorf(pb.ErrForbidden, "provider", "a provider reads only its own customers")
		}
		return caller.ID, nil
	case pb.RoleUser, pb.RoleAgent:
		if !pb.HasPrefix(provider, pb.PrefixMerchant) {
			return "", pb.Errorf(pb.ErrParameterMissing, "provider", "provider is required: the merchant ID (mch_…) whose credit to read")
		}
		if customer == caller.ID {
			return provider, nil
		}
		if caller.Role == pb.RoleUser && pb.HasPrefix(customer, pb.PrefixAgent) {
			a, err := s.st.Agent(ctx, customer)
			if err == nil && a.UserID == caller.ID {
				return provider, nil
			}
		}
	case pb.RoleOperator:
		if !pb.HasPrefix(provider, pb.PrefixMerchant) {
			return "", pb.Errorf(pb.ErrParameterMissing, "provider", "provider is required: the merchant ID (mch_…)")
		}
		return provider, nil
	}
	return "", pb.Errorf(pb.ErrNotFound, "id", "no such customer: %s", customer)
}

var categoryRank = map[string]int{pb.GrantPromotional: 0, pb.GrantIncluded: 1, pb.GrantPaid: 2}

func drawOrder(a, b *pb.Grant) int {
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(categoryRank[a.Category], categoryRank[b.Category]); c != 0 {
		return c
	}
	switch {
	case a.ExpiresAt != nil && b.ExpiresAt == nil:
		return -1
	case a.ExpiresAt == nil && b.ExpiresAt != nil:
		return 1
	case a.ExpiresAt != nil:
		if c := a.ExpiresAt.Compare(*b.ExpiresAt); c != 0 {
			return c
		}
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// --- balance ---

// Balance is a customer's credit with a provider, per currency, as
// committed: it includes every acknowledged event and reservation.
type Balance struct {
	Object     string            `json:"object"` // "billing_balance"
	ProviderID string            `json:"provider_id"`
	CustomerID string            `json:"customer_id"`
	Balances   []CurrencyBalance `json:"balances"`
}

// CurrencyBalance is a customer's credit in one currency: Available to
// reserve or spend, Reserved by open reservations, and Granted, what the
// grants still hold (Available + Reserved).
//
// Owed is what the customer owes on its overdraft (usage its plan let
// through beyond the credit), and OverdraftReserved what open reservations
// hold of it; both are 0 for a customer who never overdrew.
type CurrencyBalance struct {
	Currency          string `json:"currency"`
	Available         int64  `json:"available"`
	Reserved          int64  `json:"reserved"`
	Granted           int64  `json:"granted"`
	Owed              int64  `json:"overdraft_owed"`
	OverdraftReserved int64  `json:"overdraft_reserved"`
}

// Balance returns customer's credit with provider.
func (s *Service) Balance(ctx context.Context, caller pb.Principal, provider, customer string) (*Balance, error) {
	provider, customer, err := s.readAccess(ctx, caller, provider, customer)
	if err != nil {
		return nil, err
	}
	gs, _, err := listCurrent[pb.Grant](s, nil, provider, customer, kindGrant, pb.MaxCustomerGrants*10)
	if err != nil {
		return nil, err
	}
	out := &Balance{Object: "billing_balance", ProviderID: provider, CustomerID: customer, Balances: []CurrencyBalance{}}
	var currencies []string
	for _, g := range gs {
		if !slices.Contains(currencies, g.Currency) {
			currencies = append(currencies, g.Currency)
		}
	}
	// A subscriber may have run on its overdraft without any grant.
	ts, _, err := listCurrent[Terms](s, nil, provider, customer, kindTerms, pb.MaxProviderPrices)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if !slices.Contains(currencies, t.Currency) {
			currencies = append(currencies, t.Currency)
		}
	}
	slices.Sort(currencies)
	for _, c := range currencies {
		a, err := s.st.Account(ctx, pb.BillingCreditOwner(provider, customer), c)
		if pb.ErrorCode(err) == pb.ErrNotFound {
			a, err = &pb.Account{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't read the credit of %s: %w", customer, err)
		}
		b := CurrencyBalance{Currency: c, Available: available(a), Reserved: a.DebitsPending, Granted: a.CreditsPosted - a.DebitsPosted}
		for owner, f := range map[string]func(*pb.Account){
			pb.BillingOverdraftOwner(provider, customer):     func(a *pb.Account) { b.Owed = owed(a) },
			pb.BillingOverdraftRoomOwner(provider, customer): func(a *pb.Account) { b.OverdraftReserved = a.DebitsPending },
		} {
			a, err := s.st.Account(ctx, owner, c)
			switch {
			case err == nil:
				f(a)
			case pb.ErrorCode(err) != pb.ErrNotFound:
				return nil, fmt.Errorf("couldn't read the overdraft of %s: %w", customer, err)
			}
		}
		out.Balances = append(out.Balances, b)
	}
	return out, nil
}

// --- reservations ---

// ReserveParams asks to hold credit: either Amount (minor units of
// Currency), or Estimate units of the meter priced at Model and TokenType
// (default "output" for the LLM meter) as of now.
type ReserveParams struct {
	Customer  string
	Meter     string
	Estimate  int64
	Model     string
	TokenType string
	Amount    int64
	Currency  string
	ExpiresIn time.Duration // zero: pb.DefaultReservationTTL
}

// ReserveResult answers a reservation: allowed with its ID, or not with
// the reason; Available is what the customer can still reserve.
type ReserveResult struct {
	Object        string    `json:"object"` // "billing_reservation_result"
	Allowed       bool      `json:"allowed"`
	ReservationID string    `json:"reservation_id,omitempty"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Available     int64     `json:"available"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	// Reason is why it was not allowed: no_credit (the customer never had
	// credit in the currency), insufficient_credit (its plan's overage is
	// block, or it has none), overdraft_cap (its plan allows overage, and
	// the credit with what the overdraft cap leaves is short) or plan_cap
	// (the month's usage and open reservations would pass the plan's
	// usage cap).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Reasons of a refused reservation.
const (
	ReasonNoCredit           = "no_credit"
	ReasonInsufficientCredit = "insufficient_credit"
	ReasonOverdraftCap       = "overdraft_cap"
	ReasonPlanCap            = "plan_cap"
)

// Reserve (provider) holds credit for usage about to happen: a hold on the
// customer's credit account, placed by the ledger writer against its
// available balance, so that concurrent reservations never hold more than
// there is. A refusal is an answer (Allowed false), not an error.
func (s *Service) Reserve(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in ReserveParams) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if in.Meter == "" {
		in.Meter = pb.MeterLLMTokens
	}
	if in.ExpiresIn == 0 {
		in.ExpiresIn = pb.DefaultReservationTTL
	}
	if in.ExpiresIn < time.Second || in.ExpiresIn > pb.MaxReservationTTL {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "expires_in", "expires_in must be from 1 to %d seconds", int(pb.MaxReservationTTL/time.Second))}
	}
	switch {
	case (in.Amount == 0) == (in.Estimate == 0):
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "estimate", "give either estimate (units of the meter) or amount with currency")}
	case in.Amount != 0:
		if err := pb.ValidateAmount(in.Amount, "amount"); err != nil {
			return service.Result{Err: err}
		}
		if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
			return service.Result{Err: err}
		}
	default:
		if in.Estimate < 0 || in.Estimate > pb.MaxEventQuantity {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "estimate", "estimate must be from 1 to %d units", int64(pb.MaxEventQuantity))}
		}
		if in.Meter == pb.MeterLLMTokens && in.TokenType == "" {
			in.TokenType = "output"
		}
	}
	if !pb.HasPrefix(in.Customer, pb.PrefixUser) && !pb.HasPrefix(in.Customer, pb.PrefixAgent) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "customer", "customer must be a user (usr_…) or an agent (agt_…) ID")}
	}
	pr, err := s.prereadFor(ctx, caller.ID, []string{in.Meter}, nil, nil)
	if err != nil {
		return service.Result{Err: err}
	}
	var wrote []pb.BillingObject
	r := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		// A batch recomputed after a shared store refused it reads inside.
		mark := len(ledger.Added(tx, objects))
		res, err := s.reserve(tx, pr, caller.ID, in)
		pr = nil
		wrote = written(tx, mark)
		return res, err
	})
	if r.Err == nil {
		s.objs.confirm(wrote)
	}
	return r
}

// reserve holds credit for in inside tx; pr, when set, is what was read
// before the operation (preread).
func (s *Service) reserve(tx *ledger.Tx, pr *preread, provider string, in ReserveParams) (*ReserveResult, error) {
	amount, currency := in.Amount, in.Currency
	if in.Estimate != 0 {
		m, err := pr.meter(s, tx, provider, in.Meter)
		if err != nil {
			return nil, err
		}
		p, err := s.priceFor(tx, pr, provider, in.Meter, m, in.Model, in.TokenType, tx.Now())
		if err != nil {
			return nil, err
		}
		exp, _ := pb.CurrencyExponent(p.Currency)
		amount, currency = HoldAmount(in.Estimate, maxNanos(p), exp), p.Currency
		if amount > pb.MaxAmount {
			return nil, pb.Errorf(pb.ErrAmountTooLarge, "estimate", "the estimate is worth more than %d minor units", pb.MaxAmount)
		}
		if amount == 0 {
			amount = 1 // a free estimate still proves the customer may use the meter
		}
	}
	res := &ReserveResult{Object: "billing_reservation_result", Amount: amount, Currency: currency}
	now := tx.Now()
	t, err := s.termsOf(tx, pr, provider, in.Customer, currency)
	if err != nil {
		return nil, err
	}
	credit, err := tx.Account(pb.BillingCreditOwner(provider, in.Customer), currency)
	if pb.ErrorCode(err) == pb.ErrNotFound && t.allows(now) {
		// A subscriber may run on its overdraft before it ever had credit.
		credit, err = tx.EnsureAccount(pb.BillingCreditOwner(provider, in.Customer), currency, pb.DebitsMustNotExceedCredits)
	}
	if pb.ErrorCode(err) == pb.ErrNotFound {
		res.Reason, res.Message = ReasonNoCredit, fmt.Sprintf("customer %s has no %s credit with this provider: recharge or grant credit first", in.Customer, currency)
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	var od *pb.Account
	if t.in(now) {
		if od, err = room(tx, provider, in.Customer, currency); err != nil {
			return nil, err
		}
	}
	res.Available = available(credit)
	if t.allows(now) {
		res.Available += headroom(od)
	}
	if t.in(now) && t.UsageCap > 0 {
		held := credit.DebitsPending
		if od != nil {
			held += od.DebitsPending
		}
		if t.PeriodUsed+held+amount > t.UsageCap {
			res.Reason, res.Message = ReasonPlanCap, fmt.Sprintf("customer %s's plan caps a month's usage at %s %s: %s used and %s reserved this month leave less than the %s asked",
				in.Customer, pb.FormatAmount(t.UsageCap, currency), currency, pb.FormatAmount(t.PeriodUsed, currency), pb.FormatAmount(held, currency), pb.FormatAmount(amount, currency))
			return res, nil
		}
	}
	// What the credit can't hold comes from the overdraft, when the terms
	// allow it, up to their cap.
	fromCredit, fromOverdraft := amount, int64(0)
	if t.allows(now) && available(credit) < amount {
		fromCredit = max(available(credit), 0)
		fromOverdraft = amount - fromCredit
		if fromOverdraft > headroom(od) {
			res.Reason, res.Message = ReasonOverdraftCap, fmt.Sprintf("customer %s has %s %s of credit and overdraft available, less than the %s reserved (the plan's overdraft cap is %s)", in.Customer,
				pb.FormatAmount(res.Available, currency), currency, pb.FormatAmount(amount, currency), pb.FormatAmount(t.OverdraftCap, currency))
			return res, nil
		}
	}
	usage, err := tx.EnsureAccount(pb.BillingUsageOwner(provider), currency, 0)
	if err != nil {
		return nil, err
	}
	id := pb.NewID(pb.PrefixReservation, now)
	expires := now.Add(in.ExpiresIn).UTC().Truncate(time.Millisecond)
	var hold, odHold int64
	err = tx.Atomic(func() error {
		var err error
		before := available(credit)
		if fromCredit > 0 {
			if hold, err = tx.Hold(credit, usage, fromCredit, expires, id); err != nil {
				return err
			}
		}
		if fromOverdraft > 0 {
			// The room's constraint holds the cap, as the credit's does.
			if odHold, err = tx.Hold(od, usage, fromOverdraft, expires, id); err != nil {
				return err
			}
		}
		if t.in(now) && t.UsageCap > 0 {
			// Decided against the usage cap: another process deciding
			// against it at once conflicts (terms.go).
			if err := s.putTerms(tx, t); err != nil {
				return err
			}
		}
		if err := s.crossed(tx, pr, provider, in.Customer, currency, before, available(credit)); err != nil {
			return err
		}
		r := pb.Reservation{ID: id, Object: "billing_reservation", ProviderID: provider, CustomerID: in.Customer, Meter: in.Meter,
			Currency: currency, Amount: amount, Overdraft: fromOverdraft, HoldID: hold, OverdraftHoldID: odHold, Status: statusActive,
			ExpiresAt: expires, CreatedAt: now.Truncate(time.Second), Version: 1}
		return s.putReservation(tx, &r)
	})
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		res.Available = available(credit)
		res.Reason, res.Message = ReasonInsufficientCredit, fmt.Sprintf("customer %s has %s %s of credit available, less than the %s reserved", in.Customer,
			pb.FormatAmount(res.Available, currency), currency, pb.FormatAmount(amount, currency))
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.Allowed, res.ReservationID, res.ExpiresAt = true, id, expires
	res.Available = available(credit)
	if t.allows(now) {
		res.Available += headroom(od)
	}
	return res, nil
}

// reservationData is a reservation as stored: with its holds.
type reservationData struct {
	pb.Reservation
	Hold          int64 `json:"hold_id"`
	OverdraftHold int64 `json:"overdraft_hold_id,omitempty"`
}

func (s *Service) putReservation(tx *ledger.Tx, r *pb.Reservation) error {
	var due *time.Time
	if r.Status == statusActive {
		due = &r.ExpiresAt
	}
	return s.put(tx, kindReservation, r.ID, r.ProviderID, r.CustomerID, r.Version, r.CreatedAt, due, reservationData{*r, r.HoldID, r.OverdraftHoldID})
}

// reservation returns reservation id of provider as of this point in tx.
func (s *Service) reservation(tx *ledger.Tx, provider, id string) (*pb.Reservation, error) {
	var d reservationData
	o, err := s.current(tx, id, &d)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && (o.Kind != kindReservation || o.ProviderID != provider)) {
		return nil, pb.Errorf(pb.ErrNotFound, "reservation", "no such reservation: %s", id)
	}
	if err != nil {
		return nil, err
	}
	d.Reservation.HoldID, d.Reservation.OverdraftHoldID, d.Reservation.Version = d.Hold, d.OverdraftHold, o.Version
	return &d.Reservation, nil
}

// Release (provider) releases a reservation's hold whole, without usage.
func (s *Service) Release(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(id, pb.PrefixReservation) {
		return service.Result{Err: pb.Errorf(pb.ErrNotFound, "id", "no such reservation: %s", id)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		r, err := s.reservation(tx, caller.ID, id)
		if err != nil {
			return nil, err
		}
		if r.Status != statusActive {
			return nil, pb.Errorf(pb.ErrReservationState, "", "reservation %s is already %s", r.ID, r.Status)
		}
		return r, s.end(tx, r, statusReleased)
	})
}

// end voids r's holds and marks it status.
func (s *Service) end(tx *ledger.Tx, r *pb.Reservation, status string) error {
	return tx.Atomic(func() error {
		for _, h := range []int64{r.HoldID, r.OverdraftHoldID} {
			if h == 0 {
				continue
			}
			if _, err := tx.Void(h, r.ID); err != nil {
				return err
			}
		}
		r.Status = status
		r.Version++
		return s.putReservation(tx, r)
	})
}

// Reservation returns reservation id to its provider.
func (s *Service) Reservation(ctx context.Context, caller pb.Principal, id string) (*pb.Reservation, error) {
	if err := requireProvider(caller); err != nil {
		return nil, err
	}
	var d reservationData
	o, err := s.st.BillingObject(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && (o.Kind != kindReservation || o.ProviderID != caller.ID)) || !pb.HasPrefix(id, pb.PrefixReservation) {
		return nil, pb.Errorf(pb.ErrNotFound, "id", "no such reservation: %s", id)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(o.Data, &d); err != nil {
		return nil, fmt.Errorf("reservation %s is unreadable: %w", id, err)
	}
	return &d.Reservation, nil
}

// --- the sweep ---

// sweepBatch bounds one sweep's work.
const sweepBatch = 500

// Sweep expires the reservations and grants that are due, in one ledger
// operation, and returns how many it looked at.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	all, err := s.st.DueBillingObjects(ctx, s.cfg.Clock.Now(), sweepBatch)
	if err != nil || len(all) == 0 {
		return 0, err
	}
	var due []pb.BillingObject
	for _, o := range all {
		// A payment is an operation of its own, made outside this one.
		switch o.Kind {
		case kindAutoRecharge:
			if err := s.autoRecharge(ctx, o); err != nil {
				s.cfg.Logger.Warn("billing: couldn't auto-recharge; retrying", "id", o.ID, "err", err)
			}
		case kindSubscription:
			if err := s.renew(ctx, o); err != nil {
				s.cfg.Logger.Warn("billing: couldn't renew a subscription; retrying", "id", o.ID, "err", err)
			}
		default:
			due = append(due, o)
		}
	}
	if len(due) == 0 {
		return len(all), nil
	}
	res := s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		for _, o := range due {
			if err := tx.Atomic(func() error { return s.expire(tx, o) }); err != nil {
				// One object's failure must not stop the others'.
				s.cfg.Logger.Warn("billing: couldn't expire", "id", o.ID, "err", err)
			}
		}
		return nil, nil
	})
	return len(all), res.Err
}

// expire releases due object o, as of tx (the sweep read it outside).
func (s *Service) expire(tx *ledger.Tx, o pb.BillingObject) error {
	switch o.Kind {
	case kindReservation:
		r, err := s.reservation(tx, o.ProviderID, o.ID)
		if err != nil || r.Status != statusActive || tx.Now().Before(r.ExpiresAt) {
			return err
		}
		return s.end(tx, r, statusExpired)
	case kindGrant:
		var g pb.Grant
		cur, err := s.current(tx, o.ID, &g)
		if err != nil {
			return err
		}
		g.Version = cur.Version
		switch {
		case g.Status == statusActive && g.ExpiresAt != nil && !tx.Now().Before(*g.ExpiresAt):
			g.Status = statusExpired
		case g.Status == statusActive:
			return nil
		}
		return s.withdraw(tx, &g)
	}
	return nil
}
