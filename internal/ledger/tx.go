package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// Tx is an operation's view of the ledger inside a batch: the committed
// state plus every earlier operation of the batch. It is used only on the
// writer goroutine, during Op.
type Tx struct {
	w     *Writer
	ctx   context.Context
	now   time.Time
	batch pb.Batch
	// prev is the batch before this one while it may still be committing:
	// its rows are not necessarily in the store yet (InFlight).
	prev   *pb.Batch
	payIdx map[string]int
	// changed sums, per account, every change made to its balances in this
	// batch: what the batch writes is the sum of the changes actually
	// applied, never a difference of snapshots, so rebasing a cached account
	// on fresh state (ensureFunds) cannot enter it. Each change's undo entry
	// subtracts it again, so the sums undo themselves.
	changed map[int64]*pb.AccountChange
	// found is each changed account as cached before its first change (or
	// as rebased on fresh state since), for the invariant check alone: the
	// cache must have moved by exactly the listed changes.
	found map[int64]pb.Account
	// usageChanged is the same as changed for mandate usage rows.
	usageChanged map[usageKey]*pb.UsageChange
	// logHead is the leaf hash of each subject's latest entry in this batch:
	// PutPayment accepts a payment only with its latest entry as head.
	logHead map[string][32]byte
	// created are the payments first logged in this batch (Version 0, not
	// yet cached): the store has none of them, so Payment answers
	// ErrNotFound for one not yet put without reading it. Observers of a
	// new payment's entries (an auto-captured one's capture) ask.
	created map[string]bool
	// undo records how to take back each change the running operation made
	// to the batch and the writer's caches, oldest first; Atomic walks it
	// back to where it began. It is emptied when an operation ends.
	undo []undoEntry
}

// The undo log. Every write of an operation records its undo entry as it
// is made: rows reach the batch's lists only through appendUndoable, and
// balances, usage rows, holds, payments, mandates and log heads only
// through the Tx methods below, each of which records its entry. So Atomic
// takes back any mix of writes without a list of what a batch holds, and a
// list added to pb.Batch needs nothing here. A write that bypasses
// appendUndoable is caught where tests run (Config.PanicOnInvariant):
// rollback then checks every list of the batch, by reflection, and panics.
//
// Not undone, by design: an account created by EnsureAccount stays (empty,
// and perhaps already used by the caller), IDs taken are not given back,
// and what lookups loaded into the caches is committed state.

type undoKind uint8

const (
	undoAppend        undoKind = iota // a batch list grew (list; n: its length before)
	undoChange                        // an account's balances and the batch's sum moved (account; d: the change)
	undoRebase                        // an account's cache was rebased (account; d: its balances before)
	undoFound                         // an account's record in found (account; had, oldFound)
	undoUsage                         // a usage row and the batch's sum moved (usage; d[0], d[1]: spent, payments)
	undoUsageRebase                   // a usage row was rebased (usage; d[0], d[1]: spent, payments before)
	undoHold                          // a hold was placed or resolved (id; oldHold)
	undoPaymentNew                    // a payment entered the batch (key; oldPay)
	undoPaymentUpdate                 // a payment of the batch changed (key; n: its index; oldPay)
	undoLogHead                       // a subject's log head in this batch moved (key; had, oldHead)
	undoMandate                       // a mandate was put (key; oldMandate)
)

type undoEntry struct {
	kind       undoKind
	had        bool // the map held the key before
	n          int
	id         int64
	d          [4]int64
	list       truncater
	account    *pb.Account
	usage      *pb.MandateUsageRow
	key        string
	oldFound   *pb.Account
	oldHold    *hold
	oldPay     *pb.Payment
	oldMandate *pb.Mandate
	oldHead    [32]byte
}

// truncater is a batch list, of any element type, that an undo entry cuts
// back to an earlier length.
type truncater interface{ truncate(n int) }

type undoList[T any] []T

func (l *undoList[T]) truncate(n int) { *l = (*l)[:n] }

