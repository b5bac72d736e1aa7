// Package riskctl is risk control: it assesses every payment attempt
// before the ledger writer (internal/risk scores it), keeps each payer's
// recent payments in memory, and holds the operator's rules and merchant
// flags. The payments core asks it through service.RiskControl; its
// operator's operations and routes are New's.
package riskctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/risk"
	"github.com/paybound/paybound/internal/service"
)

// Risk control runs on every payment attempt, in the request, before the
// writer: it reads the payer's recent payments (kept in memory per payer,
// loaded from the store on first use, so the velocity counters and
// histories survive a restart), the wallet's balance and the operator's
// rules, and returns an assessment that authorize acts on.
//
// What is kept in memory is confirmed against the store where it could
// wrongly count against a payment: a balance read from the cache that
// makes the payment drain the wallet (or a rule refuse it) is read again;
// and with a store other processes write too (PostgreSQL), an agent's
// velocities and declines, and whether the payer paid the merchant, add
// what the store holds that this process's copy lacks (PayerActivity), on
// every agent attempt. docs/scaling.md says what that leaves out.

// Bounds of the in-memory state.
const (
	// riskMaxPayers bounds the payers whose recent payments are kept (each
	// book holds at most 9/8 MaxRecentPayments entries, about 110 KB when
	// full); past it, one is dropped (and read again when it next pays).
	riskMaxPayers = 1024
	// riskShareRefresh is how often a payer's recent payments are read
	// again from a store that other processes write too (PostgreSQL): what
	// they did counts in the histories within this long (in the counts
	// that limits compare at once: othersActivity).
	riskShareRefresh = 10 * time.Second
	// riskReload is how often the rules and flags are read again, so that
	// another process's changes take effect.
	riskReload = 5 * time.Second
	// riskCommitLag is how long before a read of the payer's payments a
	// payment the read missed may have been made (its ID's time): a
	// payment is committed a moment after its ID is made, and another
	// process's clock may be a little behind. What other processes did is
	// asked of the store from the read less this on.
	riskCommitLag = 5 * time.Second
)

// othersActivity adds what it reads to the minute's counts too: that
// holds while a book is never older than a minute less riskCommitLag.
const _ = uint64(time.Minute - riskShareRefresh - riskCommitLag)

// Control is risk control: the payer books, the operator's rules and
// flags, and the decisions made. It is the service.RiskControl the payments
// core asks (service.Config.Risk); New serves its operator's operations and
// routes. Safe for concurrent use.
type Control struct {
	cfg   risk.Config
	st    Store
	clock pb.Clock
	log   *slog.Logger
	snap  atomic.Pointer[riskSnapshot]
	load  sync.Mutex // serializes loads of the snapshot

	mu     sync.Mutex // guards payers
	payers map[string]*payerBook

	warned  sync.Map // rule → time its failure was last logged
	warnedN atomic.Int64

	decisions sync.Map // pb.RiskDecision → *atomic.Int64: risk decisions made, for metrics

	stop chan struct{}
	wg   sync.WaitGroup
}

// riskSnapshot is the operator's configuration as one immutable value.
type riskSnapshot struct {
	rules  []*risk.Rule // sorted as Apply runs them
	stored []pb.RiskRule
	flags  map[string][]string
}

// payerBook is one payer's recent payments, oldest first (so that a new
// one is appended).
type payerBook struct {
	mu     sync.Mutex
	loaded time.Time
	recent []pb.RecentPayment
	// full says the store had at least MaxRecentPayments: older payments
	// exist that recent does not show.
	full bool
	// paid caches PaidMerchant answers for merchants not in recent.
	paid map[string]bool
	// balance is the wallet's available balance in balanceCur as read at
	// balanceAt, less the payments noted since (see available).
	balance    int64
	balanceCur string
	balanceAt  time.Time
	// balanceGen counts balance reads; provGen holds, for each
	// provisional entry, the read its attempt was assessed on.
	balanceGen uint64
	provGen    map[string]uint64
	// credited is when (UnixNano, by risk control's clock) this process
	// last began to add to the wallet: see credited. It is set without mu.
	credited atomic.Int64
}

