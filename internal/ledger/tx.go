package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
)

// Tx is an operation's view of the ledger inside a batch: the committed
// state plus every earlier operation of the batch. It is used only on the
// writer goroutine, during Op.
type Tx struct {
	w      *Writer
	ctx    context.Context
	now    time.Time
	batch  pb.Batch
	payIdx map[string]int
	// before holds each account's balances as committed, from its first touch
	// in this batch, for the invariant check and the write-back.
	before map[int64]pb.Account
	// created marks the accounts this batch creates.
	created map[int64]bool
	// usageBefore is the same for mandate usage rows.
	usageBefore map[usageKey]pb.MandateUsageRow
	// logHead is the leaf hash of each subject's latest entry in this batch:
	// PutPayment accepts a payment only with its latest entry as head.
	logHead map[string][32]byte
	undo    []undoEntry
}

type undoKind uint8

const (
	undoAccount undoKind = iota
	undoHold
	undoPaymentNew
	undoPaymentUpdate
	undoMark    // the lengths of the batch's append-only lists at a mark
	undoRefresh // an account rebased on fresh state, and its record as found
	undoUsage   // a mandate usage row's previous value
	undoLogHead // a subject's previous log head in this batch (payID; had)
)

type undoEntry struct {
	kind    undoKind
	account *pb.Account
	oldAcct pb.Account
	holdID  int64
	oldHold *hold
	payID   string
	oldPay  *pb.Payment
	idx     int
	oldVal  pb.Payment
	lens    [12]int
	// For undoRefresh: the batch's record of the account as found.
	oldBefore pb.Account
	hadBefore bool
	// For undoUsage.
	usage    *pb.MandateUsageRow
	oldUsage pb.MandateUsageRow
	// For undoLogHead.
	oldHead [32]byte
}

// Now is the batch's time: every operation in a batch sees the same instant.
func (tx *Tx) Now() time.Time { return tx.now }

// Context is the writer's context, for store lookups made by operations.
func (tx *Tx) Context() context.Context { return tx.ctx }

// Atomic runs fn; if fn returns an error or panics, everything fn did to
// the ledger and the batch is undone and the error returned. Transfers made
// in one Atomic are linked: all or nothing.
func (tx *Tx) Atomic(fn func() error) (err error) {
	mark := len(tx.undo)
	tx.pushMark()
	defer func() {
		if p := recover(); p != nil {
			tx.rollback(mark)
			panic(p)
		}
		if err != nil {
			tx.rollback(mark)
		}
	}()
	return fn()
}

func (tx *Tx) pushMark() {
	b := &tx.batch
	tx.undo = append(tx.undo, undoEntry{kind: undoMark, lens: [12]int{len(b.Transfers), len(b.Payments),
		len(b.Refunds), len(b.Topups), len(b.Users), len(b.Merchants), len(b.Agents), len(b.APIKeys), len(b.TOTP), len(b.Passkeys),
		len(b.Log), len(b.Disputes)}})
}