// appendUndoable appends v to *list, one of tx.batch's lists, recording the
// undo entry that cuts it back: the only way an operation adds a row to the
// batch. (The writer itself adds idempotency records and the final balances
// after operations end, where nothing is undone.)
func appendUndoable[T any](tx *Tx, list *[]T, v T) {
	tx.undo = append(tx.undo, undoEntry{kind: undoAppend, n: len(*list), list: (*undoList[T])(list)})
	*list = append(*list, v)
}

// Add appends v to the list of the batch that part picks, undoably: how a
// capability writes its own part of the batch without the engine knowing
// it. part must return a list of b (for example &b.WebhookEvents).
func Add[T any](tx *Tx, part func(b *pb.Batch) *[]T, v T) { appendUndoable(tx, part(&tx.batch), v) }

// Added returns what the batch's list that part picks holds so far: the
// rows this batch's earlier operations wrote, which the store does not have
// yet. The caller must not modify it.
func Added[T any](tx *Tx, part func(b *pb.Batch) *[]T) []T { return *part(&tx.batch) }

// InFlight returns what the list that part picks holds in the batch before
// this one, while that batch may still be committing: the writer applies a
// batch while the one before it commits, so a row that batch wrote may not
// be in the store yet, and an operation that read it from the store would
// see it as it was before. An operation that reads its capability's rows
// to change them looks in Added, then InFlight (the latest row wins in
// each), then the store. Nil when no batch is in flight (always, with a
// store that several processes share: their batches do not overlap). The
// caller must not modify it.
func InFlight[T any](tx *Tx, part func(b *pb.Batch) *[]T) []T {
	if tx.prev == nil {
		return nil
	}
	return *part(tx.prev)
}

// Latest returns the row whose key is id as the writer last wrote it: the
// last such row of this batch's list (Added), else of the batch still
// committing (InFlight). ok is false when neither holds one; the row is
// then the store's to give.
func Latest[T any](tx *Tx, part func(b *pb.Batch) *[]T, key func(*T) string, id string) (row T, ok bool) {
	for _, rows := range [2][]T{Added(tx, part), InFlight(tx, part)} {
		for i := len(rows) - 1; i >= 0; i-- {
			if key(&rows[i]) == id {
				return rows[i], true
			}
		}
	}
	return row, false
}

// Now is the batch's time: every operation in a batch sees the same instant.
func (tx *Tx) Now() time.Time { return tx.now }

// Context is the writer's context, for store lookups made by operations.
func (tx *Tx) Context() context.Context { return tx.ctx }

// Atomic runs fn; if fn returns an error or panics, everything fn did to
// the ledger and the batch is undone and the error returned. Transfers made
// in one Atomic are linked: all or nothing. Atomic blocks nest.
func (tx *Tx) Atomic(fn func() error) (err error) {
	mark := len(tx.undo)
	var lens []int
	if tx.w.cfg.PanicOnInvariant {
		lens = batchLens(&tx.batch)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.rollback(mark, lens)
			panic(p)
		}
		if err != nil {
			tx.rollback(mark, lens)
		}
	}()
	return fn()
}

// rollback undoes every entry from mark on, newest first. With lens (the
// batch's list lengths at mark, in tests), it then asserts that every list
// is back to its length: a write that bypassed the undo log panics there.
func (tx *Tx) rollback(mark int, lens []int) {
	b := &tx.batch
	for i := len(tx.undo) - 1; i >= mark; i-- {
		u := &tx.undo[i]
		switch u.kind {
		case undoAppend:
			u.list.truncate(u.n)
		case undoChange:
			tx.applyChange(u.account, u.d, -1)
		case undoRebase:
			setBalances(u.account, u.d)
		case undoFound:
			if u.had {
				tx.found[u.account.ID] = *u.oldFound
			} else {
				delete(tx.found, u.account.ID)
			}
		case undoUsage:
			tx.applyUsage(u.usage, u.d[0], u.d[1], -1)
		case undoUsageRebase:
			u.usage.Spent, u.usage.Payments = u.d[0], u.d[1]
		case undoHold:
			if u.oldHold == nil {
				delete(tx.w.holds, u.id)
			} else {
				tx.w.holds[u.id] = u.oldHold
			}
		case undoLogHead:
			if u.had {
				tx.logHead[u.key] = u.oldHead
			} else {
				delete(tx.logHead, u.key)
			}
		case undoPaymentNew:
			delete(tx.payIdx, u.key)
			tx.restorePayment(u.key, u.oldPay)
		case undoPaymentUpdate:
			// The batch's entry was the cached payment: PutPayment sets both.
			b.Payments[u.n] = *u.oldPay
			tx.restorePayment(u.key, u.oldPay)
		case undoMandate:
			if u.oldMandate == nil {
				delete(tx.w.mandates, u.key)
			} else {
				tx.w.mandates[u.key] = u.oldMandate
			}
		default:
			panic(fmt.Sprintf("ledger: unknown undo entry %d", u.kind))
		}
	}
	clear(tx.undo[mark:])
	tx.undo = tx.undo[:mark]
	if lens != nil {
		if f, ok := changedList(&tx.batch, lens); !ok {
			panic(fmt.Sprintf("ledger: Batch.%s was written without an undo entry (use appendUndoable)", f))
		}
	}
}

