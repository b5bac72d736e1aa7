package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pb "github.com/paybound/paybound"
)

// The checks of TestBankMultiProcess; its doc comment states the model.

// bankPayment is the part of a payment object the checks read (a long
// soak lists many).
type bankPayment struct {
	ID                     string            `json:"id"`
	Status                 pb.PaymentStatus  `json:"status"`
	Amount                 int64             `json:"amount"`
	AmountCaptured         int64             `json:"amount_captured"`
	AmountRefunded         int64             `json:"amount_refunded"`
	DeclineCode            pb.Code           `json:"decline_code"`
	Metadata               map[string]string `json:"metadata"`
	AuthorizationExpiresAt *time.Time        `json:"authorization_expires_at"`
}

// bankEntry is one transparency log entry, as stored.
type bankEntry struct {
	seq, idx int64     // idx -1: not yet in the tree
	Type     string    `json:"type"`
	Subject  string    `json:"subject"`
	Time     time.Time `json:"time"`
	Actor    struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"actor"`
	Data json.RawMessage `json:"data"`
	d    bankData
}

func (e *bankEntry) String() string {
	return fmt.Sprintf("entry seq %d idx %d %s %s at %s by %s %s: %s", e.seq, e.idx, e.Type, e.Subject,
		e.Time.UTC().Format("15:04:05.000000"), e.Actor.Role, e.Actor.ID, truncate(e.Data, 300))
}

// bankData holds the fields of every entry type the checks read.
type bankData struct {
	Amount         int64             `json:"amount"`
	Fee            int64             `json:"fee"`
	Released       int64             `json:"released"`
	FeeReturned    int64             `json:"fee_returned"`
	RefundID       string            `json:"refund_id"`
	TopupID        string            `json:"topup_id"`
	CompensationID string            `json:"compensation_id"`
	DisputeID      string            `json:"dispute_id"`
	MandateID      string            `json:"mandate_id"`
	PayerID        string            `json:"payer_id"`
	MerchantID     string            `json:"merchant_id"`
	AgentID        string            `json:"agent_id"`
	Currency       string            `json:"currency"`
	Basis          string            `json:"basis"`
	DeclineCode    string            `json:"decline_code"`
	CaptureMethod  string            `json:"capture_method"`
	Metadata       map[string]string `json:"metadata"`
	Reason         string            `json:"reason"`
	Outcome        string            `json:"outcome"`
}

// bankEffect is one entry's change to an account or a budget: delta is
// what it adds to the money available (the room left, for a budget), and
// it took effect in [lower, upper] (upper zero: no bound known).
type bankEffect struct {
	delta        int64
	lower, upper time.Time
	e            *bankEntry
}

// bankEffects are the effects on one account, budget period or payment
// cap, in log order, with an index for minRoom built on first use.
type bankEffects struct {
	effects []bankEffect
	// Debits (delta < 0) by lower bound and bounded credits by upper bound,
	// each with the prefix sums of their deltas.
	dAt, cAt   []time.Time
	dSum, cSum []int64
}

func (x *bankEffects) add(e bankEffect) { x.effects, x.dSum = append(x.effects, e), nil }

func (x *bankEffects) index() {
	if x.dSum != nil {
		return
	}
	var ds, cs []bankEffect
	for _, e := range x.effects {
		switch {
		case e.delta < 0:
			ds = append(ds, e)
		case e.delta > 0 && !e.upper.IsZero():
			cs = append(cs, e)
		}
	}
	slices.SortFunc(ds, func(a, b bankEffect) int { return a.lower.Compare(b.lower) })
	slices.SortFunc(cs, func(a, b bankEffect) int { return a.upper.Compare(b.upper) })
	x.dAt, x.dSum = make([]time.Time, len(ds)), make([]int64, len(ds)+1)
	for i, e := range ds {
		x.dAt[i], x.dSum[i+1] = e.lower, x.dSum[i]+e.delta
	}
	x.cAt, x.cSum = make([]time.Time, len(cs)), make([]int64, len(cs)+1)
	for i, e := range cs {
		x.cAt[i], x.cSum[i+1] = e.upper, x.cSum[i]+e.delta
	}
}

// at is the pessimistic state at t: base, every debit that may have
// happened by t (lower ≤ t), every credit that surely had (upper < t).
func (x *bankEffects) at(base int64, t time.Time) int64 {
	d := sort.Search(len(x.dAt), func(i int) bool { return x.dAt[i].After(t) })
	c := sort.Search(len(x.cAt), func(i int) bool { return !x.cAt[i].Before(t) })
	return base + x.dSum[d] + x.cSum[c]
}

// minRoom is the least that the effects can have left at any instant of
// [inv, comp], starting from base, when every effect that takes (delta < 0)
// happened as early as it could and every one that gives back as late as it
// could: the most pessimistic state of the interval. The state only drops
// at debits and rises just after credits, so its least value is at comp or
// at the upper bound of a credit inside the interval.
func (x *bankEffects) minRoom(base int64, inv, comp time.Time) int64 {
	x.index()
	least := min(x.at(base, inv), x.at(base, comp))
	for i := sort.Search(len(x.cAt), func(i int) bool { return x.cAt[i].After(inv) }); i < len(x.cAt) && x.cAt[i].Before(comp); i++ {
		least = min(least, x.at(base, x.cAt[i]))
	}
	return least
}

type bankAcct struct {
	avail, pending int64 // replayed
	bankEffects
}

// bankUsage is one mandate budget period, replayed.
type bankUsage struct {
	m      *bankMandate
	period string
	spent  int64
	bankEffects
}

// logPay is a payment as its log entries tell it.
type logPay struct {
	id                 string
	created            *bankEntry
	d                  bankData // of payment.created
	key                string   // the bank_key metadata: the creating operation's Idempotency-Key
	mandate            *bankMandate
	period             string
	status             string
	held               int64
	captured, refunded int64
	authorized         *bankEntry
}

type bankCheck struct {
	t *testing.T
	b *bank

	ops     []*bankOp
	byPay   map[string][]*bankOp // operations naming a payment
	byKey   map[string][]*bankOp // payment creations by Idempotency-Key
	byID    map[string][]*bankOp // operations by the refund, top-up or compensation their answer named
	byMdt   map[string][]*bankOp // grants and revokes by mandate
	entries []*bankEntry
	final   map[string]*bankPayment // GET /v1/payments as the operator, after the run

	pays     map[string]*logPay
	accts    map[string]*bankAcct    // by owner: users' wallets and merchants' accounts
	usages   map[string]*bankUsage   // by mandate ID + " " + period key
	counts   map[string]*bankEffects // payments counted, per mandate
	nPayment map[string]int64        // payments counted per mandate

	fails   map[string]int
	checked map[string]int // declines checked, by code
}

// fail reports one anomaly; each category prints its first 10.
func (c *bankCheck) fail(category, format string, args ...any) {
	c.t.Helper()
	c.fails[category]++
	if c.fails[category] <= 10 {
		c.t.Errorf("%s: %s", category, fmt.Sprintf(format, args...))
	}
}

func checkBank(t *testing.T, b *bank) {
	c := &bankCheck{t: t, b: b, ops: b.ops(), byPay: map[string][]*bankOp{}, byKey: map[string][]*bankOp{},
		byID: map[string][]*bankOp{}, byMdt: map[string][]*bankOp{}, final: map[string]*bankPayment{},
		pays: map[string]*logPay{}, accts: map[string]*bankAcct{}, usages: map[string]*bankUsage{},
		counts: map[string]*bankEffects{}, nPayment: map[string]int64{}, fails: map[string]int{}, checked: map[string]int{}}
	c.index()
	c.load()
	c.replay()
	c.checkOnce()
	c.checkPayments()
	c.checkBalances()
	c.checkMandates()
	c.checkRevokes()
	c.checkDeclines()
	c.checkLedger()
	c.report()
}

func (c *bankCheck) index() {
	for _, o := range c.ops {
		if o.payment != "" {
			c.byPay[o.payment] = append(c.byPay[o.payment], o)
		}
		if o.class == "create" {
			c.byKey[o.key] = append(c.byKey[o.key], o)
		}
		for _, id := range []string{o.refund, o.topup, o.compensation} {
			if id != "" {
				c.byID[id] = append(c.byID[id], o)
			}
		}
		if o.mandate != "" && (o.class == "grant" || o.class == "revoke") {
			c.byMdt[o.mandate] = append(c.byMdt[o.mandate], o)
		}
	}
}

// load reads the payments through the API and the log from the database.
func (c *bankCheck) load() {
	b := c.b
	for _, p := range listAll(b, "/v1/payments", b.op, func(p bankPayment) string { return p.ID }) {
		c.final[p.ID] = &p
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.db)
	if err != nil {
		c.t.Fatalf("couldn't connect to the test's database: %v", err)
	}
	defer conn.Close(ctx)
	// The store keeps a commit's entries in bundles (internal/postgres/log.go):
	// a bundle's seq is its first entry's, the next ones follow it, and
	// first is the first entry's index in the tree (NULL while pending).
	rows, err := conn.Query(ctx, `SELECT seq, COALESCE(first, -1), n, entries FROM log_bundles ORDER BY seq`)
	if err != nil {
		c.t.Fatalf("couldn't read the log: %v", err)
	}
	for rows.Next() {
		var seq, first int64
		var n int
		var bundle []byte
		if err := rows.Scan(&seq, &first, &n, &bundle); err != nil {
			c.t.Fatalf("couldn't read the log: %v", err)
		}
		bodies, err := pb.SplitBundle(bundle, n)
		if err != nil {
			c.t.Fatalf("log bundle %d: %v", seq, err)
		}
		for i, body := range bodies {
			e := &bankEntry{seq: seq + int64(i), idx: -1}
			if first >= 0 {
				e.idx = first + int64(i)
			}
			if err := json.Unmarshal(body, e); err != nil {
				c.t.Fatalf("log entry %d is not JSON: %v: %s", e.seq, err, truncate(body, 300))
			}
			if len(e.Data) > 0 {
				if err := json.Unmarshal(e.Data, &e.d); err != nil && e.Type != pb.LogMandateGranted && e.Type != pb.LogAgentKeyAdded {
					c.fail("log", "%s: data does not parse: %v", e, err)
				}
				e.Data = clip(e.Data, 300) // parsed; kept to be shown
			}
			c.entries = append(c.entries, e)
		}
	}
	if err := rows.Err(); err != nil {
		c.t.Fatalf("couldn't read the log: %v", err)
	}
	pending := 0
	for _, e := range c.entries {
		if e.idx < 0 {
			pending++
		}
	}
	if pending > 0 {
		c.fail("log", "%d of %d entries are not in the tree after a checkpoint was asked of every process", pending, len(c.entries))
	}
}

func (c *bankCheck) count(mandate string) *bankEffects {
	x := c.counts[mandate]
	if x == nil {
		x = &bankEffects{}
		c.counts[mandate] = x
	}
	return x
}

func (c *bankCheck) acct(owner string) *bankAcct {
	a := c.accts[owner]
	if a == nil {
		a = &bankAcct{}
		c.accts[owner] = a
	}
	return a
}

// earliest is the lower bound of an effect made at entry e by one of ops:
// the earliest invocation of those that may have acted, and no earlier
// than e's time. ok is false when none of them may have acted.
func earliest(ops []*bankOp, e *bankEntry, pred func(*bankOp) bool) (time.Time, bool) {
	var lo time.Time
	found := false
	for _, o := range ops {
		if !o.couldHaveActed() || (pred != nil && !pred(o)) {
			continue
		}
		if !found || o.inv.Before(lo) {
			lo, found = o.inv, true
		}
	}
	if !found || e.Time.After(lo) {
		lo = e.Time
	}
	return lo, found
}

// acked is the upper bound of an effect that ops acknowledged: the earliest
// completion of those that answered 2xx (and satisfy pred); zero if none.
func acked(ops []*bankOp, pred func(*bankOp) bool) time.Time {
	var up time.Time
	for _, o := range ops {
		if o.outcome() != outOK || (pred != nil && !pred(o)) {
			continue
		}
		if up.IsZero() || o.comp.Before(up) {
			up = o.comp
		}
	}
	return up
}

func (c *bankCheck) classOps(pay, class string) []*bankOp {
	var out []*bankOp
	for _, o := range c.byPay[pay] {
		if o.class == class {
			out = append(out, o)
		}
	}
	return out
}

// authorizers are the operations that may have placed p's hold: its
// creation, or an approval.
func (c *bankCheck) authorizers(p *logPay, basis string) []*bankOp {
	if basis == "confirmation" {
		return c.classOps(p.id, "approve")
	}
	return c.byKey[p.key]
}

// replay applies the log in commit order and files each entry's effects
// with the bounds of when they took effect. It checks the invariants after
// every batch: the database checks a batch's net change (no_overdraft and
// within_budget are CHECK constraints on the rows the batch updates), and
// the requests of one batch were all in flight at once, so any order of
// them is a linearization; a state inside a batch was never committed. A
// batch's entries share their time, and the batches that change one
// account or budget period are one after the other in seq (see
// TestBankMultiProcess), so a key's batch is whole when an entry of
// another batch changes that key, or when the log ends.
func (c *bankCheck) replay() {
	b := c.b
	mandates := map[string]*bankMandate{}
	b.mu.Lock()
	maps.Copy(mandates, b.mandates)
	b.mu.Unlock()
	isMerchant := map[string]bool{}
	for _, m := range b.merchants {
		isMerchant[m.id] = true
	}
	type pending struct {
		batch time.Time
		check func()
	}
	open := map[string]pending{}
	// changes says that e changes key, whose invariant check is to run once
	// e's batch is whole; it first runs the check of key's previous batch.
	changes := func(key string, e *bankEntry, check func()) {
		if p, ok := open[key]; ok && !p.batch.Equal(e.Time) {
			p.check()
		}
		open[key] = pending{e.Time, check}
	}
	account := func(owner string, e *bankEntry) *bankAcct {
		a := c.acct(owner)
		changes("account "+owner, e, func() {
			if a.avail >= 0 {
				return
			}
			kind := "wallet"
			if isMerchant[owner] {
				kind = "merchant account"
			}
			var last []string
			for _, x := range a.effects[max(0, len(a.effects)-8):] {
				last = append(last, fmt.Sprintf("%+d seq %d idx %d %s %s at %s", x.delta, x.e.seq, x.e.idx, x.e.Type, x.e.Subject,
					x.e.Time.UTC().Format("15:04:05.000000")))
			}
			c.fail("negative", "%s %s is at %d after the batch of %s; its last entries, in seq order: [%s]",
				kind, owner, a.avail, e, strings.Join(last, "; "))
		})
		return a
	}
	usage := func(p *logPay, e *bankEntry) *bankUsage {
		k := p.mandate.id + " " + p.period
		u := c.usages[k]
		if u == nil {
			u = &bankUsage{m: p.mandate, period: p.period}
			c.usages[k] = u
		}
		changes("usage "+k, e, func() {
			switch m := u.m; {
			case u.spent > m.budget:
				c.fail("budget overspent", "mandate %s (budget %d per %s) period %s has %d reserved after the batch of %s",
					m.id, m.budget, m.period, u.period, u.spent, e)
			case u.spent < 0:
				c.fail("budget", "mandate %s period %s: usage below zero (%d) after the batch of %s", m.id, u.period, u.spent, e)
			}
		})
		return u
	}
	// giveBack returns released of p's reservation to its budget period.
	giveBack := func(p *logPay, released int64, up time.Time, e *bankEntry) {
		if p.mandate == nil || released <= 0 {
			return
		}
		u := usage(p, e)
		u.spent -= released
		u.add(bankEffect{delta: released, upper: up, e: e})
	}
	for _, e := range c.entries {
		switch e.Type {
		case pb.LogWalletToppedUp:
			ops := c.byID[e.d.TopupID]
			if len(ops) == 0 {
				// The answer was lost: a top-up of the same amount by the user.
				for _, o := range c.ops {
					if o.class == "topup" && o.user == e.Subject && o.amount == e.d.Amount && o.outcome() == outUnknown {
						ops = append(ops, o)
					}
				}
			}
			if _, ok := earliest(ops, e, nil); !ok {
				c.fail("phantom", "%s: no top-up operation could have made it", e)
			}
			a := account(e.Subject, e)
			a.avail += e.d.Amount
			a.add(bankEffect{delta: e.d.Amount, upper: acked(ops, nil), e: e})
			continue
		case pb.LogMandateGranted, pb.LogMandateRevoked, pb.LogAgentKeyAdded, pb.LogAgentKeyRevoked:
			continue
		}
		p := c.pays[e.Subject]
		if e.Type == pb.LogPaymentCreated {
			if p != nil {
				c.fail("once", "payment %s created twice: %s", e.Subject, e)
				continue
			}
			p = &logPay{id: e.Subject, created: e, d: e.d, key: e.d.Metadata["bank_key"], status: "created"}
			if e.d.MandateID != "" {
				if p.mandate = mandates[e.d.MandateID]; p.mandate == nil {
					c.fail("phantom", "%s: a mandate no acknowledged grant made", e)
				} else {
					p.period = p.mandate.periodKey(e.Time.Truncate(time.Second))
				}
			}
			c.pays[p.id] = p
			if len(c.byKey[p.key]) == 0 {
				c.fail("phantom", "%s: no operation sent its Idempotency-Key %q", e, p.key)
			}
			continue
		}
		if p == nil {
			if strings.HasPrefix(e.Subject, pb.PrefixPayment) {
				c.fail("log", "%s: an entry of a payment with no payment.created entry before it", e)
			}
			continue
		}
		switch e.Type {
		case pb.LogPaymentAuthorized:
			if p.authorized != nil {
				c.fail("once", "payment %s authorized twice: %s and %s", p.id, p.authorized, e)
			}
			p.authorized, p.status, p.held = e, "authorized", p.d.Amount
			ops := c.authorizers(p, e.d.Basis)
			lo, ok := earliest(ops, e, nil)
			if !ok {
				c.fail("phantom", "%s: no operation that could have acted authorized it; candidates: %v", e, ops)
			}
			wallet, merchant := account(p.d.PayerID, e), account(p.d.MerchantID, e)
			wallet.avail -= p.d.Amount
			wallet.pending += p.d.Amount
			merchant.pending += p.d.Amount
			wallet.add(bankEffect{delta: -p.d.Amount, lower: lo, e: e})
			if m := p.mandate; m != nil {
				u := usage(p, e)
				u.spent += p.d.Amount
				u.add(bankEffect{delta: -p.d.Amount, lower: lo, e: e})
				c.count(m.id).add(bankEffect{delta: -1, lower: lo, e: e})
				c.nPayment[m.id]++
				if m.maxPayments > 0 && c.nPayment[m.id] > m.maxPayments {
					c.fail("payment cap passed", "mandate %s (max_payments %d) has made %d payments after %s", m.id, m.maxPayments, c.nPayment[m.id], e)
				}
				if p.d.Amount > m.maxAmount {
					c.fail("limit", "mandate %s (max_amount %d) authorized %d: %s", m.id, m.maxAmount, p.d.Amount, e)
				}
				if len(m.merchants) > 0 && !slices.Contains(m.merchants, p.d.MerchantID) {
					c.fail("limit", "mandate %s (merchants %v) authorized a payment to %s: %s", m.id, m.merchants, p.d.MerchantID, e)
				}
				if p.d.AgentID != m.agent.id {
					c.fail("limit", "mandate %s of agent %s authorized a payment by %s: %s", m.id, m.agent.id, p.d.AgentID, e)
				}
			}
		case pb.LogPaymentCaptured:
			if p.status != "authorized" || p.authorized == nil {
				c.fail("once", "payment %s captured while %s: %s", p.id, p.status, e)
				continue
			}
			var ops []*bankOp
			if p.d.CaptureMethod == string(pb.CaptureAutomatic) {
				ops = c.authorizers(p, p.authorized.d.Basis)
			} else {
				ops = c.classOps(p.id, "capture")
			}
			if _, ok := earliest(ops, e, nil); !ok {
				c.fail("phantom", "%s: no operation that could have acted captured it", e)
			}
			up := acked(ops, func(o *bankOp) bool { return o.pstatus == "captured" })
			if e.d.Amount+e.d.Released != p.held {
				c.fail("log", "%s: captures %d and releases %d of a hold of %d", e, e.d.Amount, e.d.Released, p.held)
			}
			p.status, p.captured, p.held = "captured", e.d.Amount, 0
			wallet, merchant := account(p.d.PayerID, e), account(p.d.MerchantID, e)
			wallet.avail += e.d.Released
			wallet.pending -= e.d.Amount + e.d.Released
			merchant.pending -= e.d.Amount + e.d.Released
			merchant.avail += e.d.Amount - e.d.Fee
			wallet.add(bankEffect{delta: e.d.Released, upper: up, e: e})
			merchant.add(bankEffect{delta: e.d.Amount - e.d.Fee, upper: up, e: e})
			giveBack(p, e.d.Released, up, e)
		case pb.LogPaymentCanceled, pb.LogPaymentExpired:
			var up time.Time
			if e.Type == pb.LogPaymentCanceled {
				ops := c.classOps(p.id, "cancel")
				if _, ok := earliest(ops, e, nil); !ok {
					c.fail("phantom", "%s: no cancel that could have acted made it", e)
				}
				up = acked(ops, func(o *bankOp) bool { return o.pstatus == "canceled" })
			} else if f := c.final[p.id]; f != nil && f.AuthorizationExpiresAt != nil {
				// An operation refused because the hold had run out saw it
				// expired (or expired it itself).
				for _, o := range c.byPay[p.id] {
					if o.status == 409 && o.inv.After(*f.AuthorizationExpiresAt) && (up.IsZero() || o.comp.Before(up)) {
						up = o.comp
					}
				}
			}
			if e.d.Released != p.held {
				c.fail("log", "%s: releases %d of a hold of %d", e, e.d.Released, p.held)
			}
			p.held = 0
			p.status = strings.TrimPrefix(e.Type, "payment.")
			if e.d.Released > 0 {
				wallet, merchant := account(p.d.PayerID, e), account(p.d.MerchantID, e)
				wallet.avail += e.d.Released
				wallet.pending -= e.d.Released
				merchant.pending -= e.d.Released
				wallet.add(bankEffect{delta: e.d.Released, upper: up, e: e})
			}
			giveBack(p, e.d.Released, up, e)
		case pb.LogPaymentRefunded:
			ops := c.byID[e.d.RefundID]
			if len(ops) == 0 {
				for _, o := range c.byPay[p.id] {
					if (o.class == "refund" || o.class == "resolve") && o.outcome() == outUnknown {
						ops = append(ops, o)
					}
				}
			}
			lo, ok := earliest(ops, e, nil)
			if !ok {
				c.fail("phantom", "%s: no refund or resolution that could have acted made it", e)
			}
			up := acked(ops, nil)
			p.refunded += e.d.Amount
			if p.refunded > p.captured {
				c.fail("once", "payment %s refunded %d of %d captured after %s", p.id, p.refunded, p.captured, e)
			}
			if p.refunded == p.captured {
				p.status = "refunded"
			}
			wallet := account(p.d.PayerID, e)
			wallet.avail += e.d.Amount
			wallet.add(bankEffect{delta: e.d.Amount, upper: up, e: e})
			if part := e.d.Amount - e.d.FeeReturned; part > 0 {
				merchant := account(p.d.MerchantID, e)
				merchant.avail -= part
				merchant.add(bankEffect{delta: -part, lower: lo, e: e})
			}
			giveBack(p, e.d.Amount, up, e)
		case pb.LogCompensationPaid:
			ops := c.byID[e.d.CompensationID]
			if len(ops) == 0 {
				for _, o := range c.byPay[p.id] {
					if o.class == "resolve" && o.outcome() == outUnknown {
						ops = append(ops, o)
					}
				}
			}
			if _, ok := earliest(ops, e, nil); !ok {
				c.fail("phantom", "%s: no resolution that could have acted made it", e)
			}
			wallet := account(p.d.PayerID, e)
			wallet.avail += e.d.Amount
			wallet.add(bankEffect{delta: e.d.Amount, upper: acked(ops, nil), e: e})
		case pb.LogPaymentDeclined:
			p.status = "declined"
		case pb.LogConfirmationAsked:
			p.status = "requires_confirmation"
		case pb.LogConfirmationDenied:
			p.status = "canceled"
		}
	}
	for _, k := range slices.Sorted(maps.Keys(open)) {
		open[k].check()
	}
}

// checkOnce: every Idempotency-Key made at most one payment, refund or
// top-up, and every acknowledged one is there.
func (c *bankCheck) checkOnce() {
	byKey := map[string][]string{}
	for id, p := range c.final {
		if k := p.Metadata["bank_key"]; k != "" {
			byKey[k] = append(byKey[k], id)
		}
		if c.pays[id] == nil {
			c.fail("once", "payment %s is listed but has no payment.created entry", id)
		}
	}
	for k, ids := range byKey {
		if len(ids) > 1 {
			c.fail("once", "Idempotency-Key %s made %d payments: %v; operations %v", k, len(ids), ids, c.byKey[k])
		}
	}
	for id := range c.pays {
		if c.final[id] == nil {
			c.fail("once", "payment %s is in the log but not listed", id)
		}
	}
	// Refunds and top-ups: each acknowledged ID exactly once in the log.
	seen := map[string]int{}
	for _, e := range c.entries {
		switch e.Type {
		case pb.LogPaymentRefunded:
			seen[e.d.RefundID]++
		case pb.LogWalletToppedUp:
			seen[e.d.TopupID]++
		case pb.LogCompensationPaid:
			seen[e.d.CompensationID]++
		}
	}
	for id, n := range seen {
		if n > 1 {
			c.fail("once", "%s is in the log %d times", id, n)
		}
	}
	for id, ops := range c.byID {
		if acked(ops, nil).IsZero() {
			continue
		}
		if seen[id] != 1 {
			c.fail("once", "%s was acknowledged by %v but is in the log %d times", id, ops, seen[id])
		}
	}
	// Dispute resolutions: at most one per dispute.
	resolved := map[string]int{}
	for _, e := range c.entries {
		if e.Type == pb.LogDisputeResolved {
			resolved[e.d.DisputeID]++
		}
	}
	for id, n := range resolved {
		if n > 1 {
			c.fail("once", "dispute %s resolved %d times", id, n)
		}
	}
	for _, o := range c.ops {
		if o.class == "resolve" && o.outcome() == outOK && resolved[o.dispute] != 1 {
			c.fail("once", "%s: acknowledged, but the dispute is resolved %d times in the log", o, resolved[o.dispute])
		}
	}
}

// checkPayments: every acknowledged payment is listed, with a status and
// amounts consistent with what was acknowledged for it, and with its log.
func (c *bankCheck) checkPayments() {
	settled := []string{"authorized", "captured", "refunded", "canceled", "expired"}
	paid := []string{"captured", "refunded"}
	refunds := map[string]int64{} // acknowledged, per payment
	unknownRefunds := map[string]bool{}
	for _, o := range c.ops {
		var p *bankPayment
		if o.payment != "" {
			p = c.final[o.payment]
		}
		answered := o.outcome() == outOK || (o.outcome() == outDeclined && o.payment != "")
		if answered && o.payment != "" && p == nil && (o.class == "create" || o.class == "approve") {
			c.fail("lost", "%s: acknowledged payment %s is not listed", o, o.payment)
			continue
		}
		if p == nil {
			continue
		}
		status := string(p.Status)
		bad := func(format string, args ...any) {
			c.fail("status", "%s: but the payment is now %s (captured %d, refunded %d, decline %q): %s", o,
				status, p.AmountCaptured, p.AmountRefunded, p.DeclineCode, fmt.Sprintf(format, args...))
		}
		switch {
		case o.class == "create" && answered:
			if p.Metadata["bank_key"] != o.key {
				bad("it was made by key %q", p.Metadata["bank_key"])
			}
			fallthrough
		case o.class == "approve" && answered:
			switch o.pstatus {
			case "":
				if status != "declined" || string(p.DeclineCode) != o.code {
					bad("it was declined with %s", o.code)
				}
			case "captured":
				if !slices.Contains(paid, status) || p.AmountCaptured != p.Amount {
					bad("it was captured in full")
				}
			case "authorized":
				if !slices.Contains(settled, status) {
					bad("it was authorized")
				}
			}
		case o.class == "deny" && answered:
			if status != "canceled" {
				bad("it was denied")
			}
		case o.class == "capture" && answered:
			if !slices.Contains(paid, status) || p.AmountCaptured != o.amount {
				bad("%d was captured", o.amount)
			}
		case o.class == "cancel" && answered:
			if status != "canceled" {
				bad("it was canceled")
			}
		case o.class == "refund" || o.class == "resolve":
			switch {
			case o.outcome() == outOK:
				if o.refund != "" || o.class == "refund" {
					refunds[p.ID] += o.amount
				}
			case o.outcome() == outUnknown:
				unknownRefunds[p.ID] = true
			}
		}
	}
	for id, p := range c.final {
		if p.AmountRefunded < refunds[id] || (!unknownRefunds[id] && p.AmountRefunded != refunds[id]) {
			c.fail("status", "payment %s has %d refunded; acknowledged refunds sum to %d (answers lost: %v)", id, p.AmountRefunded, refunds[id], unknownRefunds[id])
		}
		if p.AmountRefunded < 0 || p.AmountRefunded > p.AmountCaptured || p.AmountCaptured > p.Amount {
			c.fail("status", "payment %s: amount %d, captured %d, refunded %d", id, p.Amount, p.AmountCaptured, p.AmountRefunded)
		}
		lp := c.pays[id]
		if lp == nil {
			continue
		}
		if lp.status != string(p.Status) || lp.captured != p.AmountCaptured || lp.refunded != p.AmountRefunded {
			c.fail("status", "payment %s is %s (captured %d, refunded %d); its log says %s (captured %d, refunded %d)",
				id, p.Status, p.AmountCaptured, p.AmountRefunded, lp.status, lp.captured, lp.refunded)
		}
	}
}

// checkBalances: every wallet's and merchant account's balance is what the
// log says.
func (c *bankCheck) checkBalances() {
	b := c.b
	keys := map[string]string{}
	for _, u := range b.users {
		keys[u.id] = u.key
	}
	for _, m := range b.merchants {
		keys[m.id] = m.key
	}
	for owner, key := range keys {
		var bal struct {
			Balances []pb.Balance `json:"balances"`
		}
		b.getJSON(0, "/v1/balance", key, &bal)
		var got pb.Balance
		for _, x := range bal.Balances {
			if x.Currency == bankCurrency {
				got = x
			}
		}
		a := c.acct(owner)
		if got.Available != a.avail || got.Pending != a.pending {
			c.fail("balance", "%s has %d available, %d pending; its log entries sum to %d available, %d pending",
				owner, got.Available, got.Pending, a.avail, a.pending)
		}
		if got.Available < 0 {
			c.fail("negative", "%s has %d available", owner, got.Available)
		}
	}
}

// checkMandates: each budget period's usage, summed from the payments'
// amounts, is within the budget and equals the log's; the mandates' own
// counters say the same.
func (c *bankCheck) checkMandates() {
	b := c.b
	fromPays := map[string]int64{}
	for _, p := range c.final {
		lp := c.pays[p.ID]
		if lp == nil || lp.mandate == nil {
			continue
		}
		var used int64
		switch p.Status {
		case pb.StatusAuthorized:
			used = p.Amount
		case pb.StatusCaptured, pb.StatusRefunded:
			used = p.AmountCaptured - p.AmountRefunded
		}
		fromPays[lp.mandate.id+" "+lp.period] += used
	}
	for k, used := range fromPays {
		u := c.usages[k]
		var spent, budget int64
		if u != nil {
			spent, budget = u.spent, u.m.budget
		}
		if used != spent {
			c.fail("budget", "mandate period %s: the payments hold %d, the log %d", k, used, spent)
		}
		if u != nil && used > budget {
			c.fail("budget overspent", "mandate period %s: the payments hold %d of a budget of %d at the end", k, used, budget)
		}
	}
	for _, u := range b.users {
		type view struct {
			ID              string `json:"id"`
			RemainingBudget int64  `json:"remaining_budget"`
			PaymentsCount   int64  `json:"payments_count"`
		}
		for _, v := range listAll(b, "/v1/mandates", u.key, func(v view) string { return v.ID }) {
			b.mu.Lock()
			m := b.mandates[v.ID]
			b.mu.Unlock()
			if m == nil {
				c.fail("phantom", "mandate %s is listed; no acknowledged grant made it", v.ID)
				continue
			}
			var spent int64
			if us := c.usages[m.id+" "+m.periodKey(time.Now())]; us != nil {
				spent = us.spent
			}
			if v.RemainingBudget != m.budget-spent || v.PaymentsCount != c.nPayment[m.id] {
				c.fail("counter", "mandate %s shows %d of %d left and %d payments; its payments' log entries leave %d and count %d",
					m.id, v.RemainingBudget, m.budget, v.PaymentsCount, m.budget-spent, c.nPayment[m.id])
			}
		}
	}
}

// checkRevokes: once a revoke is acknowledged, no operation invoked after
// it makes a payment under the mandate or approves one.
func (c *bankCheck) checkRevokes() {
	revoked := map[string]time.Time{}
	for id, ops := range c.byMdt {
		if t := acked(ops, func(o *bankOp) bool { return o.class == "revoke" }); !t.IsZero() {
			revoked[id] = t
		}
	}
	mandateOf := func(o *bankOp) string {
		if o.mandate != "" {
			return o.mandate
		}
		if lp := c.pays[o.payment]; lp != nil && lp.mandate != nil {
			return lp.mandate.id
		}
		return ""
	}
	for _, o := range c.ops {
		if o.class != "create" && o.class != "approve" {
			continue
		}
		at, ok := revoked[mandateOf(o)]
		if !ok || !o.inv.After(at) {
			continue
		}
		c.checked["after revoke"]++
		switch {
		case o.outcome() == outOK && o.class == "create":
			c.fail("revoked mandate honoured", "%s: invoked %s after the revoke of %s was acknowledged, and answered %s",
				o, o.inv.Sub(at).Round(time.Microsecond), mandateOf(o), o.pstatus)
		case o.outcome() == outOK && (o.pstatus == "authorized" || o.pstatus == "captured"):
			c.fail("revoked mandate approved", "%s: invoked %s after the revoke of %s was acknowledged, and answered %s",
				o, o.inv.Sub(at).Round(time.Microsecond), mandateOf(o), o.pstatus)
		case o.class == "create" && o.outcome() == outDeclined && o.code != string(pb.DeclineMandateRevoked):
			c.fail("revoked mandate checked", "%s: invoked after the revoke of %s was acknowledged, declined %s rather than mandate_revoked", o, mandateOf(o), o.code)
		}
	}
	// And from the log, which also knows what operations whose answer was
	// lost did: no authorization under a mandate by an operation invoked
	// only after its revoke was acknowledged.
	for _, p := range c.pays {
		if p.authorized == nil || p.mandate == nil {
			continue
		}
		at, ok := revoked[p.mandate.id]
		if !ok {
			continue
		}
		ops := c.authorizers(p, p.authorized.d.Basis)
		if slices.ContainsFunc(ops, func(o *bankOp) bool {
			return (o.couldHaveActed() && !o.inv.After(at)) || o.outcome() == outOK // an answer: reported above
		}) {
			continue
		}
		c.fail("revoked mandate honoured", "%s: mandate %s was revoked (acknowledged %s) before every operation that could have authorized it began: %v",
			p.authorized, p.mandate.id, at.UTC().Format("15:04:05.000000"), ops)
	}
}

// explain lists the effects near [inv, comp] as the model places them:
// what may have been taken by then, and what was given back when.
func explain(effects []bankEffect, inv, comp time.Time) string {
	var lines []string
	rel := func(t time.Time) string { return fmt.Sprintf("inv%+.1fms", float64(t.Sub(inv).Microseconds())/1000) }
	from := inv.Add(-2 * time.Second)
	for _, e := range effects {
		switch {
		case e.delta < 0 && !e.lower.Before(from) && !e.lower.After(comp):
			lines = append(lines, fmt.Sprintf("%+d from %s (%s %s, %s)", e.delta, rel(e.lower), e.e.Type, e.e.Subject, rel(e.e.Time)))
		case e.delta > 0 && !e.upper.IsZero() && !e.upper.Before(from) && !e.upper.After(comp):
			lines = append(lines, fmt.Sprintf("%+d by %s (%s %s, %s)", e.delta, rel(e.upper), e.e.Type, e.e.Subject, rel(e.e.Time)))
		case e.delta > 0 && !e.e.Time.Before(from) && !e.e.Time.After(comp):
			lines = append(lines, fmt.Sprintf("%+d unacknowledged (%s %s, %s)", e.delta, e.e.Type, e.e.Subject, rel(e.e.Time)))
		}
	}
	if len(lines) > 12 {
		lines = append(lines[:12], fmt.Sprintf("… %d more", len(lines)-12))
	}
	return fmt.Sprintf("interval %.1fms; effects near it: [%s]", float64(comp.Sub(inv).Microseconds())/1000, strings.Join(lines, "; "))
}

// checkDeclines: every decline could have been right at some instant of
// its operation (the model in TestBankMultiProcess's doc comment).
func (c *bankCheck) checkDeclines() {
	b := c.b
	b.mu.Lock()
	mandates := maps.Clone(b.mandates)
	b.mu.Unlock()
	for _, o := range c.ops {
		if o.outcome() != outDeclined {
			continue
		}
		c.checked[o.code]++
		m := mandates[o.mandate]
		lp := c.pays[o.payment]
		why := func(format string, args ...any) {
			c.fail("false "+o.code, "%s: %s", o, fmt.Sprintf(format, args...))
		}
		switch {
		case o.code == string(pb.DeclineInsufficientFunds) && (o.class == "create" || o.class == "approve"):
			if room := c.acct(o.user).minRoom(0, o.inv, o.comp); room >= o.amount {
				path := "placing the hold"
				switch {
				case o.class == "approve":
					path = "placing the hold of an approved payment"
				case o.agent != "" && (m == nil || (m.confirm > 0 && o.amount > m.confirm)):
					path = "checking the wallet before asking for confirmation"
				}
				why("wallet %s had at least %d available throughout, for a payment of %d (declined while %s); %s", o.user, room, o.amount,
					path, explain(c.acct(o.user).effects, o.inv, o.comp))
			}
		case o.code == string(pb.DeclineInsufficientFunds) && (o.class == "refund" || o.class == "resolve"):
			need := o.amount
			if p := c.final[o.payment]; need == 0 && p != nil {
				need = p.AmountCaptured // a full refund: what was left, at most all that was captured
			}
			if room := c.acct(o.merchant).minRoom(0, o.inv, o.comp); need > 0 && room >= need {
				why("merchant %s had at least %d available throughout, for a refund of at most %d", o.merchant, room, need)
			}
		case o.code == string(pb.DeclineMandateBudgetExhausted):
			if m == nil || lp == nil {
				why("a budget decline of a payment the log does not know under a mandate")
				continue
			}
			u := c.usages[m.id+" "+lp.period]
			if u == nil {
				u = &bankUsage{}
			}
			effects := u.effects
			if room := u.minRoom(m.budget, o.inv, o.comp); room >= o.amount {
				why("mandate %s (budget %d) had at least %d left throughout, for a payment of %d; %s", m.id, m.budget, room, o.amount,
					explain(effects, o.inv, o.comp))
			}
		case o.code == string(pb.DeclineMandateMaxPayments):
			if m == nil || m.maxPayments == 0 {
				why("mandate %s has no payment cap", o.mandate)
				continue
			}
			if room := c.count(m.id).minRoom(m.maxPayments, o.inv, o.comp); room > 0 {
				why("mandate %s (max_payments %d) had made at most %d payments by its completion", m.id, m.maxPayments, m.maxPayments-room)
			}
		case o.code == string(pb.DeclineMandateRevoked):
			if !slices.ContainsFunc(c.byMdt[o.mandate], func(r *bankOp) bool {
				return r.class == "revoke" && r.couldHaveActed() && r.inv.Before(o.comp)
			}) {
				why("no revoke of %s was invoked before it completed", o.mandate)
			}
		case o.code == string(pb.DeclineMandateAmountExceeded):
			if m == nil || o.amount <= m.maxAmount {
				why("the amount is within the mandate's max_amount")
			}
		case o.code == string(pb.DeclineMandateMerchant):
			if m == nil || len(m.merchants) == 0 || slices.Contains(m.merchants, o.merchant) {
				why("the mandate allows merchant %s", o.merchant)
			}
		default:
			c.fail("unexpected", "%s: a decline the workload never provokes", o)
		}
	}
	// A refused one-time code must have been taken by a later step first,
	// or have waited past the code's window.
	for _, o := range c.ops {
		if o.kind != "approve_totp" || o.code != "totp_invalid" {
			continue
		}
		c.checked["totp_invalid"]++
		later := slices.ContainsFunc(c.ops, func(x *bankOp) bool {
			return x.kind == "approve_totp" && x.user == o.user && x.step > o.step && x.inv.Before(o.comp)
		})
		if !later && o.comp.Sub(o.inv) < 25*time.Second {
			c.fail("false totp_invalid", "%s: a fresh one-time code (step %d) was refused", o, o.step)
		}
	}
}

// checkLedger: every process verifies the ledger, and the audit passes.
func (c *bankCheck) checkLedger() {
	b := c.b
	for i := range b.procs {
		var v struct {
			OK         bool `json:"ok"`
			Currencies []struct {
				Currency string `json:"currency"`
				Sum      int64  `json:"sum"`
			} `json:"currencies"`
		}
		raw := b.mustAt(i, "/v1/ledger/verify", b.op)
		if err := json.Unmarshal(raw, &v); err != nil || !v.OK {
			c.fail("ledger", "p%d: /v1/ledger/verify: %s", i, truncate(raw, 500))
		}
		for _, cur := range v.Currencies {
			if cur.Sum != 0 {
				c.fail("ledger", "p%d: %s sums to %d", i, cur.Currency, cur.Sum)
			}
		}
	}
	c.t.Logf("bank: audit of p%d: %s", len(b.procs)-1, auditOK(c.t, b.procs[len(b.procs)-1], b.op))
}

// report logs what the run did and how much the checks covered.
func (c *bankCheck) report() {
	b, t := c.b, c.t
	elapsed := b.runEnd.Sub(b.runStart)
	byKind := map[string]map[string]int{}
	retried, unknown := 0, 0
	for _, o := range c.ops {
		if byKind[o.kind] == nil {
			byKind[o.kind] = map[string]int{}
		}
		byKind[o.kind][o.label()]++
		if len(o.procs) > 1 {
			retried++
		}
		if o.outcome() == outUnknown {
			unknown++
		}
		if o.status >= 500 && o.status != 503 {
			c.fail("internal", "%s", o)
		}
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		var parts []string
		total := 0
		for _, l := range slices.Sorted(maps.Keys(byKind[k])) {
			parts = append(parts, fmt.Sprintf("%s ×%d", l, byKind[k][l]))
			total += byKind[k][l]
		}
		lines = append(lines, fmt.Sprintf("  %-28s %6d: %s", k, total, strings.Join(parts, ", ")))
	}
	t.Logf("bank: %d operations (the workload's in %s: %.0f/s) through %d processes; %d retried, %d with no known outcome; %d payments, %d log entries\n%s",
		len(c.ops), elapsed.Round(time.Millisecond), float64(b.runOps)/max(elapsed.Seconds(), 0.001), len(b.procs),
		retried, unknown, len(c.final), len(c.entries), strings.Join(lines, "\n"))
	statuses := map[string]int{}
	for _, p := range c.final {
		statuses[string(p.Status)]++
	}
	entries := map[string]int{}
	for _, e := range c.entries {
		if e.Type == pb.LogPaymentExpired && e.Actor.Role == string(pb.SystemActor.Role) {
			entries["expired by the sweeper"]++
		}
	}
	t.Logf("bank: payments at the end: %v; %v", statuses, entries)
	if len(b.extra) > 0 {
		t.Logf("bank: passkey options refused (the payment no longer waited): %v", b.extra)
	}
	codes := slices.Sorted(maps.Keys(c.checked))
	var parts []string
	for _, k := range codes {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, c.checked[k]))
	}
	t.Logf("bank: checked against the model: %s; budget periods replayed: %d; accounts replayed: %d", strings.Join(parts, ", "), len(c.usages), len(c.accts))
	for i, l := range b.plogs {
		var errs []string
		for _, line := range l.tail() {
			if strings.Contains(line, "level=ERROR") {
				errs = append(errs, line)
			}
		}
		if len(errs) > 0 {
			t.Logf("bank: p%d logged %d errors (of its last 200 lines), the last ones:\n  %s", i, len(errs), strings.Join(errs[max(0, len(errs)-10):], "\n  "))
		}
	}
	if len(c.fails) > 0 {
		var fs []string
		for _, k := range slices.Sorted(maps.Keys(c.fails)) {
			fs = append(fs, fmt.Sprintf("%s ×%d", k, c.fails[k]))
		}
		sort.Strings(fs)
		t.Errorf("bank: anomalies found: %s (seed %d)", strings.Join(fs, ", "), b.seed)
	}
}

// TestBankModelMinRoom checks the decline model's pessimistic state against
// a direct reading of its definition, on random effects, and on a case
// worked by hand.
func TestBankModelMinRoom(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// The definition: the least, over every instant t of [inv, comp], of
	// base plus the debits with lower ≤ t and the credits with upper < t.
	direct := func(base int64, effects []bankEffect, inv, comp time.Time) int64 {
		least := int64(math.MaxInt64)
		for t := inv; !t.After(comp); t = t.Add(time.Millisecond) {
			v := base
			for _, e := range effects {
				switch {
				case e.delta > 0 && !e.upper.IsZero() && e.upper.Before(t):
					v += e.delta
				case e.delta < 0 && !e.lower.After(t):
					v += e.delta
				}
			}
			least = min(least, v)
		}
		return least
	}
	// By hand: 100 topped up (acknowledged at 10), a hold of 80 that may
	// have been placed from 20, released by a cancel acknowledged at 40. A
	// decline over [30, 50] was right (20 left until 40); one over [45, 50]
	// was not (100 left throughout); one over [5, 15] was (nothing surely
	// there before 10).
	var x bankEffects
	x.add(bankEffect{delta: 100, upper: at(10)})
	x.add(bankEffect{delta: -80, lower: at(20)})
	x.add(bankEffect{delta: 80, upper: at(40)})
	x.add(bankEffect{delta: 50}) // never acknowledged: never counted
	for _, c := range []struct {
		inv, comp int
		want      int64
	}{{30, 50, 20}, {45, 50, 100}, {5, 15, 0}, {10, 20, 0}, {11, 19, 100}, {41, 41, 100}, {40, 40, 20}} {
		if got := x.minRoom(0, at(c.inv), at(c.comp)); got != c.want {
			t.Errorf("[%d, %d]: %d; want %d", c.inv, c.comp, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var x bankEffects
		for range rng.IntN(30) {
			e := bankEffect{delta: int64(rng.IntN(200) - 100)}
			if e.delta < 0 {
				e.lower = at(rng.IntN(100))
			} else if rng.IntN(5) > 0 {
				e.upper = at(rng.IntN(100))
			}
			x.add(e)
		}
		inv := rng.IntN(100)
		comp := inv + rng.IntN(30)
		base := int64(rng.IntN(300))
		if got, want := x.minRoom(base, at(inv), at(comp)), direct(base, x.effects, at(inv), at(comp)); got != want {
			t.Fatalf("[%d, %d] over %+v: %d; want %d", inv, comp, x.effects, got, want)
		}
	}
}