// Store is what risk control reads and writes: its own rows
// (paybound.RiskStore), the payer's wallet and the payments it lists for
// the operator. A store that is a paybound.SharedStore is read again for
// what other processes did.
type Store interface {
	pb.RiskStore
	Account(ctx context.Context, owner, currency string) (*pb.Account, error)
	ListPayments(ctx context.Context, f pb.PaymentFilter) ([]pb.Payment, bool, error)
}

// Config configures risk control. Zero values take the documented
// defaults.
type Config struct {
	// Thresholds are risk control's thresholds (nil: risk.Defaults()).
	Thresholds *risk.Config
	Clock      pb.Clock     // default: wall clock
	Logger     *slog.Logger // default: discard
}

// NewControl validates cfg and returns risk control over st; call Start to
// reload the rules and flags that other processes change.
func NewControl(st Store, cfg Config) (*Control, error) {
	c := risk.Defaults()
	if cfg.Thresholds != nil {
		c = *cfg.Thresholds
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("riskctl: Config.Thresholds: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Control{cfg: c, st: st, clock: cfg.Clock, log: cfg.Logger, payers: map[string]*payerBook{},
		stop: make(chan struct{})}, nil
}

// Thresholds returns the thresholds risk control assesses with.
func (s *Control) Thresholds() risk.Config { return s.cfg }

// Start runs the reloading of the rules and flags until Close: with a store
// other processes write too, each riskReload.
func (s *Control) Start() {
	s.wg.Add(1)
	go service.Every(s.stop, &s.wg, s.log, riskReload, "risk rules reload", func(ctx context.Context) error {
		if _, shared := s.st.(pb.SharedStore); !shared {
			return nil // only this process changes them, and reloads at once
		}
		_, err := s.reloadRisk(ctx)
		return err
	})
}

// Close stops the reloading. It does not close the store.
func (s *Control) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Decisions returns how many payments risk control assessed, by decision,
// since start.
func (s *Control) Decisions() map[pb.RiskDecision]int64 {
	out := map[pb.RiskDecision]int64{}
	s.decisions.Range(func(k, v any) bool {
		out[k.(pb.RiskDecision)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (s *Control) countDecision(r *pb.Risk) {
	if r == nil {
		return
	}
	n, _ := s.decisions.LoadOrStore(r.Decision, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// DropBooks forgets every payer's recent payments, as a restart would (for
// benchmarks).
func (s *Control) DropBooks() {
	s.mu.Lock()
	clear(s.payers)
	s.mu.Unlock()
}

// ParseRiskConfig reads a risk configuration as JSON: the defaults, with
// the fields data sets replaced. Unknown fields are refused.
func ParseRiskConfig(data []byte) (*risk.Config, error) {
	c := risk.Defaults()
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("risk config: want one JSON object, such as {\"review_at\": 50}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("risk config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("risk config: want one JSON object and nothing after it")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// riskSnap returns the current rules and flags, reading them on first use.
func (s *Control) riskSnap(ctx context.Context) (*riskSnapshot, error) {
	if sn := s.snap.Load(); sn != nil {
		return sn, nil
	}
	s.load.Lock()
	defer s.load.Unlock()
	if sn := s.snap.Load(); sn != nil { // another caller loaded it meanwhile
		return sn, nil
	}
	return s.loadRisk(ctx)
}

// reloadRisk reads the rules and flags from the store again.
func (s *Control) reloadRisk(ctx context.Context) (*riskSnapshot, error) {
	s.load.Lock()
	defer s.load.Unlock()
	return s.loadRisk(ctx)
}

// changedRisk reloads the rules and flags after this process changed them
// in the store, whether or not the caller is still waiting; when that
// fails, the next attempt reads them again rather than run stale ones.
func (s *Control) changedRisk(ctx context.Context) error {
	if _, err := s.reloadRisk(context.WithoutCancel(ctx)); err != nil {
		s.snap.Store(nil)
		return fmt.Errorf("the change is stored, but reading the rules back failed: %w", err)
	}
	return nil
}

// loadRisk reads the rules and flags (risk.load held). Rules unchanged
// since the last load keep their compiled programs. A stored rule that no
// longer compiles (a newer server's syntax) is skipped, logged, and listed
// with its error.
func (s *Control) loadRisk(ctx context.Context) (*riskSnapshot, error) {
	stored, err := s.st.RiskRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the risk rules: %w", err)
	}
	flags, err := s.st.AllMerchantFlags(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the merchant flags: %w", err)
	}
	compiled := map[pb.RiskRule]*risk.Rule{}
	if old := s.snap.Load(); old != nil {
		for _, r := range old.rules {
			compiled[r.Stored(time.Time{})] = r
		}
	}
	sn := &riskSnapshot{stored: stored, flags: make(map[string][]string, len(flags))}
	for i, r := range stored {
		key := r
		key.CreatedAt, key.Error = time.Time{}, ""
		rule := compiled[key]
		if rule == nil {
			if rule, err = risk.NewRule(r.Name, r.Expression, r.Action, r.Priority); err != nil {
				s.log.Error("stored risk rule does not compile; it is skipped", "rule", r.Name, "err", err)
				sn.stored[i].Error = err.Error()
				continue
			}
		}
		sn.rules = append(sn.rules, rule)
	}
	risk.Sort(sn.rules)
	for _, f := range flags {
		sn.flags[f.MerchantID] = f.Flags
	}
	s.snap.Store(sn)
	return sn, nil
}

// book returns payer's recent payments, reading them from the store when
// they are not in memory (or, with a shared store, are older than
// riskShareRefresh). The book is returned locked.
func (s *Control) book(ctx context.Context, payer string) (*payerBook, error) {
	s.mu.Lock()
	b, ok := s.payers[payer]
	if !ok {
		if len(s.payers) >= riskMaxPayers {
			s.evict()
		}
		b = &payerBook{}
		s.payers[payer] = b
	}
	s.mu.Unlock()
	b.mu.Lock()
	_, shared := s.st.(pb.SharedStore)
	if b.loaded.IsZero() || (shared && s.clock.Now().Sub(b.loaded) > riskShareRefresh) {
		recent, err := s.st.RecentPayments(ctx, payer, pb.MaxRecentPayments)
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("couldn't read the payer's recent payments: %w", err)
		}
		slices.Reverse(recent)
		for i := range recent {
			internRecent(&recent[i])
		}
		// Attempts still in flight stay counted.
		for _, rec := range b.recent {
			if rec.Status == provisional {
				recent = append(recent, rec)
			}
		}
		b.recent, b.full, b.paid, b.loaded = recent, len(recent) >= pb.MaxRecentPayments, nil, s.clock.Now()
	}
	return b, nil
}

// riskBalanceTTL is how long a payer's balance, read for risk control, is
// used again (less what the payments noted since took): a payer paying
// many times a second costs one read a second, not one a payment.
const riskBalanceTTL = time.Second

// available returns the payer's available balance in currency, and
// whether it is b's (locked) copy rather than read from the store now. The
// copy is used unless fresh, when it was read less than riskBalanceTTL
// ago, and not within riskBalanceTTL after a credit began (credited). It
// may be too low only by what another process added meanwhile, and too
// high by what another process took: the caller confirms a low one before
// it counts against a payment (risk.Drains).
func (s *Control) available(ctx context.Context, b *payerBook, payer, currency string, now time.Time, fresh bool) (_ int64, cached bool, _ error) {
	if !fresh && b.balanceCur == currency && now.Sub(b.balanceAt) < riskBalanceTTL && !now.Before(b.balanceAt) &&
		b.balanceAt.UnixNano()-b.credited.Load() >= int64(riskBalanceTTL) {
		return b.balance, true, nil
	}
	var avail int64
	acct, err := s.st.Account(ctx, payer, currency)
	switch {
	case err == nil:
		avail = acct.Available()
	case pb.ErrorCode(err) != pb.ErrNotFound:
		return 0, false, fmt.Errorf("couldn't read the wallet's balance: %w", err)
	}
	b.balance, b.balanceCur, b.balanceAt = avail, currency, now
	b.balanceGen++
	return avail, false, nil
}

// Credited makes risk control read payer's balance from the store again:
// call it wherever this process adds to a payer's wallet (a top-up, a
// refund, a released hold, a compensation), inside the ledger operation.
// The credit commits after the call, so a read in between would miss it:
// no read made within riskBalanceTTL of the call is used again (and should
// a commit take longer, a balance too low is confirmed before it counts).
// It takes no lock that is held across a read of the store: the ledger
// writer calls it.
func (s *Control) Credited(payer string) {
	s.mu.Lock()
	b := s.payers[payer]
	s.mu.Unlock()
	if b != nil {
		b.credited.Store(s.clock.Now().UnixNano())
	}
}

// evict drops one payer's book (s.mu held): one with no attempt in flight,
// among the first few the map yields, so that dropping it loses no
// provisional entry; failing that, the last looked at.
func (s *Control) evict() {
	var last string
	tries := 0
	for k, b := range s.payers {
		last = k
		if b.mu.TryLock() {
			busy := len(b.provGen) > 0
			b.mu.Unlock()
			if !busy {
				break
			}
		}
		if tries++; tries == 8 {
			break
		}
	}
	delete(s.payers, last)
}

// provisional is the status of an attempt assessed but not yet committed:
// it counts in the velocities of the attempts after it (so that a burst of
// concurrent attempts cannot all pass as the first), not in the histories.
const provisional pb.PaymentStatus = "~provisional"

// provisionalSeq numbers provisional entries; their IDs ("~1", "~2", …)
// never collide with payment IDs.
var provisionalSeq atomic.Int64

// Note records p, just committed, in payer's book if the book is in
// memory, in place of the provisional entry token when there is one (and
// p may then be nil: the attempt made no payment, or replayed one);
// category is p's merchant's. The next attempt's counters include it.
func (s *Control) Note(payer string, p *pb.Payment, category, token string) {
	s.mu.Lock()
	b := s.payers[payer]
	s.mu.Unlock()
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.loaded.IsZero() {
		return
	}
	// The cached balance stays right only for a new payment assessed on
	// it (one read before the payment's commit, and not read again since):
	// that payment's hold comes off it. Anything else forces a new read.
	gen, fresh := b.provGen[token]
	delete(b.provGen, token)
	if token != "" {
		for i := len(b.recent) - 1; i >= 0; i-- {
			if b.recent[i].ID == token {
				b.recent = slices.Delete(b.recent, i, i+1)
				break
			}
		}
	}
	if p == nil {
		return
	}
	if moved(p.Status) && b.paid != nil {
		b.paid[p.MerchantID] = true
	}
	for i := len(b.recent) - 1; i >= 0; i-- { // a decision on a payment in the book
		if b.recent[i].ID == p.ID {
			// A hold captured whole leaves the balance as it was; an
			// approval, a partial capture or a cancel changes it.
			if !(b.recent[i].Status == pb.StatusAuthorized && p.Status == pb.StatusCaptured && p.AmountCaptured == p.Amount) {
				b.balanceAt = time.Time{}
			}
			b.recent[i].Status, b.recent[i].DeclineCode = p.Status, p.DeclineCode
			return
		}
	}
	switch {
	case token == "":
		// A decision on a payment the book does not hold (older than
		// it): a cancel or a partial capture gave money back.
		b.balanceAt = time.Time{}
	case !moved(p.Status) || p.Currency != b.balanceCur:
	case fresh && gen == b.balanceGen:
		b.balance = max(0, b.balance-p.Amount)
	default:
		b.balanceAt = time.Time{}
	}
	if len(b.recent) >= pb.MaxRecentPayments+pb.MaxRecentPayments/8 { // keep the newest, in place
		b.recent = append(b.recent[:0], b.recent[len(b.recent)-pb.MaxRecentPayments+1:]...)
	}
	b.recent = append(b.recent, pb.RecentPayment{ID: p.ID, MerchantID: p.MerchantID, Category: category,
		AgentID: string(p.AgentID), MandateID: string(p.MandateID), Currency: p.Currency, Amount: p.Amount,
		Status: p.Status, DeclineCode: p.DeclineCode, CreatedAt: p.CreatedAt})
	internRecent(&b.recent[len(b.recent)-1])
	if len(b.recent) > pb.MaxRecentPayments {
		b.full = true
	}
}

// newest returns b's most recent payments, oldest first: at most
// MaxRecentPayments (the book keeps up to twice that, to drop the oldest in
// bulk).
func (b *payerBook) newest() []pb.RecentPayment {
	return b.recent[max(0, len(b.recent)-pb.MaxRecentPayments):]
}

// moved reports whether a payment's money moved: what counts as history.
func moved(s pb.PaymentStatus) bool {
	return s == pb.StatusAuthorized || s == pb.StatusCaptured || s == pb.StatusRefunded
}

// Assess evaluates a payment attempt: the built-in signals over the payer's
// recent payments, then the operator's rules. The attempt stays in the
// payer's book, as a provisional entry named token, until the caller
// settles it with Note. The decision is counted (Decisions).
func (s *Control) Assess(ctx context.Context, at service.RiskAttempt) (_ *pb.Risk, token string, err error) {
	sn, err := s.riskSnap(ctx)
	if err != nil {
		return nil, "", err
	}
	now := s.clock.Now()
	in := s.input(sn, at, now)
	b, err := s.book(ctx, at.Payer)
	if err != nil {
		return nil, "", err
	}
	cached, err := s.observe(ctx, b, at, now, &in)
	var tok string
	if err == nil {
		tok = b.addProvisional(at, now)
	}
	b.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	done := false
	defer func() {
		if !done { // an error or a panic: the attempt will not commit
			s.Note(at.Payer, nil, "", tok)
		}
	}()
	a, errs := risk.Assess(ctx, &in, &s.cfg, sn.rules)
	if cached && a.Decision != risk.Allow && len(sn.rules) > 0 {
		if a, errs, err = s.reassess(ctx, b, sn, at, now, tok, &in, a, errs); err != nil {
			return nil, "", err
		}
	}
	for _, e := range errs {
		s.warnRule(e)
	}
	if err := s.commit(&a, &in); err != nil {
		return nil, "", err
	}
	done = true
	s.countDecision(&a)
	return &a, tok, nil
}

// input is the attempt as the signals and rules see it, before the payer's
// balance and history are filled in, with a fresh random salt for the
// commitment.
func (s *Control) input(sn *riskSnapshot, at service.RiskAttempt, now time.Time) risk.Input {
	p, m := at.Params, at.Merchant
	in := risk.Input{Amount: p.Amount, Currency: p.Currency, MerchantID: m.ID, Merchant: m.Name, Category: m.Category,
		UserID: at.Payer, AgentID: at.Agent, MandateID: p.MandateID, Assurance: at.Assurance, Description: p.Description,
		Metadata: p.Metadata, Now: now.UTC().Truncate(time.Second), MerchantFlags: sn.flags[m.ID],
		MerchantAgeHours: int64(now.Sub(m.CreatedAt) / time.Hour),
		PayeeProvenance:  provenance(p.PayeeProvenance), AmountProvenance: provenance(p.AmountProvenance)}
	var salt [16]byte
	rand.Read(salt[:])
	in.Salt = hex.EncodeToString(salt[:])
	return in
}

// observe fills in's available balance, histories, velocities and declines
// from b (locked, and left locked), adding other processes' activity on a
// shared store. cached reports that in.Available is this process's copy of
// the balance rather than a fresh read: a payment that drains the wallet on
// the copy has it read again. Errors are the store's.
func (s *Control) observe(ctx context.Context, b *payerBook, at service.RiskAttempt, now time.Time, in *risk.Input) (cached bool, err error) {
	currency := at.Params.Currency
	if in.Available, cached, err = s.available(ctx, b, at.Payer, currency, now, false); err == nil {
		err = s.summarize(ctx, b, at, now, in)
	}
	if _, shared := s.st.(pb.SharedStore); err == nil && shared && (at.Agent != "" || !in.PaidMerchantBefore) {
		err = s.othersActivity(ctx, b, at, in)
	}
	if err == nil && cached && risk.Drains(in, &s.cfg) {
		// The copy says the payment drains the wallet: a credit this
		// process has not seen may say otherwise.
		in.Available, cached, err = s.available(ctx, b, at.Payer, currency, now, true)
	}
	return cached, err
}

// addProvisional adds the attempt to b (locked) as a provisional entry,
// assessed on b's current balance read, and returns its token; Note
// settles it.
func (b *payerBook) addProvisional(at service.RiskAttempt, now time.Time) string {
	p, m := at.Params, at.Merchant
	tok := "~" + strconv.FormatInt(provisionalSeq.Add(1), 10)
	b.recent = append(b.recent, pb.RecentPayment{ID: tok, MerchantID: m.ID, Category: m.Category, AgentID: at.Agent,
		MandateID: p.MandateID, Currency: p.Currency, Amount: p.Amount, Status: provisional, CreatedAt: now})
	internRecent(&b.recent[len(b.recent)-1])
	if b.provGen == nil {
		b.provGen = map[string]uint64{}
	}
	b.provGen[tok] = b.balanceGen
	return tok
}

// reassess confirms a refusal made on the copy of the balance (a, errs):
// an operator's rule may have refused the payment on it, as for
// drains_wallet. It reads the balance afresh under b's lock, records that
// tok was assessed on that read, and assesses in again only when the
// balance differs. Errors are the store's.
func (s *Control) reassess(ctx context.Context, b *payerBook, sn *riskSnapshot, at service.RiskAttempt, now time.Time,
	tok string, in *risk.Input, a risk.Assessment, errs []error) (risk.Assessment, []error, error) {
	b.mu.Lock()
	avail, _, err := s.available(ctx, b, at.Payer, at.Params.Currency, now, true)
	if err == nil {
		b.provGen[tok] = b.balanceGen // assessed on this read now
	}
	b.mu.Unlock()
	if err != nil {
		return a, errs, err
	}
	if avail != in.Available {
		in.Available = avail
		a, errs = risk.Assess(ctx, in, &s.cfg, sn.rules)
	}
	return a, errs, nil
}

// commit binds a to in: the hash of the full input and the commitment under
// in's salt. a.Input keeps in less what the payment records already
// (fullInput puts it back). Errors are encoding errors.
func (s *Control) commit(a *risk.Assessment, in *risk.Input) error {
	full, err := json.Marshal(in)
	if err != nil {
		return err
	}
	a.InputHash = sha256.Sum256(full)
	o, err := pb.OpenRisk(a, in.Salt)
	if err == nil {
		a.Commitment, err = o.Commitment()
	}
	if err != nil {
		return err
	}
	own := *in // what the payment records already is left out
	own.Amount, own.Currency, own.MerchantID, own.UserID, own.AgentID, own.MandateID = 0, "", "", "", "", ""
	own.Description, own.Metadata, own.Assurance = "", nil, ""
	a.Input, err = json.Marshal(&own)
	return err
}

// warnRule logs a rule that could not be evaluated, at most once a minute
// per rule: a rule on a metadata key most payments lack fails on most.
func (s *Control) warnRule(err error) {
	key := err.Error()
	if i := strings.Index(key, ":"); i > 0 {
		key = key[:i] // `risk rule "name"`
	}
	now := s.clock.Now()
	if last, ok := s.warned.Load(key); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	if s.warnedN.Add(1) > 10_000 { // bounded: start over
		s.warned.Clear()
		s.warnedN.Store(0)
	}
	s.warned.Store(key, now)
	s.log.Warn("risk rule not evaluated (it did not match; repeats are not logged for a minute)", "err", err)
}

// Opening opens p's risk commitment, logged as commitment, for a
// party that may read it (partial: an agent): the transparency log's trace
// and receipt give it. It returns nil, and logs why, when it cannot: the
// entry stays verifiable, only unopened.
func (s *Control) Opening(ctx context.Context, p *pb.Payment, commitment string, partial bool) *pb.RiskOpening {
	fail := func(why string, err error) *pb.RiskOpening {
		s.log.ErrorContext(ctx, "couldn't open a payment's risk commitment", "payment", p.ID, "why", why, "err", err)
		return nil
	}
	if p.Risk == nil || len(p.Risk.Input) == 0 {
		return fail("the payment keeps no assessment", nil)
	}
	var in struct {
		Salt string `json:"salt"`
	}
	if err := json.Unmarshal(p.Risk.Input, &in); err != nil {
		return fail("its input does not decode", err)
	}
	full, err := fullInput(p)
	if err != nil {
		return fail("its input does not decode", err)
	}
	r := *p.Risk
	r.InputHash = sha256.Sum256(full)
	o, err := pb.OpenRisk(&r, in.Salt)
	if err != nil {
		return fail("no salt", err)
	}
	if err := o.Verify(commitment); err != nil {
		return fail("the kept assessment does not open the logged commitment", err)
	}
	if partial {
		return o.Partial()
	}
	return o
}

// fullInput is the input risk control saw for p, as Assess hashed it: the
// stored input with the payment's own fields put back.
func fullInput(p *pb.Payment) (json.RawMessage, error) {
	var in risk.Input
	if err := json.Unmarshal(p.Risk.Input, &in); err != nil {
		return nil, fmt.Errorf("payment %s has an unreadable risk input: %w", p.ID, err)
	}
	in.Amount, in.Currency, in.MerchantID, in.UserID = p.Amount, p.Currency, p.MerchantID, p.PayerID
	in.AgentID, in.MandateID, in.Description, in.Assurance = string(p.AgentID), string(p.MandateID), p.Description, string(p.Assurance)
	if len(p.Metadata) > 0 {
		in.Metadata = p.Metadata
	}
	return json.Marshal(&in)
}

// summarize fills in's histories, velocities and declines from b (locked).
func (s *Control) summarize(ctx context.Context, b *payerBook, at service.RiskAttempt, now time.Time, in *risk.Input) error {
	// The attempt's IDs, interned as the book's are: the loop below
	// compares them with up to MaxRecentPayments entries, and equal
	// strings that share their bytes compare without reading them (it was
	// most of this function's time for an agent paying one merchant).
	agent, merchantID, mandateID, categoryID, currency := intern(at.Agent), intern(in.MerchantID), intern(in.MandateID), intern(in.Category), intern(in.Currency)
	var merchant, category, mandate [risk.MaxHistory]int64
	var nm, nc, nd int
	// Ages in seconds: this loop runs over up to MaxRecentPayments on
	// every attempt.
	const minute, hour, day = 60, 3600, 86400
	count := func(v *risk.Velocity, age, amount int64) {
		for _, w := range []struct {
			win *risk.Window
			max int64
		}{{&v.Minute, minute}, {&v.Hour, hour}, {&v.Day, day}} {
			if age < w.max {
				w.win.Count++
				w.win.Sum += amount
			}
		}
	}
	nowS := now.Unix()
	recent := b.newest()
	for i := len(recent) - 1; i >= 0; i-- { // newest first
		r := &recent[i]
		age := nowS - r.CreatedAt.Unix()
		if age >= day && nm == len(merchant) && nc == len(category) && (mandateID == "" || nd == len(mandate)) {
			break // the velocities are done, and the histories full
		}
		if r.Status == pb.StatusDeclined {
			if agent != "" && r.AgentID == agent && age < hour && r.DeclineCode != pb.DeclineRiskBlocked &&
				(r.MerchantID != merchantID || r.Amount != in.Amount) {
				in.DeclinesLastHour++
			}
			continue
		}
		if age < day {
			if agent != "" && r.AgentID == agent {
				count(&in.AgentVelocity, age, r.Amount)
			}
			if mandateID != "" && r.MandateID == mandateID {
				count(&in.MandateVelocity, age, r.Amount)
			}
			if r.MerchantID == merchantID {
				count(&in.PayeeVelocity, age, r.Amount)
			}
		}
		if !moved(r.Status) {
			continue
		}
		if r.MerchantID == merchantID {
			in.PaidMerchantBefore = true // in any currency
		}
		if r.Currency != currency {
			continue
		}
		if r.MerchantID == merchantID {
			if nm < len(merchant) {
				merchant[nm], nm = r.Amount, nm+1
			}
		}
		if r.Category == categoryID && nc < len(category) {
			category[nc], nc = r.Amount, nc+1
		}
		if mandateID != "" && r.MandateID == mandateID && nd < len(mandate) {
			mandate[nd], nd = r.Amount, nd+1
		}
	}
	in.MerchantHistory, in.CategoryHistory, in.MandateHistory = risk.Summarize(merchant[:nm]), risk.Summarize(category[:nc]), risk.Summarize(mandate[:nd])
	if !in.PaidMerchantBefore && b.full {
		return s.paidBefore(ctx, b, at.Payer, in)
	}
	return nil
}

// paidBefore sets in.PaidMerchantBefore when b (locked, and full: its
// recent payments are not the payer's whole history) does not show a
// payment to the merchant: from b's memo, else from the store, memoized in
// b (at most MaxRecentPayments merchants, then started over).
func (s *Control) paidBefore(ctx context.Context, b *payerBook, payer string, in *risk.Input) error {
	paid, ok := b.paid[in.MerchantID]
	if !ok {
		var err error
		if paid, err = s.st.PaidMerchant(ctx, payer, in.MerchantID); err != nil {
			return fmt.Errorf("couldn't read the payer's history with the merchant: %w", err)
		}
		if b.paid == nil || len(b.paid) >= pb.MaxRecentPayments {
			b.paid = map[string]bool{}
		}
		b.paid[in.MerchantID] = paid
	}
	in.PaidMerchantBefore = paid
	return nil
}

// othersActivity adds to in what other processes did that b (locked) does
// not hold: the payer's payments the store has from b's last read (less
// riskCommitLag) on, less those b has, tallied into the agent's, the
// mandate's and the payee's velocities (every window: b was read less than
// riskShareRefresh ago), the agent's declines, and whether the payer paid
// the merchant. Attempts in flight are not in the store: other processes'
// are not counted, and this process's own (in b, provisional) may hide as
// many of the others' payments.
func (s *Control) othersActivity(ctx context.Context, b *payerBook, at service.RiskAttempt, in *risk.Input) error {
	q := pb.ActivityQuery{PayerID: at.Payer, SinceID: pb.IDFloor(pb.PrefixPayment, b.loaded.Add(-riskCommitLag)),
		AgentID: at.Agent, MandateID: in.MandateID, MerchantID: in.MerchantID, Amount: in.Amount}
	stored, err := s.st.PayerActivity(ctx, q)
	if err != nil {
		return fmt.Errorf("couldn't read the payer's payments made through other processes: %w", err)
	}
	// What b counts already: the same payments as far as b has them, and
	// its attempts in flight, which the store may have too (committed, not
	// yet noted): counted twice, they would stop a burst in this process
	// short of the limit.
	var known pb.Activity
	for i := range b.recent {
		if r := &b.recent[i]; r.Status == provisional || r.ID >= q.SinceID {
			q.Add(&known, r)
		}
	}
	// The store has every committed payment b has (b's entries were read
	// from it, or noted after their commit), so the difference is what b
	// lacks; when the store's read stopped at MaxActivityScan it is at
	// least what the store counted.
	velocity := func(v *risk.Velocity, stored, known pb.ActivityTally) {
		n, sum := max(0, stored.Count-known.Count), max(0, stored.Sum-known.Sum)
		for _, w := range []*risk.Window{&v.Minute, &v.Hour, &v.Day} {
			w.Count = max(w.Count+n, stored.Count)
			w.Sum = max(min(w.Sum, math.MaxInt64-sum)+sum, stored.Sum)
		}
	}
	if at.Agent != "" {
		velocity(&in.AgentVelocity, stored.Agent, known.Agent)
		in.DeclinesLastHour = max(in.DeclinesLastHour+max(0, stored.Declines-known.Declines), stored.Declines)
	}
	if in.MandateID != "" {
		velocity(&in.MandateVelocity, stored.Mandate, known.Mandate)
	}
	velocity(&in.PayeeVelocity, stored.Payee, known.Payee)
	in.PaidMerchantBefore = in.PaidMerchantBefore || stored.PaidMerchant
	return nil
}

// provenance maps a request's provenance to risk.Input's ("" for unknown).
func provenance(v string) string {
	if v == pb.ProvenanceUnknown {
		return ""
	}
	return v
}

// Message explains a risk decline to whoever asked for the payment
// (the payer or their agent) by the signals' names, and says when one of
// the operator's rules decided, without its name: an agent misled by what
// it read must not be able to pass on how near the payment came to going
// through. The message is logged too, in an entry the merchant never
// reads (docs/visibility.md); the payer reads the rule, the score and each
// signal's reason on the payment.
func (s *Control) Message(r *pb.Risk) string {
	why := make([]string, len(r.Signals))
	for i, sg := range r.Signals {
		why[i] = sg.Name
	}
	signals := "no signal fired"
	if len(why) > 0 {
		signals = "signals " + strings.Join(why, ", ")
	}
	by := ""
	if r.Rule != "" {
		by = " by one of the operator's rules"
	}
	return fmt.Sprintf("risk control blocked the payment%s (%s); the payment's risk field says more to its payer", by, signals)
}

// intern returns s's canonical copy (package unique): strings interned
// alike share their bytes, and Go compares two such strings by pointer
// first, without reading them.
func intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

// internRecent interns r's merchant, category, agent, mandate and currency:
// a book then holds one copy of each (it halves a loaded book), and
// summarize compares them by pointer.
func internRecent(r *pb.RecentPayment) {
	r.MerchantID, r.Category, r.AgentID = intern(r.MerchantID), intern(r.Category), intern(r.AgentID)
	r.MandateID, r.Currency = intern(r.MandateID), intern(r.Currency)
}