// rollback undoes every entry from mark on, newest first.
func (tx *Tx) rollback(mark int) {
	b := &tx.batch
	for i := len(tx.undo) - 1; i >= mark; i-- {
		u := tx.undo[i]
		switch u.kind {
		case undoAccount:
			*u.account = u.oldAcct
		case undoUsage:
			*u.usage = u.oldUsage
		case undoRefresh:
			*u.account = u.oldAcct
			if u.hadBefore {
				tx.before[u.account.ID] = u.oldBefore
			}
		case undoHold:
			if u.oldHold == nil {
				delete(tx.w.holds, u.holdID)
			} else {
				tx.w.holds[u.holdID] = u.oldHold
			}
		case undoLogHead:
			if u.hadBefore {
				tx.logHead[u.payID] = u.oldHead
			} else {
				delete(tx.logHead, u.payID)
			}
		case undoPaymentNew:
			delete(tx.payIdx, u.payID)
			tx.restorePayment(u.payID, u.oldPay)
		case undoPaymentUpdate:
			b.Payments[u.idx] = u.oldVal
			tx.restorePayment(u.payID, u.oldPay)
		case undoMark:
			b.Transfers = b.Transfers[:u.lens[0]]
			b.Payments = b.Payments[:u.lens[1]]
			b.PaymentVersions = b.PaymentVersions[:u.lens[1]]
			b.Refunds = b.Refunds[:u.lens[2]]
			b.Topups = b.Topups[:u.lens[3]]
			b.Users = b.Users[:u.lens[4]]
			b.Merchants = b.Merchants[:u.lens[5]]
			b.Agents = b.Agents[:u.lens[6]]
			b.APIKeys = b.APIKeys[:u.lens[7]]
			b.TOTP = b.TOTP[:u.lens[8]]
			b.Passkeys = b.Passkeys[:u.lens[9]]
			b.Log = b.Log[:u.lens[10]]
			b.Disputes = b.Disputes[:u.lens[11]]
		}
	}
	tx.undo = tx.undo[:mark]
}

func (tx *Tx) restorePayment(id string, old *pb.Payment) {
	if old == nil {
		delete(tx.w.payments, id)
	} else {
		tx.w.payments[id] = old
	}
}

// touch records acct's state before a change: once per batch for the
// invariant check, and once per change for the undo log.
func (tx *Tx) touch(a *pb.Account) {
	if _, ok := tx.before[a.ID]; !ok {
		tx.before[a.ID] = *a
	}
	tx.undo = append(tx.undo, undoEntry{kind: undoAccount, account: a, oldAcct: *a})
}

// Account returns the account of owner in currency, or an ErrNotFound error
// when it does not exist. The pointer is the writer's; change it only through
// Tx methods.
func (tx *Tx) Account(owner, currency string) (*pb.Account, error) {
	w := tx.w
	if a, ok := w.accounts[accountKey{owner, currency}]; ok {
		return a, nil
	}
	a, err := w.cfg.Store.Account(tx.ctx, owner, currency)
	if err != nil {
		return nil, err
	}
	w.cache(a)
	return a, nil
}

func (w *Writer) cache(a *pb.Account) {
	w.accounts[accountKey{a.Owner, a.Currency}] = a
	w.accountsByID[a.ID] = a
}

func (tx *Tx) accountByID(id int64) (*pb.Account, error) {
	if a, ok := tx.w.accountsByID[id]; ok {
		return a, nil
	}
	a, err := tx.w.cfg.Store.AccountByID(tx.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("couldn't load account %d: %w", id, err)
	}
	tx.w.cache(a)
	return a, nil
}

// EnsureAccount returns the account of owner in currency, creating it with
// flags if it does not exist yet. An existing account keeps its flags.
func (tx *Tx) EnsureAccount(owner, currency string, flags pb.AccountFlags) (*pb.Account, error) {
	a, err := tx.Account(owner, currency)
	if err == nil {
		return a, nil
	}
	if pb.ErrorCode(err) != pb.ErrNotFound {
		return nil, err
	}
	id, err := tx.w.takeID(tx.ctx, false)
	if err != nil {
		return nil, err
	}
	a = &pb.Account{ID: id, Owner: owner, Currency: currency, Flags: flags}
	tx.w.cache(a)
	// A new account is written with the batch even if the op that made it
	// fails: it is empty, and other ops may already use it.
	tx.before[a.ID] = *a
	if tx.created == nil {
		tx.created = map[int64]bool{}
	}
	tx.created[a.ID] = true
	return a, nil
}

func checkPair(debit, credit *pb.Account, amount int64) error {
	if debit.Currency != credit.Currency {
		return fmt.Errorf("ledger: transfer between %s and %s accounts", debit.Currency, credit.Currency)
	}
	if debit.ID == credit.ID {
		return errors.New("ledger: transfer from an account to itself")
	}
	return pb.ValidateAmount(amount, "amount")
}

func firstErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// canDebit reports whether a may be debited amount more (posted or pending).
func canDebit(a *pb.Account, amount int64) bool {
	if a.Flags&DebitsMustNotExceedCredits == 0 {
		return true
	}
	return a.DebitsPosted+a.DebitsPending+amount <= a.CreditsPosted
}

// DebitsMustNotExceedCredits re-exports the account flag for callers.
const DebitsMustNotExceedCredits = pb.DebitsMustNotExceedCredits

func (tx *Tx) newTransfer(t pb.Transfer) (int64, error) {
	id, err := tx.w.takeID(tx.ctx, true)
	if err != nil {
		return 0, err
	}
	t.ID = id
	t.CreatedAt = tx.now
	tx.batch.Transfers = append(tx.batch.Transfers, t)
	return t.ID, nil
}

// ensureFunds reports whether debit may be debited amount more. With a
// shared store, a refusal is first checked against the stored balance:
// another process may have credited the account since it was cached, and a
// payment must never be declined for money that is there.
func (tx *Tx) ensureFunds(debit *pb.Account, amount int64) (bool, error) {
	if canDebit(debit, amount) {
		return true, nil
	}
	if tx.w.shared == nil {
		return false, nil
	}
	fresh, err := tx.w.cfg.Store.AccountByID(tx.ctx, debit.ID)
	if err != nil {
		if pb.ErrorCode(err) == pb.ErrNotFound {
			return false, nil // created by this writer, not yet committed
		}
		return false, fmt.Errorf("couldn't read account %d: %w", debit.ID, err)
	}
	tx.refresh(debit, fresh)
	return canDebit(debit, amount), nil
}

// refresh rebases a on its freshly read committed state: what this writer
// has changed and not yet committed stays on top. The undo log can revert it,
// together with the batch's record of a as found.
func (tx *Tx) refresh(a *pb.Account, fresh *pb.Account) {
	base, touched := tx.before[a.ID]
	if !touched {
		base = *a
	}
	tx.undo = append(tx.undo, undoEntry{kind: undoRefresh, account: a, oldAcct: *a, oldBefore: base, hadBefore: touched})
	a.DebitsPending += fresh.DebitsPending - base.DebitsPending
	a.DebitsPosted += fresh.DebitsPosted - base.DebitsPosted
	a.CreditsPending += fresh.CreditsPending - base.CreditsPending
	a.CreditsPosted += fresh.CreditsPosted - base.CreditsPosted
	if touched {
		tx.before[a.ID] = *fresh
	}
}

// overflows reports whether adding amount to any of vs would overflow.
func overflows(amount int64, vs ...int64) bool {
	for _, v := range vs {
		if v > (1<<63-1)-amount {
			return true
		}
	}
	return false
}

var errOverflow = &pb.Error{Code: pb.ErrAmountTooLarge, Message: "the balance would exceed the ledger's range"}

// Transfer moves amount from debit to credit at once and returns the
// transfer ID. It fails with ErrInsufficientFunds, changing nothing, when
// debit must not go negative and would.
func (tx *Tx) Transfer(debit, credit *pb.Account, amount int64, ref string) (int64, error) {
	if err := checkPair(debit, credit, amount); err != nil {
		return 0, err
	}
	if ok, err := tx.ensureFunds(debit, amount); err != nil || !ok {
		return 0, firstErr(err, ErrInsufficientFunds)
	}
	if overflows(amount, debit.DebitsPosted, credit.CreditsPosted) {
		return 0, errOverflow
	}
	tx.touch(debit)
	tx.touch(credit)
	debit.DebitsPosted += amount
	credit.CreditsPosted += amount
	return tx.newTransfer(pb.Transfer{Kind: pb.TransferPosted, DebitAccountID: debit.ID,
		CreditAccountID: credit.ID, Amount: amount, Currency: debit.Currency, Ref: ref})
}