// batchLists yields each list of the batch b points to, by field name, in
// field order, looking into the parts that pb.Batch embeds (one level): a
// list added to a part, or a part added to pb.Batch, is covered without
// being named here. The values are addressable, so a caller may set them.
func batchLists(b *pb.Batch) iter.Seq2[string, reflect.Value] {
	return func(yield func(string, reflect.Value) bool) {
		v := reflect.ValueOf(b).Elem()
		for i := range v.NumField() {
			f, p := v.Type().Field(i), v.Field(i)
			if f.Anonymous && p.Kind() == reflect.Struct {
				for j := range p.NumField() {
					if l := p.Field(j); l.Kind() == reflect.Slice && !yield(p.Type().Field(j).Name, l) {
						return
					}
				}
			} else if p.Kind() == reflect.Slice && !yield(f.Name, p) {
				return
			}
		}
	}
}

// batchLens returns the length of each list of b, in batchLists's order.
func batchLens(b *pb.Batch) []int {
	var lens []int
	for _, l := range batchLists(b) {
		lens = append(lens, l.Len())
	}
	return lens
}

// changedList reports the first list of b whose length is not lens's.
func changedList(b *pb.Batch, lens []int) (string, bool) {
	i := 0
	for name, l := range batchLists(b) {
		if l.Len() != lens[i] {
			return name, false
		}
		i++
	}
	return "", true
}

func (tx *Tx) restorePayment(id string, old *pb.Payment) {
	if old == nil {
		delete(tx.w.payments, id)
	} else {
		tx.w.payments[id] = old
	}
}

// change applies a change to a's balances, the only way they change in a
// batch: the cached account and the batch's sum of a's changes move
// together, and one undo entry takes both back.
func (tx *Tx) change(a *pb.Account, debitsPending, debitsPosted, creditsPending, creditsPosted int64) {
	if _, ok := tx.found[a.ID]; !ok {
		tx.undo = append(tx.undo, undoEntry{kind: undoFound, account: a})
		tx.found[a.ID] = *a
	}
	d := [4]int64{debitsPending, debitsPosted, creditsPending, creditsPosted}
	tx.undo = append(tx.undo, undoEntry{kind: undoChange, account: a, d: d})
	tx.applyChange(a, d, 1)
}

// applyChange adds sign times d (debits pending, debits posted, credits
// pending, credits posted) to a's cached balances and to the batch's sum
// of a's changes.
func (tx *Tx) applyChange(a *pb.Account, d [4]int64, sign int64) {
	a.DebitsPending += sign * d[0]
	a.DebitsPosted += sign * d[1]
	a.CreditsPending += sign * d[2]
	a.CreditsPosted += sign * d[3]
	s := tx.changed[a.ID]
	if s == nil {
		s = &pb.AccountChange{}
		tx.changed[a.ID] = s
	}
	s.DebitsPending += sign * d[0]
	s.DebitsPosted += sign * d[1]
	s.CreditsPending += sign * d[2]
	s.CreditsPosted += sign * d[3]
}

