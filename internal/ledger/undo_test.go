package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
)

// The undo property: whatever mix of writes an operation makes, and however
// its Atomic blocks nest and fail (by error or by panic), the batch the
// store receives holds exactly the writes that succeeded, and the balances
// and usage rows it carries (the writer's caches) and their sums of changes
// are exactly those writes' sums. A model replays each write as it is
// made, keeps a copy of itself at each block's start, and returns to that
// copy when the block fails. Reads made along the way (holds, payments,
// mandates, nonces, agent keys, one-time-code factors and failures,
// disputes, usage rows, balances for a decline) must see what the model
// sees, so that an undo that missed a cache shows too.

type outcome uint8

const (
	endOK    outcome = iota // the block returns nil
	endFail                 // the block returns an error
	endPanic                // the block panics
)

type writeKind uint8

const (
	wTransfer writeKind = iota
	wHold
	wPost
	wVoid
	wPayment
	wRefund
	wTopup
	wUser
	wMerchant
	wAgent
	wAPIKey
	wAgentKey
	wMandate
	wUsage
	wLog
	wTOTP
	wCodeFailure
	wPasskey
	wNonce
	wDispute
	wRelyOnMandate
	wStaleHead // a payment put with the head of an entry logged in a failed block
	wPayLink   // a capability's part written with Add (payment links), read with Added
	wCheckout  // a row of each list of the checkout's part, through ledger.Add
	wAdded     // a capability's rows through Add (webhooks' endpoints and events)
	wAddedMore // x402 tabs, Token Pay's objects, usage lines and event IDs, mandate requests, through Add
	nWriteKinds
)

// step is one write, or (block set) an Atomic block running body.
type step struct {
	kind   writeKind
	i, j   int // picks: accounts, pool members, holds, taken modulo what exists
	amount int64
	fresh  bool // wPayment: a new payment rather than an earlier one
	block  bool
	body   []step
	end    outcome
}

// undoOp is one operation of the batch under test.
type undoOp struct {
	body []step
	end  outcome // endFail keeps the op's effects; endPanic undoes them
}

func drawSteps(t *rapid.T, depth int) []step {
	out := make([]step, rapid.IntRange(0, 8).Draw(t, "steps"))
	for k := range out {
		if depth < 3 && rapid.IntRange(0, 3).Draw(t, "nest") == 0 {
			out[k] = step{block: true, body: drawSteps(t, depth+1), end: outcome(rapid.IntRange(0, 2).Draw(t, "end"))}
			continue
		}
		out[k] = step{kind: writeKind(rapid.IntRange(0, int(nWriteKinds)-1).Draw(t, "kind")),
			i: rapid.IntRange(0, 7).Draw(t, "i"), j: rapid.IntRange(0, 7).Draw(t, "j"),
			amount: rapid.Int64Range(1, 700).Draw(t, "amount"), fresh: rapid.Bool().Draw(t, "fresh")}
	}
	return out
}

// TestPropertyAtomicUndo runs batches of one to three operations, each a
// random interleaving of every kind of write with nested Atomic blocks
// that randomly succeed, fail or panic, on a real SQLite store.
func TestPropertyAtomicUndo(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		ops := make([]undoOp, rapid.IntRange(1, 3).Draw(rt, "ops"))
		for i := range ops {
			ops[i] = undoOp{body: drawSteps(rt, 0), end: outcome(rapid.IntRange(0, 2).Draw(rt, "op_end"))}
		}
		newUndoEnv(rt, t.TempDir()).run(rt, ops)
	})
}

// TestAtomicUndoesEveryWrite makes every kind of write inside a block that
// fails, one that panics, and one that succeeds, and checks that this
// covers every list of pb.Batch an operation can write: a list added to
// the batch must be added to the property test too.
func TestAtomicUndoesEveryWrite(t *testing.T) {
	t.Parallel()
	var all []step
	for k := range nWriteKinds {
		all = append(all, step{kind: k, i: int(k), j: int(k) + 1, amount: 350, fresh: true})
	}
	body := []step{
		{block: true, end: endFail, body: all},
		{block: true, end: endPanic, body: all},
		{block: true, end: endOK, body: all},
	}
	want := newUndoEnv(t, t.TempDir()).run(t, []undoOp{{body: body, end: endOK}})
	writerOwned := map[string]bool{"Accounts": true, "AccountChanges": true, "Usage": true, "UsageChanges": true,
		"Idempotency": true, "Fresh": true, "FreshUsage": true}
	for name, l := range batchLists(&want) {
		if !writerOwned[name] && l.Len() == 0 {
			if logOff && name == "Log" {
				continue
			}
			t.Errorf("no write of the property test adds to Batch.%s: add one", name)
		}
	}
}