// Hold reserves amount from debit for credit until timeout (a pending
// transfer) and returns its ID. The amount counts against debit's available
// balance at once. Fails with ErrInsufficientFunds, changing nothing.
func (tx *Tx) Hold(debit, credit *pb.Account, amount int64, timeout time.Time, ref string) (int64, error) {
	if err := checkPair(debit, credit, amount); err != nil {
		return 0, err
	}
	if ok, err := tx.ensureFunds(debit, amount); err != nil || !ok {
		return 0, firstErr(err, ErrInsufficientFunds)
	}
	if overflows(amount, debit.DebitsPending, credit.CreditsPending) {
		return 0, errOverflow
	}
	tx.touch(debit)
	tx.touch(credit)
	debit.DebitsPending += amount
	credit.CreditsPending += amount
	t := pb.Transfer{Kind: pb.TransferPending, DebitAccountID: debit.ID, CreditAccountID: credit.ID,
		Amount: amount, Currency: debit.Currency, Timeout: timeout.UTC(), Ref: ref}
	id, err := tx.newTransfer(t)
	if err != nil {
		return 0, err
	}
	t.ID, t.CreatedAt = id, tx.now
	tx.setHold(id, &hold{t: t})
	return id, nil
}

func (tx *Tx) setHold(id int64, h *hold) {
	tx.undo = append(tx.undo, undoEntry{kind: undoHold, holdID: id, oldHold: tx.w.holds[id]})
	tx.w.holds[id] = h
}

func (tx *Tx) openHold(id int64) (*hold, error) {
	h, ok := tx.w.holds[id]
	if !ok {
		t, resolved, err := tx.w.cfg.Store.PendingTransfer(tx.ctx, id)
		if err != nil {
			return nil, fmt.Errorf("couldn't load hold %d: %w", id, err)
		}
		h = &hold{t: *t, resolved: resolved}
		tx.w.holds[id] = h
	}
	if h.resolved {
		return nil, ErrHoldResolved
	}
	return h, nil
}

// Post settles hold holdID: amount (at most the held amount) moves from the
// debit to the credit account, and the whole hold is released. A hold is
// posted or voided at most once; one past its timeout fails with
// ErrHoldExpired and must be voided instead.
func (tx *Tx) Post(holdID, amount int64, ref string) (int64, error) {
	h, err := tx.openHold(holdID)
	if err != nil {
		return 0, err
	}
	if amount <= 0 || amount > h.t.Amount {
		return 0, pb.Errorf(pb.ErrAmountTooLarge, "amount", "the amount to post must be between 1 and the held %d", h.t.Amount)
	}
	if !h.t.Timeout.IsZero() && !tx.now.Before(h.t.Timeout) {
		return 0, ErrHoldExpired
	}
	debit, credit, err := tx.release(holdID, h)
	if err != nil {
		return 0, err
	}
	debit.DebitsPosted += amount
	credit.CreditsPosted += amount
	return tx.newTransfer(pb.Transfer{Kind: pb.TransferPost, DebitAccountID: debit.ID, CreditAccountID: credit.ID,
		Amount: amount, Currency: h.t.Currency, PendingID: holdID, Ref: ref})
}

// release takes hold h's amount out of both accounts' pending balances and
// marks it resolved; the caller records the post or void transfer.
func (tx *Tx) release(holdID int64, h *hold) (debit, credit *pb.Account, err error) {
	if debit, err = tx.accountByID(h.t.DebitAccountID); err != nil {
		return nil, nil, err
	}
	if credit, err = tx.accountByID(h.t.CreditAccountID); err != nil {
		return nil, nil, err
	}
	tx.touch(debit)
	tx.touch(credit)
	debit.DebitsPending -= h.t.Amount
	credit.CreditsPending -= h.t.Amount
	tx.setHold(holdID, &hold{t: h.t, resolved: true})
	return debit, credit, nil
}