func balances(a *pb.Account) [4]int64 {
	return [4]int64{a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted}
}

func setBalances(a *pb.Account, b [4]int64) {
	a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted = b[0], b[1], b[2], b[3]
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
	appendUndoable(tx, &tx.batch.Transfers, t)
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
	tx.undo = append(tx.undo, undoEntry{kind: undoRebase, account: a, d: balances(a)})
	var c pb.AccountChange
	if s := tx.changed[a.ID]; s != nil {
		c = *s
	}
	a.DebitsPending = fresh.DebitsPending + c.DebitsPending
	a.DebitsPosted = fresh.DebitsPosted + c.DebitsPosted
	a.CreditsPending = fresh.CreditsPending + c.CreditsPending
	a.CreditsPosted = fresh.CreditsPosted + c.CreditsPosted
	if old, ok := tx.found[a.ID]; ok {
		tx.undo = append(tx.undo, undoEntry{kind: undoFound, account: a, had: true, oldFound: &old})
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
		return 0, cmp.Or[error](err, ErrInsufficientFunds)
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
// debit must not be a merchant's own account (owned by its mch_ ID), which
// fails with ErrMerchantHold: the settlement report reads a merchant's
// debits as posted transfers only (migration 0023).
func (tx *Tx) Hold(debit, credit *pb.Account, amount int64, timeout time.Time, ref string) (int64, error) {
	if err := checkPair(debit, credit, amount); err != nil {
		return 0, err
	}
	if strings.HasPrefix(debit.Owner, pb.PrefixMerchant) {
		return 0, ErrMerchantHold
	}
	if ok, err := tx.ensureFunds(debit, amount); err != nil || !ok {
		return 0, cmp.Or[error](err, ErrInsufficientFunds)
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
	tx.undo = append(tx.undo, undoEntry{kind: undoHold, id: id, oldHold: tx.w.holds[id]})
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
	if tx.created[id] {
		return pb.Payment{}, pb.Errorf(pb.ErrNotFound, "", "no such payment: %s", id) // as the store says it
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
		tx.undo = append(tx.undo, undoEntry{kind: undoPaymentUpdate, key: p.ID, n: idx, oldPay: old})
		tx.batch.Payments[idx] = p
	} else {
		tx.undo = append(tx.undo, undoEntry{kind: undoPaymentNew, key: p.ID, oldPay: old})
		tx.payIdx[p.ID] = len(tx.batch.Payments)
		appendUndoable(tx, &tx.batch.Payments, p)
		appendUndoable(tx, &tx.batch.PaymentVersions, p.Version-1)
	}
	tx.w.payments[p.ID] = &p
}

// AddRefund, AddTopup, AddUser, AddMerchant, AddAgent and AddAPIKey record
// new rows to be written with the batch.
func (tx *Tx) AddRefund(r pb.Refund)     { appendUndoable(tx, &tx.batch.Refunds, r) }
func (tx *Tx) AddTopup(t pb.Topup)       { appendUndoable(tx, &tx.batch.Topups, t) }
func (tx *Tx) AddUser(u pb.User)         { appendUndoable(tx, &tx.batch.Users, u) }
func (tx *Tx) AddMerchant(m pb.Merchant) { appendUndoable(tx, &tx.batch.Merchants, m) }
func (tx *Tx) AddAgent(a pb.Agent)       { appendUndoable(tx, &tx.batch.Agents, a) }
func (tx *Tx) AddAPIKey(k pb.APIKey)     { appendUndoable(tx, &tx.batch.APIKeys, k) }

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

// AddAgentKey records an agent signing key, new or changed.
func (tx *Tx) AddAgentKey(k pb.AgentKey) { appendUndoable(tx, &tx.batch.AgentKeys, k) }

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
// (Giving back past zero: see AdjustUsage.)
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
// store, a refusal is first checked against the stored row, as for funds;
// and a give-back past zero even on the stored row goes through: it means
// another process gave the same budget back since this batch read the
// payment it gives back for (a cancel beside a partial capture), and the
// store refuses this batch (the row's within_budget check, or the
// payment's version), which then runs again on fresh state. With a store
// of its own, past zero is a refusal.
func (tx *Tx) AdjustUsage(u *pb.MandateUsageRow, spent, payments int64) error {
	if !usageFits(u, spent, payments) {
		if err := tx.RefreshUsage(u); err != nil {
			return err
		}
		giveBack := tx.w.shared != nil && spent <= 0 && payments <= 0
		if !usageFits(u, spent, payments) && !giveBack {
			return ErrUsageCap
		}
	}
	tx.undo = append(tx.undo, undoEntry{kind: undoUsage, usage: u, d: [4]int64{spent, payments}})
	tx.applyUsage(u, spent, payments, 1)
	return nil
}

// applyUsage adds sign times spent and payments to u and to the batch's sum
// of u's changes.
func (tx *Tx) applyUsage(u *pb.MandateUsageRow, spent, payments, sign int64) {
	u.Spent += sign * spent
	u.Payments += sign * payments
	k := usageKey{u.MandateID, u.PeriodKey}
	c := tx.usageChanged[k]
	if c == nil {
		c = &pb.UsageChange{}
		tx.usageChanged[k] = c
	}
	c.Spent += sign * spent
	c.Payments += sign * payments
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
	tx.undo = append(tx.undo, undoEntry{kind: undoUsageRebase, usage: u, d: [4]int64{u.Spent, u.Payments}})
	u.Spent, u.Payments = fresh.Spent+c.Spent, fresh.Payments+c.Payments
	return nil
}

// RelyOnMandate records that an operation relied on mandate id being
// usable (not revoked) as read: with a shared store, the commit is refused
// if another process revoked it meanwhile, and the batch is recomputed on
// fresh state. Undone with the operation's Atomic.
func (tx *Tx) RelyOnMandate(id string) {
	appendUndoable(tx, &tx.batch.MandatesChecked, id)
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

// PutMandate records a new or revoked mandate.
func (tx *Tx) PutMandate(m pb.Mandate) {
	tx.undo = append(tx.undo, undoEntry{kind: undoMandate, key: m.ID, oldMandate: tx.w.mandates[m.ID]})
	tx.w.mandates[m.ID] = &m
	appendUndoable(tx, &tx.batch.Mandates, m)
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
func (tx *Tx) PutTOTP(f pb.TOTPFactor) { appendUndoable(tx, &tx.batch.TOTP, f) }

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
func (tx *Tx) AddCodeFailure(id string) { appendUndoable(tx, &tx.batch.CodeFailures, id) }

// PutPasskey records a user's passkey, new or with its counter moved, to be
// written with the batch.
func (tx *Tx) PutPasskey(k pb.Passkey) { appendUndoable(tx, &tx.batch.Passkeys, k) }

// UseNonce records a signed request's nonce in this batch, or fails with
// ErrNonceUsed when this writer or the store has it already (after a
// restart, or from another process). The batch still committing counts as
// this writer's: a replay racing its original into the next batch is
// refused here, not by the store at commit, which would fail the whole
// batch.
func (tx *Tx) UseNonce(n pb.Nonce) error {
	for _, rows := range [2][]pb.Nonce{tx.batch.Nonces, InFlight(tx, func(b *pb.Batch) *[]pb.Nonce { return &b.Nonces })} {
		for _, m := range rows {
			if m.Same(n) {
				return ErrNonceUsed
			}
		}
	}
	seen, err := tx.w.cfg.Store.NonceSeen(tx.ctx, n)
	if err != nil {
		return fmt.Errorf("couldn't look up the nonce: %w", err)
	}
	if seen {
		return ErrNonceUsed
	}
	appendUndoable(tx, &tx.batch.Nonces, n)
	return nil
}

// ErrMerchantHold is returned by Hold for a hold on a merchant's account.
var ErrMerchantHold = errors.New("ledger: a hold never debits a merchant's account (the settlement report reads their debits as posted transfers)")

// ErrNonceUsed is returned by UseNonce for a nonce already used.
var ErrNonceUsed = errors.New("ledger: the nonce was used before")