// TestBatchListsSeesTheParts: the checks above walk pb.Batch with
// batchLists, which must see every list of every part the batch embeds.
func TestBatchListsSeesTheParts(t *testing.T) {
	t.Parallel()
	b := &pb.Batch{DisputePart: pb.DisputePart{Disputes: make([]pb.Dispute, 2)}}
	seen := maps.Collect(batchLists(b))
	if d, ok := seen["Disputes"]; !ok || d.Len() != 2 {
		t.Errorf("batchLists does not see Batch.DisputePart.Disputes (seen: %v)", slices.Sorted(maps.Keys(seen)))
	}
	want := 0
	for _, f := range reflect.VisibleFields(reflect.TypeFor[pb.Batch]()) {
		if f.Type.Kind() == reflect.Slice {
			want++
			if _, ok := seen[f.Name]; !ok {
				t.Errorf("batchLists misses Batch.%s", f.Name)
			}
		}
	}
	if len(seen) != want || want < 20 {
		t.Errorf("batchLists sees %d lists, pb.Batch has %d", len(seen), want)
	}
}

// TestAtomicCatchesAWriteWithoutUndo: a write that bypasses the undo log
// inside an Atomic that fails panics (in tests), failing the operation.
func TestAtomicCatchesAWriteWithoutUndo(t *testing.T) {
	t.Parallel()
	e := newUndoEnv(t, t.TempDir())
	_, err := e.w.Submit(context.Background(), func(tx *Tx) (any, error) {
		return nil, tx.Atomic(func() error {
			tx.batch.Nonces = append(tx.batch.Nonces, pb.Nonce{KeyID: "k", Nonce: "n"})
			return errors.New("fail")
		})
	})
	if err == nil || !strings.Contains(err.Error(), "Batch.Nonces was written without an undo entry") {
		t.Fatalf("a write without undo inside a failed Atomic: %v", err)
	}
}