// Void releases hold holdID, at most once. Expiring a hold is a void.
func (tx *Tx) Void(holdID int64, ref string) (int64, error) {
	h, err := tx.openHold(holdID)
	if err != nil {
		return 0, err
	}
	debit, credit, err := tx.release(holdID, h)
	if err != nil {
		return 0, err
	}
	return tx.newTransfer(pb.Transfer{Kind: pb.TransferVoid, DebitAccountID: debit.ID, CreditAccountID: credit.ID,
		Amount: h.t.Amount, Currency: h.t.Currency, PendingID: holdID, Ref: ref})
}

// Payment returns a copy of payment id as of this point in the batch, or an
// ErrNotFound error.
func (tx *Tx) Payment(id string) (pb.Payment, error) {
	if p, ok := tx.w.payments[id]; ok {
		return *p, nil
	}
	p, err := tx.w.cfg.Store.Payment(tx.ctx, id)
	if err != nil {
		return pb.Payment{}, err
	}
	tx.w.payments[id] = p
	return *p, nil
}

// PutPayment records p (new or changed) to be written with the batch. Every
// change to a payment is logged: p must carry a new LogHead from
// LogPayment, or PutPayment panics (failing the operation alone).
func (tx *Tx) PutPayment(p pb.Payment) {
	if tx.payIdx == nil {
		tx.payIdx = map[string]int{}
	}
	old := tx.w.payments[p.ID]
	if head, ok := tx.logHead[p.ID]; !ok || head != p.LogHead || (old != nil && old.LogHead == p.LogHead) {
		panic(fmt.Sprintf("ledger: payment %s changed without its latest log entry", p.ID))
	}
	p.Version = 1
	if old != nil {
		p.Version = old.Version + 1
	}
	if idx, ok := tx.payIdx[p.ID]; ok {
		tx.undo = append(tx.undo, undoEntry{kind: undoPaymentUpdate, payID: p.ID, oldPay: old, idx: idx, oldVal: tx.batch.Payments[idx]})
		tx.batch.Payments[idx] = p
	} else {
		tx.undo = append(tx.undo, undoEntry{kind: undoPaymentNew, payID: p.ID, oldPay: old})
		tx.payIdx[p.ID] = len(tx.batch.Payments)
		tx.batch.Payments = append(tx.batch.Payments, p)
		tx.batch.PaymentVersions = append(tx.batch.PaymentVersions, p.Version-1)
	}
	tx.w.payments[p.ID] = &p
}

// AddRefund, AddTopup, AddUser, AddMerchant, AddAgent and AddAPIKey record
// new rows to be written with the batch.
func (tx *Tx) AddRefund(r pb.Refund)     { tx.batch.Refunds = append(tx.batch.Refunds, r) }
func (tx *Tx) AddTopup(t pb.Topup)       { tx.batch.Topups = append(tx.batch.Topups, t) }
func (tx *Tx) AddUser(u pb.User)         { tx.batch.Users = append(tx.batch.Users, u) }
func (tx *Tx) AddMerchant(m pb.Merchant) { tx.batch.Merchants = append(tx.batch.Merchants, m) }
func (tx *Tx) AddAgent(a pb.Agent)       { tx.batch.Agents = append(tx.batch.Agents, a) }
func (tx *Tx) AddAPIKey(k pb.APIKey)     { tx.batch.APIKeys = append(tx.batch.APIKeys, k) }

