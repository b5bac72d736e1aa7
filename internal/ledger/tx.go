package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// changes lists every change made to an account's balances in this
	// batch, and changed sums them per account: what the batch writes is
	// the sum of the changes actually applied, never a difference of
	// snapshots, so rebasing a cached account on fresh state (ensureFunds)
	// cannot enter it. rollback truncates changes to a mark and subtracts
	// what it drops from changed, so both undo themselves.
	changes []accountChange
	changed map[int64]*pb.AccountChange
	// found is each changed account as cached before its first change (or
	// as rebased on fresh state since), for the invariant check alone: the
	// cache must have moved by exactly the listed changes.
	found map[int64]pb.Account
	// usageChanges and usageChanged are the same for mandate usage rows.
	usageChanges []usageChange
	usageChanged map[usageKey]*pb.UsageChange
	// logHead is the leaf hash of each subject's latest entry in this batch:
	// PutPayment accepts a payment only with its latest entry as head.
	logHead map[string][32]byte
	undo    []undoEntry
}

type accountChange struct {
	id                                                         int64
	debitsPending, debitsPosted, creditsPending, creditsPosted int64
}

type usageChange struct {
	k               usageKey
	spent, payments int64
}

type undoKind uint8

const (
	undoAccount undoKind = iota
	undoHold
	undoPaymentNew
	undoPaymentUpdate
	undoMark    // the lengths of the batch's append-only lists at a mark
	undoUsage   // a mandate usage row's previous value
	undoFound   // an account's previous record in found (account; oldAcct, hadBefore)
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
	lens    [marked]int
	// For undoUsage.
	usage    *pb.MandateUsageRow
	oldUsage pb.MandateUsageRow
	// For undoLogHead.
	oldHead   [32]byte
	hadBefore bool
}