// tb is what the tests here use of *testing.T and *rapid.T.
type tb interface {
	Error(...any)
	Errorf(string, ...any)
	Fatal(...any)
	Fatalf(string, ...any)
	FailNow()
	Failed() bool
	Cleanup(func())
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// captureStore keeps every batch it commits.
type captureStore struct {
	pb.Store
	batches []*pb.Batch
}

func (s *captureStore) Commit(ctx context.Context, b *pb.Batch) error {
	s.batches = append(s.batches, b)
	return s.Store.Commit(ctx, b)
}

// undoEnv is a writer on a fresh SQLite file with committed state for the
// writes to read: funded accounts, an open hold, a payment, a mandate with
// a usage row, an agent key, a nonce, a one-time-code factor and failure,
// and a dispute.
type undoEnv struct {
	w      *Writer
	st     *captureStore
	now    time.Time
	accts  []pb.Account // as committed
	hold   modelHold
	holdID int64
	pay    pb.Payment
	mdt    pb.Mandate
	// IDs of every hold and payment made so far, kept or undone: writes
	// pick among them, so that some find one that was undone.
	holdIDs []int64
	payIDs  []string
	n       int // for unique IDs
	errs    []string
}

type modelHold struct {
	debit, credit int64 // indexes in accts
	amount        int64
	resolved      bool
}

// The pools writes pick from; the first of each is committed.
var (
	mandatePool  = []string{"mdt_c", "mdt_0", "mdt_1", "mdt_2"}
	keyPool      = []string{"key_c", "key_0", "key_1"}
	noncePool    = []string{"n_c", "n_0", "n_1", "n_2"}
	userPool     = []string{"usr_c", "usr_0", "usr_1"}
	failurePool  = []string{"cf_c", "cf_0"}
	disputePool  = []string{"dsp_c", "dsp_0", "dsp_1"}
	subjectPool  = []string{"sub_0", "sub_1", "sub_2"}
	committedUse = pb.MandateUsageRow{MandateID: "mdt_c", PeriodKey: "total", Spent: 100, Payments: 1, CapAmount: 1000}
)

// usageCaps are the caps of mandate pool member i's rows.
func usageCaps(i int) (amount, payments int64) {
	if i == 2 {
		return 1000, 3
	}
	return 1000, 0
}

func newUndoEnv(tb tb, dir string) *undoEnv {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		tb.Fatal(err)
	}
	e := &undoEnv{st: &captureStore{Store: st}, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e.w, err = New(ctx, Config{Store: e.st, Clock: fixedClock(e.now), PanicOnInvariant: true})
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.w.Close(); st.Close() })
	_, err = e.w.Submit(ctx, func(tx *Tx) (any, error) {
		fund, err := tx.EnsureAccount(pb.OwnerFunding, "USD", 0)
		if err != nil {
			return nil, err
		}
		as := []*pb.Account{fund}
		for i := 1; i < 4; i++ {
			a, err := tx.EnsureAccount(fmt.Sprintf("acct_%d", i), "USD", DebitsMustNotExceedCredits)
			if err != nil {
				return nil, err
			}
			if _, err := tx.Transfer(fund, a, 1000, "setup"); err != nil {
				return nil, err
			}
			as = append(as, a)
		}
		e.hold = modelHold{debit: 1, credit: 2, amount: 100}
		if e.holdID, err = tx.Hold(as[1], as[2], 100, e.now.Add(time.Hour), "setup"); err != nil {
			return nil, err
		}
		p := pb.Payment{ID: "pay_c", Object: "payment", Status: pb.StatusAuthorized, Amount: 100, Currency: "USD",
			MerchantID: "mch_c", PayerID: "usr_c", CreatedAt: e.now}
		if err := tx.LogPayment(&p, pb.LogEvent{Type: "payment.created", Actor: pb.Actor{ID: "usr_c", Role: pb.RoleUser}}); err != nil {
			return nil, err
		}
		tx.PutPayment(p)
		e.mdt = pb.Mandate{ID: "mdt_c", Object: "mandate", UserID: "usr_c", AgentID: "agt_c", Description: "committed",
			Currency: "USD", MaxAmount: 500, CreatedAt: e.now}
		tx.PutMandate(e.mdt)
		u, err := tx.Usage("mdt_c", "total", 1000, 0)
		if err != nil {
			return nil, err
		}
		if err := tx.AdjustUsage(u, committedUse.Spent, committedUse.Payments); err != nil {
			return nil, err
		}
		tx.AddAgentKey(pb.AgentKey{KeyID: "key_c", AgentID: "agt_c", PublicKey: "{}", CreatedAt: e.now})
		if err := tx.UseNonce(pb.Nonce{KeyID: "key_c", Nonce: "n_c", Expires: e.now.Add(time.Hour)}); err != nil {
			return nil, err
		}
		tx.PutTOTP(pb.TOTPFactor{UserID: "usr_c", Secret: []byte{1}, LastStep: -1, CreatedAt: e.now})
		tx.AddCodeFailure("cf_c")
		tx.PutDispute(pb.Dispute{ID: "dsp_c", Object: "dispute", PaymentID: "pay_c", Status: "s_c", Currency: "USD", CreatedAt: e.now})
		e.pay = *tx.w.payments["pay_c"]
		for _, a := range as {
			e.accts = append(e.accts, *a)
		}
		return nil, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.holdIDs, e.payIDs = []int64{e.holdID}, []string{"pay_c"}
	e.st.batches = nil
	return e
}

// undoModel is what the batch should hold so far.
type undoModel struct {
	want     pb.Batch // but for the lists the writer fills at the end
	payIdx   map[string]int
	sums     map[int64][4]int64    // by account ID
	usage    map[usageKey][2]int64 // spent and payments, by row
	holds    map[int64]modelHold
	payments map[string]pb.Payment
	mandates map[string]pb.Mandate
}

func (m *undoModel) clone() *undoModel {
	c := *m
	for _, f := range batchLists(&c.want) {
		if !f.IsNil() {
			s := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
			reflect.Copy(s, f)
			f.Set(s)
		}
	}
	c.payIdx, c.sums, c.usage = maps.Clone(m.payIdx), maps.Clone(m.sums), maps.Clone(m.usage)
	c.holds, c.payments, c.mandates = maps.Clone(m.holds), maps.Clone(m.payments), maps.Clone(m.mandates)
	return &c
}

type panicked struct{}

var errFail = errors.New("test: the block fails")

// run applies ops in one batch and checks it, then what the store holds.
// It returns the batch as the model expects it.
func (e *undoEnv) run(tb tb, ops []undoOp) pb.Batch {
	ctx := context.Background()
	m := &undoModel{payIdx: map[string]int{}, sums: map[int64][4]int64{}, usage: map[usageKey][2]int64{},
		holds:    map[int64]modelHold{e.holdID: e.hold},
		payments: map[string]pb.Payment{"pay_c": e.pay}, mandates: map[string]pb.Mandate{"mdt_c": e.mdt}}
	// The writer is held in a gate op while the ops queue, one after the
	// other, so that they form the next batch, in order.
	gate, started := make(chan struct{}), make(chan struct{})
	gateDone := make(chan error, 1)
	go func() {
		_, err := e.w.Submit(ctx, func(*Tx) (any, error) { close(started); <-gate; return nil, nil })
		gateDone <- err
	}()
	<-started
	errs := make([]chan error, len(ops))
	for i, op := range ops {
		errs[i] = make(chan error, 1)
		go func() {
			_, err := e.w.Submit(ctx, func(tx *Tx) (any, error) {
				before := m.clone()
				e.steps(tx, &m, op.body)
				switch op.end {
				case endFail:
					return nil, errFail
				case endPanic:
					m = before
					panic(panicked{})
				}
				return nil, nil
			})
			errs[i] <- err
		}()
		for e.w.QueueDepth() < i+1 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(gate)
	if err := <-gateDone; err != nil {
		tb.Fatal(err)
	}
	for i, op := range ops {
		err := <-errs[i]
		switch {
		case op.end == endOK && err != nil,
			op.end == endFail && !errors.Is(err, errFail),
			op.end == endPanic && (err == nil || !strings.Contains(err.Error(), "panicked")):
			tb.Errorf("op %d ending %d returned %v", i, op.end, err)
		}
	}
	for _, s := range e.errs {
		tb.Error(s)
	}
	if tb.Failed() {
		tb.FailNow()
	}
	e.check(tb, m)
	return m.want
}

// check compares the committed batch with the model, and then the store.
func (e *undoEnv) check(tb tb, m *undoModel) {
	got := &pb.Batch{}
	switch len(e.st.batches) {
	case 0:
	case 1:
		got = e.st.batches[0]
	default:
		tb.Fatalf("the ops were committed in %d batches", len(e.st.batches))
	}
	wants := maps.Collect(batchLists(&m.want))
	for name, g := range batchLists(got) {
		switch name {
		case "Accounts", "AccountChanges", "Usage", "UsageChanges":
			continue // below
		}
		w := wants[name]
		if (g.Len() != 0 || w.Len() != 0) && !reflect.DeepEqual(g.Interface(), w.Interface()) {
			tb.Errorf("Batch.%s is\n%+v\nwant\n%+v", name, g.Interface(), w.Interface())
		}
	}
	// Balances: the cached accounts, with the sums of their changes.
	type acct struct {
		a pb.Account
		c pb.AccountChange
	}
	gotAccts, wantAccts := map[int64]acct{}, map[int64]acct{}
	for i, a := range got.Accounts {
		gotAccts[a.ID] = acct{a, got.AccountChanges[i]}
	}
	for _, a := range e.accts {
		d := m.sums[a.ID]
		if d == ([4]int64{}) {
			continue
		}
		want := a
		setBalances(&want, [4]int64{a.DebitsPending + d[0], a.DebitsPosted + d[1], a.CreditsPending + d[2], a.CreditsPosted + d[3]})
		wantAccts[a.ID] = acct{want, pb.AccountChange{DebitsPending: d[0], DebitsPosted: d[1], CreditsPending: d[2], CreditsPosted: d[3]}}
	}
	if !reflect.DeepEqual(gotAccts, wantAccts) {
		tb.Errorf("the batch's accounts are\n%+v\nwant\n%+v", gotAccts, wantAccts)
	}
	type row struct {
		u pb.MandateUsageRow
		c pb.UsageChange
	}
	gotRows, wantRows := map[usageKey]row{}, map[usageKey]row{}
	for i, u := range got.Usage {
		gotRows[usageKey{u.MandateID, u.PeriodKey}] = row{u, got.UsageChanges[i]}
	}
	for k, d := range m.usage {
		if d != ([2]int64{}) {
			u := usageBase(k.mandate)
			u.Spent += d[0]
			u.Payments += d[1]
			wantRows[k] = row{u, pb.UsageChange{Spent: d[0], Payments: d[1]}}
		}
	}
	if !reflect.DeepEqual(gotRows, wantRows) {
		tb.Errorf("the batch's usage rows are\n%+v\nwant\n%+v", gotRows, wantRows)
	}
	// What the store holds now.
	ctx := context.Background()
	for _, want := range wantAccts {
		a, err := e.st.AccountByID(ctx, want.a.ID)
		if err != nil || *a != want.a {
			tb.Errorf("stored account %d is %+v (%v); want %+v", want.a.ID, a, err, want.a)
		}
	}
	for k, want := range wantRows {
		u, err := e.st.MandateUsage(ctx, k.mandate, k.period)
		if err != nil || *u != want.u {
			tb.Errorf("stored usage %v is %+v (%v); want %+v", k, u, err, want.u)
		}
	}
	if r, err := Verify(ctx, e.st); err != nil || !r.OK {
		tb.Errorf("verify: %+v %v", r, err)
	}
}

// usageBase is the usage row of a mandate as committed, or as Usage makes
// a new one.
func usageBase(mandate string) pb.MandateUsageRow {
	if mandate == committedUse.MandateID {
		return committedUse
	}
	i := slices.Index(mandatePool, mandate)
	capAmount, capPayments := usageCaps(i)
	return pb.MandateUsageRow{MandateID: mandate, PeriodKey: "total", CapAmount: capAmount, CapPayments: capPayments}
}

func (e *undoEnv) errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

func (e *undoEnv) id(prefix string) string {
	e.n++
	return fmt.Sprintf("%s_%d", prefix, e.n)
}

// steps runs steps on tx and replays each write that succeeds on *m. It
// runs on the writer goroutine: mismatches are collected in e.errs.
func (e *undoEnv) steps(tx *Tx, m **undoModel, steps []step) {
	for _, s := range steps {
		if !s.block {
			e.write(tx, *m, s)
			continue
		}
		before := (*m).clone()
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					if _, ok := p.(panicked); !ok {
						panic(p)
					}
					err = errFail
				}
			}()
			return tx.Atomic(func() error {
				e.steps(tx, m, s.body)
				switch s.end {
				case endFail:
					return errFail
				case endPanic:
					panic(panicked{})
				}
				return nil
			})
		}()
		if (err == nil) != (s.end == endOK) {
			e.errorf("a block ending %d returned %v", s.end, err)
		}
		if err != nil {
			*m = before
		}
	}
}