// HasAgentKey reports whether keyid is registered, in the store or earlier
// in this batch: a key signs for one agent only.
func (tx *Tx) HasAgentKey(keyid string) (bool, error) {
	for _, k := range tx.batch.AgentKeys {
		if k.KeyID == keyid {
			return true, nil
		}
	}
	_, err := tx.w.cfg.Store.AgentKey(tx.ctx, keyid)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// AddAgentKey records an agent signing key, new or changed (not undone by
// Atomic: call it outside one).
func (tx *Tx) AddAgentKey(k pb.AgentKey) { tx.batch.AgentKeys = append(tx.batch.AgentKeys, k) }

// checkInvariants asserts, for the accounts this batch touched, that each
// currency's net posted and net pending changes sum to zero and, when
// absolute is set, that no total is negative and no account that must not go
// negative does. With a shared store the cached balances may lag other
// processes' changes, so the absolute checks are the store's: its
// constraints refuse the batch, which is then recomputed from fresh state.
func (tx *Tx) checkInvariants(absolute bool) error {
	type sums struct{ posted, pending int64 }
	net := map[string]sums{}
	for id, old := range tx.before {
		a := tx.w.accountsByID[id]
		if a == nil {
			return fmt.Errorf("ledger invariant: touched account %d left the cache", id)
		}
		s := net[a.Currency]
		s.posted += (a.CreditsPosted - a.DebitsPosted) - (old.CreditsPosted - old.DebitsPosted)
		s.pending += (a.CreditsPending - a.DebitsPending) - (old.CreditsPending - old.DebitsPending)
		net[a.Currency] = s
		if !absolute {
			continue
		}
		if a.DebitsPending < 0 || a.CreditsPending < 0 || a.DebitsPosted < 0 || a.CreditsPosted < 0 {
			return fmt.Errorf("ledger invariant: account %d has a negative total: %+v", id, *a)
		}
		if a.Flags&pb.DebitsMustNotExceedCredits != 0 && a.DebitsPosted+a.DebitsPending > a.CreditsPosted {
			return fmt.Errorf("ledger invariant: account %d went negative: %+v", id, *a)
		}
	}
	for cur, s := range net {
		if s.posted != 0 || s.pending != 0 {
			return fmt.Errorf("ledger invariant: %s does not sum to zero in this batch (posted %+d, pending %+d)", cur, s.posted, s.pending)
		}
	}
	return nil
}

type usageKey struct{ mandate, period string }

// ErrUsageCap is returned by AdjustUsage when a change would take a usage
// row past its cap (or below zero); nothing changes.
var ErrUsageCap = errors.New("ledger: the mandate's budget or payment cap would be passed")

// Usage returns the usage row of mandateID in period key: cached, stored, or
// a new empty one with the given caps. Change it only through AdjustUsage.
func (tx *Tx) Usage(mandateID, key string, capAmount, capPayments int64) (*pb.MandateUsageRow, error) {
	k := usageKey{mandateID, key}
	if u, ok := tx.w.usage[k]; ok {
		return u, nil
	}
	u, err := tx.w.cfg.Store.MandateUsage(tx.ctx, mandateID, key)
	switch {
	case pb.ErrorCode(err) == pb.ErrNotFound:
		u = &pb.MandateUsageRow{MandateID: mandateID, PeriodKey: key, CapAmount: capAmount, CapPayments: capPayments}
		tx.w.usageNew[k] = true // not stored yet: the commit that writes it inserts it
	case err != nil:
		return nil, fmt.Errorf("couldn't load mandate usage: %w", err)
	}
	tx.w.usage[k] = u
	return u, nil
}

// AdjustUsage adds spent (minor units; negative gives budget back) and
// payments to u, or fails with ErrUsageCap, changing nothing. With a shared
// store, a refusal is first checked against the stored row, as for funds.
func (tx *Tx) AdjustUsage(u *pb.MandateUsageRow, spent, payments int64) error {
	fits := func() bool {
		s, n := u.Spent+spent, u.Payments+payments
		return s >= 0 && s <= u.CapAmount && n >= 0 && (u.CapPayments == 0 || n <= u.CapPayments)
	}
	k := usageKey{u.MandateID, u.PeriodKey}
	if !fits() && tx.w.shared != nil && !tx.w.usageNew[k] {
		fresh, err := tx.w.cfg.Store.MandateUsage(tx.ctx, u.MandateID, u.PeriodKey)
		if err != nil && pb.ErrorCode(err) != pb.ErrNotFound {
			return fmt.Errorf("couldn't read mandate usage: %w", err)
		}
		if err == nil {
			base, touched := tx.usageBefore[k]
			if !touched {
				base = *u
			}
			tx.undo = append(tx.undo, undoEntry{kind: undoUsage, usage: u, oldUsage: *u})
			u.Spent += fresh.Spent - base.Spent
			u.Payments += fresh.Payments - base.Payments
			if touched {
				tx.usageBefore[k] = *fresh
			}
		}
	}
	if !fits() {
		return ErrUsageCap
	}
	if tx.usageBefore == nil {
		tx.usageBefore = map[usageKey]pb.MandateUsageRow{}
	}
	if _, ok := tx.usageBefore[k]; !ok {
		tx.usageBefore[k] = *u
	}
	tx.undo = append(tx.undo, undoEntry{kind: undoUsage, usage: u, oldUsage: *u})
	u.Spent += spent
	u.Payments += payments
	return nil
}

// Mandate returns mandate id as of this point in the batch (stored
// mandates change only by revocation, which goes through PutMandate).
func (tx *Tx) Mandate(id string) (pb.Mandate, error) {
	if m, ok := tx.w.mandates[id]; ok {
		return *m, nil
	}
	m, err := tx.w.cfg.Store.Mandate(tx.ctx, id)
	if err != nil {
		return pb.Mandate{}, err
	}
	tx.w.mandates[id] = m
	return *m, nil
}

// PutMandate records a new or revoked mandate. Not undone by Atomic: call
// it outside one.
func (tx *Tx) PutMandate(m pb.Mandate) {
	tx.w.mandates[m.ID] = &m
	tx.batch.Mandates = append(tx.batch.Mandates, m)
}

// TOTP returns a user's one-time-code factor as of this point in the batch,
// or an ErrNotFound error.
func (tx *Tx) TOTP(userID string) (pb.TOTPFactor, error) {
	for i := len(tx.batch.TOTP) - 1; i >= 0; i-- {
		if tx.batch.TOTP[i].UserID == userID {
			return tx.batch.TOTP[i], nil
		}
	}
	f, err := tx.w.cfg.Store.TOTP(tx.ctx, userID)
	if err != nil {
		return pb.TOTPFactor{}, err
	}
	return *f, nil
}

// PutTOTP records a user's factor, new or changed, to be written with the
// batch.
func (tx *Tx) PutTOTP(f pb.TOTPFactor) { tx.batch.TOTP = append(tx.batch.TOTP, f) }

// PutPasskey records a user's passkey, new or with its counter moved, to be
// written with the batch.
func (tx *Tx) PutPasskey(k pb.Passkey) { tx.batch.Passkeys = append(tx.batch.Passkeys, k) }

// UseNonce records a signed request's nonce in this batch, or fails with
// ErrNonceUsed when this writer or the store has it already (after a
// restart, or from another process).
func (tx *Tx) UseNonce(n pb.Nonce) error {
	for _, m := range tx.batch.Nonces {
		if m.KeyID == n.KeyID && m.Nonce == n.Nonce {
			return ErrNonceUsed
		}
	}
	seen, err := tx.w.cfg.Store.NonceSeen(tx.ctx, n.KeyID, n.Nonce)
	if err != nil {
		return fmt.Errorf("couldn't look up the nonce: %w", err)
	}
	if seen {
		return ErrNonceUsed
	}
	tx.batch.Nonces = append(tx.batch.Nonces, n)
	return nil
}

// ErrNonceUsed is returned by UseNonce for a nonce already used.
var ErrNonceUsed = errors.New("ledger: the nonce was used before")