// The lists a mark records the lengths of, and rollback truncates.
const (
	mTransfers = iota
	mPayments
	mRefunds
	mTopups
	mUsers
	mMerchants
	mAgents
	mAPIKeys
	mTOTP
	mPasskeys
	mLog
	mDisputes
	mMandatesChecked
	mCodeFailures
	mAccountChanges
	mUsageChanges
	marked
)

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
	var l [marked]int
	l[mTransfers], l[mPayments], l[mRefunds], l[mTopups] = len(b.Transfers), len(b.Payments), len(b.Refunds), len(b.Topups)
	l[mUsers], l[mMerchants], l[mAgents], l[mAPIKeys] = len(b.Users), len(b.Merchants), len(b.Agents), len(b.APIKeys)
	l[mTOTP], l[mPasskeys], l[mLog], l[mDisputes] = len(b.TOTP), len(b.Passkeys), len(b.Log), len(b.Disputes)
	l[mMandatesChecked], l[mCodeFailures] = len(b.MandatesChecked), len(b.CodeFailures)
	l[mAccountChanges], l[mUsageChanges] = len(tx.changes), len(tx.usageChanges)
	tx.undo = append(tx.undo, undoEntry{kind: undoMark, lens: l})
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
		case undoFound:
			if u.hadBefore {
				tx.found[u.account.ID] = u.oldAcct
			} else {
				delete(tx.found, u.account.ID)
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
			l := u.lens
			b.Transfers = b.Transfers[:l[mTransfers]]
			b.Payments = b.Payments[:l[mPayments]]
			b.PaymentVersions = b.PaymentVersions[:l[mPayments]]
			b.Refunds = b.Refunds[:l[mRefunds]]
			b.Topups = b.Topups[:l[mTopups]]
			b.Users = b.Users[:l[mUsers]]
			b.Merchants = b.Merchants[:l[mMerchants]]
			b.Agents = b.Agents[:l[mAgents]]
			b.APIKeys = b.APIKeys[:l[mAPIKeys]]
			b.TOTP = b.TOTP[:l[mTOTP]]
			b.Passkeys = b.Passkeys[:l[mPasskeys]]
			b.Log = b.Log[:l[mLog]]
			b.Disputes = b.Disputes[:l[mDisputes]]
			b.MandatesChecked = b.MandatesChecked[:l[mMandatesChecked]]
			b.CodeFailures = b.CodeFailures[:l[mCodeFailures]]
			for _, c := range tx.changes[l[mAccountChanges]:] {
				s := tx.changed[c.id]
				s.DebitsPending -= c.debitsPending
				s.DebitsPosted -= c.debitsPosted
				s.CreditsPending -= c.creditsPending
				s.CreditsPosted -= c.creditsPosted
			}
			tx.changes = tx.changes[:l[mAccountChanges]]
			for _, c := range tx.usageChanges[l[mUsageChanges]:] {
				s := tx.usageChanged[c.k]
				s.Spent -= c.spent
				s.Payments -= c.payments
			}
			tx.usageChanges = tx.usageChanges[:l[mUsageChanges]]
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

// change applies a change to a's balances, the only way they change in a
// batch: the cached account moves (undone by the undo log) and the change is
// listed (undone by truncation at a mark), so both always agree.
func (tx *Tx) change(a *pb.Account, debitsPending, debitsPosted, creditsPending, creditsPosted int64) {
	if _, ok := tx.found[a.ID]; !ok {
		tx.undo = append(tx.undo, undoEntry{kind: undoFound, account: a})
		tx.found[a.ID] = *a
	}
	tx.undo = append(tx.undo, undoEntry{kind: undoAccount, account: a, oldAcct: *a})
	a.DebitsPending += debitsPending
	a.DebitsPosted += debitsPosted
	a.CreditsPending += creditsPending
	a.CreditsPosted += creditsPosted
	tx.changes = append(tx.changes, accountChange{a.ID, debitsPending, debitsPosted, creditsPending, creditsPosted})
	s := tx.changed[a.ID]
	if s == nil {
		s = &pb.AccountChange{}
		tx.changed[a.ID] = s
	}
	s.DebitsPending += debitsPending
	s.DebitsPosted += debitsPosted
	s.CreditsPending += creditsPending
	s.CreditsPosted += creditsPosted
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
	if tx.changed[a.ID] == nil {
		tx.changed[a.ID] = &pb.AccountChange{}
	}
	tx.changed[a.ID].Created = true
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

// HasFunds reports whether a may be debited amount more, confirming a "no"
// against the stored balance with a shared store, as Hold and Transfer do:
// for a decline made before any hold is placed.
func (tx *Tx) HasFunds(a *pb.Account, amount int64) (bool, error) { return tx.ensureFunds(a, amount) }

// refresh rebases a on its freshly read committed state: the stored
// balances plus what this batch has changed so far (batches do not overlap
// with a shared store, so nothing else of this writer's is uncommitted). It
// moves only the cache, never what the batch writes; the undo log can
// revert it.
func (tx *Tx) refresh(a *pb.Account, fresh *pb.Account) {
	tx.undo = append(tx.undo, undoEntry{kind: undoAccount, account: a, oldAcct: *a})
	var c pb.AccountChange
	if s := tx.changed[a.ID]; s != nil {
		c = *s
	}
	a.DebitsPending = fresh.DebitsPending + c.DebitsPending
	a.DebitsPosted = fresh.DebitsPosted + c.DebitsPosted
	a.CreditsPending = fresh.CreditsPending + c.CreditsPending
	a.CreditsPosted = fresh.CreditsPosted + c.CreditsPosted
	if old, ok := tx.found[a.ID]; ok {
		tx.undo = append(tx.undo, undoEntry{kind: undoFound, account: a, oldAcct: old, hadBefore: true})
		f := *fresh
		f.Flags = a.Flags
		tx.found[a.ID] = f
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
	tx.change(debit, 0, amount, 0, 0)
	tx.change(credit, 0, 0, 0, amount)
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
	tx.change(debit, amount, 0, 0, 0)
	tx.change(credit, 0, 0, amount, 0)
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
	tx.change(debit, 0, amount, 0, 0)
	tx.change(credit, 0, 0, 0, amount)
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
	tx.change(debit, -h.t.Amount, 0, 0, 0)
	tx.change(credit, 0, 0, -h.t.Amount, 0)
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

// checkInvariants asserts, for the accounts this batch changed, that each
// currency's net posted and net pending changes sum to zero and, when
// absolute is set, that no total is negative and no account that must not go
// negative does. With a shared store the cached balances may lag other
// processes' changes, so the absolute checks are the store's: its
// constraints refuse the batch, which is then recomputed from fresh state.
func (tx *Tx) checkInvariants(absolute bool) error {
	type sums struct{ posted, pending int64 }
	net := map[string]sums{}
	for id, c := range tx.changed {
		a := tx.w.accountsByID[id]
		if a == nil {
			return fmt.Errorf("ledger invariant: changed account %d left the cache", id)
		}
		s := net[a.Currency]
		s.posted += c.CreditsPosted - c.DebitsPosted
		s.pending += c.CreditsPending - c.DebitsPending
		net[a.Currency] = s
		if f, ok := tx.found[id]; ok && (a.DebitsPending != f.DebitsPending+c.DebitsPending || a.DebitsPosted != f.DebitsPosted+c.DebitsPosted ||
			a.CreditsPending != f.CreditsPending+c.CreditsPending || a.CreditsPosted != f.CreditsPosted+c.CreditsPosted) {
			return fmt.Errorf("ledger invariant: account %d moved by more than the batch's changes: %+v, was %+v, changes %+v", id, *a, f, *c)
		}
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
	case err != nil:
		return nil, fmt.Errorf("couldn't load mandate usage: %w", err)
	}
	tx.w.usage[k] = u
	return u, nil
}

// usageFits reports whether u may take spent and payments more. Each cap
// is checked in the direction of the change only: giving budget back must
// never be refused for the cap. With a shared store, u may be above its cap
// for the moment: rebased on the stored row (RefreshUsage) after this batch
// reserved on a cache that lagged another process's reservations. The
// store then refuses the batch unless it gives enough back before it
// commits, so what the batch gives back meanwhile must go through.
func usageFits(u *pb.MandateUsageRow, spent, payments int64) bool {
	s, n := u.Spent+spent, u.Payments+payments
	switch {
	case spent > 0 && s > u.CapAmount, spent < 0 && s < 0:
		return false
	case payments > 0 && u.CapPayments != 0 && n > u.CapPayments, payments < 0 && n < 0:
		return false
	}
	return true
}

// AdjustUsage adds spent (minor units; negative gives budget back) and
// payments to u, or fails with ErrUsageCap, changing nothing. With a shared
// store, a refusal is first checked against the stored row, as for funds.
func (tx *Tx) AdjustUsage(u *pb.MandateUsageRow, spent, payments int64) error {
	if !usageFits(u, spent, payments) {
		if err := tx.RefreshUsage(u); err != nil {
			return err
		}
		if !usageFits(u, spent, payments) {
			return ErrUsageCap
		}
	}
	k := usageKey{u.MandateID, u.PeriodKey}
	tx.undo = append(tx.undo, undoEntry{kind: undoUsage, usage: u, oldUsage: *u})
	u.Spent += spent
	u.Payments += payments
	tx.usageChanges = append(tx.usageChanges, usageChange{k, spent, payments})
	c := tx.usageChanged[k]
	if c == nil {
		c = &pb.UsageChange{}
		tx.usageChanged[k] = c
	}
	c.Spent += spent
	c.Payments += payments
	return nil
}

// RefreshUsage rebases u, with a shared store, on its stored row plus what
// this batch has changed in it so far: other processes may have spent from
// the mandate, or given budget back, since u was cached. A decline for a
// mandate's budget or payment count must be confirmed this way, as one for
// funds is. It moves only the cache, never what the batch writes. With a
// store of its own the cache is exact and RefreshUsage does nothing.
func (tx *Tx) RefreshUsage(u *pb.MandateUsageRow) error {
	if tx.w.shared == nil {
		return nil
	}
	fresh, err := tx.w.cfg.Store.MandateUsage(tx.ctx, u.MandateID, u.PeriodKey)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		fresh, err = &pb.MandateUsageRow{}, nil
	}
	if err != nil {
		return fmt.Errorf("couldn't read mandate usage: %w", err)
	}
	var c pb.UsageChange
	if s := tx.usageChanged[usageKey{u.MandateID, u.PeriodKey}]; s != nil {
		c = *s
	}
	tx.undo = append(tx.undo, undoEntry{kind: undoUsage, usage: u, oldUsage: *u})
	u.Spent, u.Payments = fresh.Spent+c.Spent, fresh.Payments+c.Payments
	return nil
}

// RelyOnMandate records that an operation relied on mandate id being
// usable (not revoked) as read: with a shared store, the commit is refused
// if another process revoked it meanwhile, and the batch is recomputed on
// fresh state. Undone with the operation's Atomic.
func (tx *Tx) RelyOnMandate(id string) {
	tx.batch.MandatesChecked = append(tx.batch.MandatesChecked, id)
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

// FreshMandate is Mandate read again from a shared store (unless this batch
// changed it): for a change to the mandate, which must start from what
// other processes did to it (a revocation is made once). With a store of
// its own it is Mandate.
func (tx *Tx) FreshMandate(id string) (pb.Mandate, error) {
	if tx.w.shared != nil && !slices.ContainsFunc(tx.batch.Mandates, func(m pb.Mandate) bool { return m.ID == id }) {
		delete(tx.w.mandates, id)
	}
	return tx.Mandate(id)
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

// CodeFailures returns how many wrong one-time codes were tried on
// confirmation id: stored (by any process) and in this batch.
func (tx *Tx) CodeFailures(id string) (int, error) {
	n, err := tx.w.cfg.Store.CodeFailures(tx.ctx, id)
	if err != nil {
		return 0, fmt.Errorf("couldn't read the confirmation's failures: %w", err)
	}
	for _, f := range tx.batch.CodeFailures {
		if f == id {
			n++
		}
	}
	return n, nil
}

// AddCodeFailure counts a wrong one-time code tried on confirmation id.
func (tx *Tx) AddCodeFailure(id string) { tx.batch.CodeFailures = append(tx.batch.CodeFailures, id) }

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