// balance is account i's balances as the model sees them.
func (e *undoEnv) balance(m *undoModel, i int) [4]int64 {
	a, d := e.accts[i], m.sums[e.accts[i].ID]
	return [4]int64{a.DebitsPending + d[0], a.DebitsPosted + d[1], a.CreditsPending + d[2], a.CreditsPosted + d[3]}
}

func (e *undoEnv) move(m *undoModel, i int, d [4]int64) {
	id := e.accts[i].ID
	s := m.sums[id]
	for k := range s {
		s[k] += d[k]
	}
	m.sums[id] = s
}

func (e *undoEnv) account(tx *Tx, i int) *pb.Account {
	a, err := tx.accountByID(e.accts[i].ID)
	if err != nil {
		panic(err)
	}
	return a
}

func (e *undoEnv) write(tx *Tx, m *undoModel, s step) {
	now := tx.Now()
	switch s.kind {
	case wTransfer, wHold:
		d, c := s.i%len(e.accts), s.j%len(e.accts)
		if d == c {
			c = (c + 1) % len(e.accts)
		}
		b := e.balance(m, d)
		fits := d == 0 || b[0]+b[1]+s.amount <= b[3] // the funding account may go negative
		var id int64
		var err error
		t := pb.Transfer{Kind: pb.TransferPosted, DebitAccountID: e.accts[d].ID, CreditAccountID: e.accts[c].ID,
			Amount: s.amount, Currency: "USD", Ref: e.id("ref"), CreatedAt: now}
		if s.kind == wHold {
			t.Kind, t.Timeout = pb.TransferPending, now.Add(time.Hour)
			id, err = tx.Hold(e.account(tx, d), e.account(tx, c), s.amount, t.Timeout, t.Ref)
		} else {
			id, err = tx.Transfer(e.account(tx, d), e.account(tx, c), s.amount, t.Ref)
		}
		if (err == nil) != fits {
			e.errorf("%d from account %d with balances %v: %v", s.amount, d, b, err)
			return
		}
		if err != nil {
			return
		}
		t.ID = id
		m.want.Transfers = append(m.want.Transfers, t)
		if s.kind == wHold {
			e.move(m, d, [4]int64{s.amount, 0, 0, 0})
			e.move(m, c, [4]int64{0, 0, s.amount, 0})
			m.holds[id] = modelHold{debit: int64(d), credit: int64(c), amount: s.amount}
			e.holdIDs = append(e.holdIDs, id)
		} else {
			e.move(m, d, [4]int64{0, s.amount, 0, 0})
			e.move(m, c, [4]int64{0, 0, 0, s.amount})
		}
	case wPost, wVoid:
		id := e.holdIDs[s.i%len(e.holdIDs)]
		h, known := m.holds[id]
		amount := 1 + (s.amount-1)%max(h.amount, 1)
		ref := e.id("ref")
		var tid int64
		var err error
		if s.kind == wPost {
			tid, err = tx.Post(id, amount, ref)
		} else {
			tid, err = tx.Void(id, ref)
		}
		switch {
		case !known:
			if err == nil {
				e.errorf("hold %d was undone, yet resolved", id)
			}
			return
		case h.resolved:
			if !errors.Is(err, ErrHoldResolved) {
				e.errorf("hold %d was resolved, yet: %v", id, err)
			}
			return
		case err != nil:
			e.errorf("hold %d: %v", id, err)
			return
		}
		d, c := int(h.debit), int(h.credit)
		t := pb.Transfer{ID: tid, Kind: pb.TransferVoid, DebitAccountID: e.accts[d].ID, CreditAccountID: e.accts[c].ID,
			Amount: h.amount, Currency: "USD", PendingID: id, Ref: ref, CreatedAt: now}
		e.move(m, d, [4]int64{-h.amount, 0, 0, 0})
		e.move(m, c, [4]int64{0, 0, -h.amount, 0})
		if s.kind == wPost {
			t.Kind, t.Amount = pb.TransferPost, amount
			e.move(m, d, [4]int64{0, amount, 0, 0})
			e.move(m, c, [4]int64{0, 0, 0, amount})
		}
		h.resolved = true
		m.holds[id] = h
		m.want.Transfers = append(m.want.Transfers, t)
	case wPayment:
		var p pb.Payment
		if s.fresh {
			p = pb.Payment{ID: e.id("pay"), Object: "payment", Status: pb.StatusAuthorized, Amount: s.amount,
				Currency: "USD", MerchantID: "mch_c", PayerID: "usr_c", CreatedAt: now}
			e.payIDs = append(e.payIDs, p.ID)
		} else {
			id := e.payIDs[s.i%len(e.payIDs)]
			want, known := m.payments[id]
			var err error
			p, err = tx.Payment(id)
			switch {
			case !known:
				if pb.ErrorCode(err) != pb.ErrNotFound {
					e.errorf("payment %s was undone, yet read: %+v, %v", id, p, err)
				}
				return
			case err != nil || !reflect.DeepEqual(p, want):
				e.errorf("payment %s is %+v (%v); want %+v", id, p, err, want)
				return
			}
			p.AmountCaptured = min(s.amount, p.Amount)
		}
		ev := pb.LogEvent{Type: "payment.changed", Actor: pb.Actor{ID: "usr_c", Role: pb.RoleUser}}
		prev := p.LogHead
		if err := tx.LogPayment(&p, ev); err != nil {
			e.errorf("log payment %s: %v", p.ID, err)
			return
		}
		if !logOff {
			ev.Subject = p.ID
			var pp *[32]byte
			if prev != ([32]byte{}) {
				pp = &prev
			}
			body, err := pb.EncodeLogEntry(ev, now, pp)
			if err != nil {
				panic(err)
			}
			m.want.Log = append(m.want.Log, pb.LogRecord{Subject: p.ID, Body: body, Leaf: pb.LeafHash(body)})
		}
		tx.PutPayment(p)
		p.Version = 1
		if old, ok := m.payments[p.ID]; ok {
			p.Version = old.Version + 1
		}
		m.payments[p.ID] = p
		if i, ok := m.payIdx[p.ID]; ok {
			m.want.Payments[i] = p
		} else {
			m.payIdx[p.ID] = len(m.want.Payments)
			m.want.Payments = append(m.want.Payments, p)
			m.want.PaymentVersions = append(m.want.PaymentVersions, p.Version-1)
		}
	case wRefund:
		r := pb.Refund{ID: e.id("re"), Object: "refund", PaymentID: "pay_c", Amount: s.amount, Currency: "USD", Status: "succeeded", CreatedAt: now}
		tx.AddRefund(r)
		m.want.Refunds = append(m.want.Refunds, r)
	case wTopup:
		t := pb.Topup{ID: e.id("top"), Object: "topup", UserID: "usr_c", Amount: s.amount, Currency: "USD", Status: "succeeded", CreatedAt: now}
		tx.AddTopup(t)
		m.want.Topups = append(m.want.Topups, t)
	case wUser:
		u := pb.User{ID: e.id("usr"), Name: "u", CreatedAt: now}
		tx.AddUser(u)
		m.want.Users = append(m.want.Users, u)
	case wMerchant:
		x := pb.Merchant{ID: e.id("mch"), Name: "m", Category: "food", CreatedAt: now}
		tx.AddMerchant(x)
		m.want.Merchants = append(m.want.Merchants, x)
	case wAgent:
		a := pb.Agent{ID: e.id("agt"), UserID: "usr_c", Name: "a", CreatedAt: now}
		tx.AddAgent(a)
		m.want.Agents = append(m.want.Agents, a)
	case wAPIKey:
		k := pb.APIKey{Hash: sha256.Sum256([]byte(e.id("key"))), Principal: pb.Principal{Role: pb.RoleAgent, ID: "agt_c", UserID: "usr_c"}, CreatedAt: now}
		tx.AddAPIKey(k)
		m.want.APIKeys = append(m.want.APIKeys, k)
	case wAgentKey:
		keyid := keyPool[s.i%len(keyPool)]
		want := keyid == "key_c" || slices.ContainsFunc(m.want.AgentKeys, func(k pb.AgentKey) bool { return k.KeyID == keyid })
		if got, err := tx.HasAgentKey(keyid); err != nil || got != want {
			e.errorf("agent key %s registered: %v (%v); want %v", keyid, got, err, want)
		}
		k := pb.AgentKey{KeyID: keyid, AgentID: "agt_c", PublicKey: "{}", CreatedAt: now}
		tx.AddAgentKey(k)
		m.want.AgentKeys = append(m.want.AgentKeys, k)
	case wMandate:
		id := mandatePool[s.i%len(mandatePool)]
		want, known := m.mandates[id]
		x, err := tx.Mandate(id)
		switch {
		case !known && pb.ErrorCode(err) != pb.ErrNotFound:
			e.errorf("mandate %s was undone, yet read: %+v, %v", id, x, err)
		case known && (err != nil || !reflect.DeepEqual(x, want)):
			e.errorf("mandate %s is %+v (%v); want %+v", id, x, err, want)
		}
		if known {
			x = want
			x.RevokedAt = &now
		} else {
			x = pb.Mandate{ID: id, Object: "mandate", UserID: "usr_c", AgentID: "agt_c", Description: e.id("mandate"),
				Currency: "USD", MaxAmount: 500, CreatedAt: now}
		}
		tx.PutMandate(x)
		m.mandates[id] = x
		m.want.Mandates = append(m.want.Mandates, x)
	case wUsage:
		i := s.i % len(mandatePool)
		k := usageKey{mandatePool[i], "total"}
		want := usageBase(k.mandate)
		want.Spent += m.usage[k][0]
		want.Payments += m.usage[k][1]
		capAmount, capPayments := usageCaps(i)
		u, err := tx.Usage(k.mandate, k.period, capAmount, capPayments)
		if err != nil || *u != want {
			e.errorf("usage %v is %+v (%v); want %+v", k, u, err, want)
			return
		}
		spent, payments := s.amount-300, int64(s.j%3-1)
		err = tx.AdjustUsage(u, spent, payments)
		if fits := usageFits(&want, spent, payments); (err == nil) != fits || (err != nil && !errors.Is(err, ErrUsageCap)) {
			e.errorf("usage %+v adjusted by %d, %d: %v", want, spent, payments, err)
			return
		}
		if err == nil {
			m.usage[k] = [2]int64{m.usage[k][0] + spent, m.usage[k][1] + payments}
		}
	case wLog:
		ev := pb.LogEvent{Type: "test.logged", Subject: subjectPool[s.i%len(subjectPool)], Actor: pb.Actor{ID: "op", Role: pb.RoleOperator}}
		if err := tx.Log(ev); err != nil {
			e.errorf("log: %v", err)
			return
		}
		if !logOff {
			body, err := pb.EncodeLogEntry(ev, now, nil)
			if err != nil {
				panic(err)
			}
			m.want.Log = append(m.want.Log, pb.LogRecord{Subject: ev.Subject, Body: body, Leaf: pb.LeafHash(body)})
		}
	case wTOTP:
		user := userPool[s.i%len(userPool)]
		want := int64(-2) // none
		if user == "usr_c" {
			want = -1
		}
		for _, f := range m.want.TOTP {
			if f.UserID == user {
				want = f.LastStep
			}
		}
		got := int64(-2)
		f, err := tx.TOTP(user)
		if err == nil {
			got = f.LastStep
		}
		if got != want || (err != nil && pb.ErrorCode(err) != pb.ErrNotFound) {
			e.errorf("TOTP of %s has step %d (%v); want %d", user, got, err, want)
		}
		f = pb.TOTPFactor{UserID: user, Secret: []byte{2}, Active: true, LastStep: int64(e.n), CreatedAt: now}
		e.n++
		tx.PutTOTP(f)
		m.want.TOTP = append(m.want.TOTP, f)
	case wCodeFailure:
		id := failurePool[s.i%len(failurePool)]
		want := 0
		if id == "cf_c" {
			want = 1
		}
		for _, f := range m.want.CodeFailures {
			if f == id {
				want++
			}
		}
		if got, err := tx.CodeFailures(id); err != nil || got != want {
			e.errorf("failures of %s: %d (%v); want %d", id, got, err, want)
		}
		tx.AddCodeFailure(id)
		m.want.CodeFailures = append(m.want.CodeFailures, id)
	case wPasskey:
		k := pb.Passkey{ID: []byte(e.id("pk")), UserID: "usr_c", Credential: []byte{3}, CreatedAt: now}
		tx.PutPasskey(k)
		m.want.Passkeys = append(m.want.Passkeys, k)
	case wCheckout:
		id := e.id("co")
		p := pb.Product{ID: "prod_" + id, Object: "product", MerchantID: "mch_c", Name: "x", Price: 1, Currency: "USD",
			Fulfillment: pb.FulfillmentDigital, Active: true, CreatedAt: now, UpdatedAt: now}
		cs := pb.CheckoutSession{ID: "cs_" + id, MerchantID: "mch_c", AgentID: "agt_c", UserID: "usr_c", Status: pb.CheckoutReady,
			Currency: "USD", CreatedAt: now, UpdatedAt: now, ExpiresAt: now}
		c := pb.AgentCard{ID: "card_" + id, MandateID: "mdt_c", AgentID: "agt_c", UserID: "usr_c", NumberHash: id, Last4: "0000", CreatedAt: now}
		vt := pb.VaultToken{ID: "vt_" + id, CheckoutSessionID: cs.ID, MaxAmount: 1, Currency: "USD", CreatedAt: now}
		done := pb.CheckoutCompletion{SessionID: cs.ID, TokenID: vt.ID, PaymentID: "pay_" + id, CreatedAt: now}
		Add(tx, func(b *pb.Batch) *[]pb.Product { return &b.Products }, p)
		Add(tx, func(b *pb.Batch) *[]pb.CheckoutSession { return &b.CheckoutSessions }, cs)
		Add(tx, func(b *pb.Batch) *[]pb.AgentCard { return &b.AgentCards }, c)
		Add(tx, func(b *pb.Batch) *[]pb.VaultToken { return &b.VaultTokens }, vt)
		Add(tx, func(b *pb.Batch) *[]pb.CheckoutCompletion { return &b.CheckoutCompletions }, done)
		m.want.Products = append(m.want.Products, p)
		m.want.CheckoutSessions = append(m.want.CheckoutSessions, cs)
		m.want.AgentCards = append(m.want.AgentCards, c)
		m.want.VaultTokens = append(m.want.VaultTokens, vt)
		m.want.CheckoutCompletions = append(m.want.CheckoutCompletions, done)
	case wNonce:
		nonce := noncePool[s.i%len(noncePool)]
		used := nonce == "n_c" || slices.ContainsFunc(m.want.Nonces, func(n pb.Nonce) bool { return n.Nonce == nonce })
		n := pb.Nonce{KeyID: "key_c", Nonce: nonce, Expires: now.Add(time.Hour)}
		err := tx.UseNonce(n)
		if used != errors.Is(err, ErrNonceUsed) || (!used && err != nil) {
			e.errorf("nonce %s used before: %v; UseNonce: %v", nonce, used, err)
		}
		if err == nil {
			m.want.Nonces = append(m.want.Nonces, n)
		}
	case wDispute:
		id := disputePool[s.i%len(disputePool)]
		want := ""
		if id == "dsp_c" {
			want = "s_c"
		}
		for _, d := range m.want.Disputes {
			if d.ID == id {
				want = d.Status
			}
		}
		d, err := tx.Dispute(id)
		if d.Status != want || (err != nil && pb.ErrorCode(err) != pb.ErrNotFound) {
			e.errorf("dispute %s has status %q (%v); want %q", id, d.Status, err, want)
		}
		d = pb.Dispute{ID: id, Object: "dispute", PaymentID: "pay_c", Status: e.id("s"), Amount: s.amount, Currency: "USD", CreatedAt: now}
		tx.PutDispute(d)
		m.want.Disputes = append(m.want.Disputes, d)
	case wAdded:
		endpoints := func(b *pb.Batch) *[]pb.WebhookEndpoint { return &b.WebhookEndpoints }
		events := func(b *pb.Batch) *[]pb.WebhookEvent { return &b.WebhookEvents }
		if got := len(Added(tx, events)); got != len(m.want.WebhookEvents) {
			e.errorf("Added sees %d events; want %d", got, len(m.want.WebhookEvents))
		}
		ep := pb.WebhookEndpoint{ID: e.id("we"), OwnerID: "usr_c", OwnerRole: pb.RoleUser, URL: "https://example.com/h",
			Events: []string{"*"}, Format: pb.WebhookFormatStandard, Status: pb.WebhookEnabled, SecretSealed: []byte("s"),
			CreatedAt: now, UpdatedAt: now}
		ev := pb.WebhookEvent{ID: e.id("evt"), Type: pb.EventPaymentCaptured, CreatedAt: now, Parties: []string{"usr_c"}}
		Add(tx, endpoints, ep)
		Add(tx, events, ev)
		m.want.WebhookEndpoints = append(m.want.WebhookEndpoints, ep)
		m.want.WebhookEvents = append(m.want.WebhookEvents, ev)
	case wAddedMore:
		tabs := func(b *pb.Batch) *[]pb.Tab { return &b.Tabs }
		objects := func(b *pb.Batch) *[]pb.BillingObject { return &b.BillingObjects }
		lines := func(b *pb.Batch) *[]pb.UsageLine { return &b.UsageLines }
		if got := len(Added(tx, objects)); got != len(m.want.BillingObjects) {
			e.errorf("Added sees %d billing objects; want %d", got, len(m.want.BillingObjects))
		}
		tab := pb.Tab{ID: e.id("tab"), Object: "x402_tab", MerchantID: "mch_c", AgentID: "agt_c", UserID: "usr_c",
			MandateID: "mdt_c", PaymentID: e.id("pay"), Currency: "USD", Deposit: s.amount, Status: pb.TabOpen,
			ExpiresAt: now.Add(time.Hour), CreatedAt: now, Version: 1}
		obj := pb.BillingObject{ID: e.id("grant"), Kind: "grant", ProviderID: "mch_c", CustomerID: "usr_c", Version: 1,
			Data: []byte(`{}`), CreatedAt: now}
		line := pb.UsageLine{ProviderID: "mch_c", EventID: e.id("ev"), Line: "input", CustomerID: "usr_c", Meter: "llm_tokens",
			Time: now, Model: "m", Quantity: s.amount, CreatedAt: now}
		req := pb.MandateRequest{ID: e.id("mreq"), Object: "mandate_request", UserID: "usr_c", AgentID: "agt_c",
			Status: "pending", Reason: "r", Terms: pb.Mandate{Currency: "USD"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Version: 1}
		Add(tx, tabs, tab)
		Add(tx, objects, obj)
		Add(tx, lines, line)
		seen := pb.UsageEventID{ProviderID: "mch_c", EventID: line.EventID, SeenAt: now}
		Add(tx, func(b *pb.Batch) *[]pb.UsageEventID { return &b.UsageEventIDs }, seen)
		m.want.UsageEventIDs = append(m.want.UsageEventIDs, seen)
		Add(tx, func(b *pb.Batch) *[]pb.MandateRequest { return &b.MandateRequests }, req)
		m.want.MandateRequests = append(m.want.MandateRequests, req)
		m.want.Tabs = append(m.want.Tabs, tab)
		m.want.BillingObjects = append(m.want.BillingObjects, obj)
		m.want.UsageLines = append(m.want.UsageLines, line)
	case wRelyOnMandate:
		id := mandatePool[s.j%len(mandatePool)]
		tx.RelyOnMandate(id)
		m.want.MandatesChecked = append(m.want.MandatesChecked, id)
	case wStaleHead:
		id := e.payIDs[s.i%len(e.payIDs)]
		p, err := tx.Payment(id)
		if err != nil {
			return // undone: wPayment checks it
		}
		if err := tx.Atomic(func() error {
			if err := tx.LogPayment(&p, pb.LogEvent{Type: "payment.changed", Actor: pb.Actor{ID: "usr_c", Role: pb.RoleUser}}); err != nil {
				return err
			}
			return errFail
		}); !errors.Is(err, errFail) {
			e.errorf("log payment %s: %v", id, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					e.errorf("payment %s was put with the head of an undone entry", id)
				}
			}()
			tx.PutPayment(p)
		}()
	case wPayLink:
		if got, want := len(Added(tx, func(b *pb.Batch) *[]pb.PayLink { return &b.PayLinks })), len(m.want.PayLinks); got != want {
			e.errorf("Added sees %d payment links; %d were written", got, want)
		}
		l := pb.PayLink{ID: e.id("plink"), Object: "payment_link", MerchantID: "mch_c", Amount: s.amount, Currency: "USD",
			Description: "d", Active: true, CreatedAt: now, Version: 1}
		lp := pb.PayLinkPayment{LinkID: l.ID, PaymentID: "pay_c", CreatedAt: now}
		Add(tx, func(b *pb.Batch) *[]pb.PayLink { return &b.PayLinks }, l)
		Add(tx, func(b *pb.Batch) *[]pb.PayLinkPayment { return &b.LinkPayments }, lp)
		m.want.PayLinks = append(m.want.PayLinks, l)
		m.want.LinkPayments = append(m.want.LinkPayments, lp)
	default:
		panic(fmt.Sprintf("unknown write %d", s.kind))
	}
}
