// Package storetest is the conformance suite of pb.Store: every store
// (internal/sqlite, later internal/postgres) runs it from its own tests with
//
//	storetest.Run(t, func(t *testing.T) pb.Store { … open a fresh, empty store … })
//
// Each subtest opens its own store through open, which must return an empty
// store and arrange for it to be closed (t.Cleanup).
//
// What the contract leaves to the store, the suite does not assert: the
// precision of API times beyond the second (the service truncates them to
// whole seconds), of ledger and idempotency times beyond the millisecond,
// the time zone of times read back, and the order of LookupIdempotency's
// results.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T) pb.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s pb.Store)
	}{
		{"CommitAccounts", testCommitAccounts},
		{"CommitTransfers", testCommitTransfers},
		{"CommitPayments", testCommitPayments},
		{"PaymentVersions", testPaymentVersions},
		{"Mandates", testMandates},
		{"MandateUsage", testMandateUsage},
		{"TOTP", testTOTP},
		{"CodeFailures", testCodeFailures},
		{"Passkeys", testPasskeys},
		{"Confirmations", testConfirmations},
		{"Nonces", testNonces},
		{"AgentByKeyID", testAgentByKeyID},
		{"CommitRefundsAndTopups", testCommitRefundsAndTopups},
		{"CommitIdentities", testCommitIdentities},
		{"CommitEmptyBatch", testCommitEmptyBatch},
		{"Idempotency", testIdempotency},
		{"IdempotencyEmptyBody", testIdempotencyEmptyBody},
		{"IdempotencyNilBody", testIdempotencyNilBody},
		{"IdempotencyManyKeys", testIdempotencyManyKeys},
		{"AtomicDuplicateUser", testAtomicDuplicateUser},
		{"AtomicDuplicateIdempotency", testAtomicDuplicateIdempotency},
		{"AtomicDuplicateInBatch", testAtomicDuplicateInBatch},
		{"CommitCanceled", testCommitCanceled},
		{"NotFound", testNotFound},
		{"NextIDs", testNextIDs},
		{"PendingTransfer", testPendingTransfer},
		{"AccountsByOwner", testAccountsByOwner},
		{"ListPaymentsFilters", testListPaymentsFilters},
		{"ListPaymentsPagination", testListPaymentsPagination},
		{"ListPaymentsLimit", testListPaymentsLimit},
		{"ExpiredPayments", testExpiredPayments},
		{"DeleteIdempotency", testDeleteIdempotency},
		{"ScanLedger", testScanLedger},
		{"ScanLedgerCallbackError", testScanLedgerCallbackError},
		{"ConcurrentReads", testConcurrentReads},
		{"Log", testLog},
		{"LogAtomic", testLogAtomic},
		{"ClaimLogKey", testClaimLogKey},
		{"LogConcurrentIntegration", testLogConcurrentIntegration},
		{"PaymentLogHead", testPaymentLogHead},
		{"PaymentSubjectLog", testPaymentSubjectLog},
		{"Disputes", testDisputes},
		{"PaymentRisk", testPaymentRisk},
		{"RecentPayments", testRecentPayments},
		{"PaidMerchant", testPaidMerchant},
		{"PayerActivity", testPayerActivity},
		{"RiskRules", testRiskRules},
		{"MerchantFlags", testMerchantFlags},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			tc.f(t, s)
		})
	}
}

// t0 is the suite's epoch: a fixed time with sub-millisecond digits, so that
// precision loss beyond what a caller may rely on shows.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// big is 2^53+1: an int64 that a detour through float64 would corrupt.
const big = 1<<53 + 1

func commit(t *testing.T, s pb.Store, b *pb.Batch) {
	t.Helper()
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// asWriter fills in what the ledger writer would: each account's and usage
// row's change from what is committed now (all of it when new) and each
// payment's committed version, with
// the new version one more.
func asWriter(t *testing.T, s pb.Store, b *pb.Batch) {
	t.Helper()
	if b.AccountChanges == nil {
		for _, a := range b.Accounts {
			c := pb.AccountChange{DebitsPending: a.DebitsPending, DebitsPosted: a.DebitsPosted,
				CreditsPending: a.CreditsPending, CreditsPosted: a.CreditsPosted}
			if was, err := s.AccountByID(t.Context(), a.ID); err == nil {
				c.DebitsPending -= was.DebitsPending
				c.DebitsPosted -= was.DebitsPosted
				c.CreditsPending -= was.CreditsPending
				c.CreditsPosted -= was.CreditsPosted
			} else {
				c.Created = true
			}
			b.AccountChanges = append(b.AccountChanges, c)
		}
	}
	if b.UsageChanges == nil {
		for _, u := range b.Usage {
			c := pb.UsageChange{Spent: u.Spent, Payments: u.Payments}
			if was, err := s.MandateUsage(t.Context(), u.MandateID, u.PeriodKey); err == nil {
				c.Spent -= was.Spent
				c.Payments -= was.Payments
			}
			b.UsageChanges = append(b.UsageChanges, c)
		}
	}
	if b.PaymentVersions == nil {
		for i := range b.Payments {
			var v int64
			if was, err := s.Payment(t.Context(), b.Payments[i].ID); err == nil {
				v = was.Version
			}
			b.PaymentVersions = append(b.PaymentVersions, v)
			b.Payments[i].Version = v + 1
		}
	}
}

// wantNotFound checks that err is an *Error with code ErrNotFound.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got no error, want code %s", what, pb.ErrNotFound)
	} else if c := pb.ErrorCode(err); c != pb.ErrNotFound {
		t.Errorf("%s: got error %q with code %q, want code %q", what, err, c, pb.ErrNotFound)
	}
}

// sec and milli normalise a time to the precision the suite compares at.
func sec(tm time.Time) time.Time   { return tm.Truncate(time.Second).UTC() }
func milli(tm time.Time) time.Time { return tm.Truncate(time.Millisecond).UTC() }

// diff lists the fields of two structs of one type that differ, as
// "Field: got …, want …".
func diff(got, want any) []string {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	var out []string
	for i := range gv.NumField() {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			out = append(out, fmt.Sprintf("%s: got %s, want %s", gv.Type().Field(i).Name, show(g), show(w)))
		}
	}
	return out
}

func show(v any) string {
	rv := reflect.ValueOf(v)
	switch {
	case rv.Kind() == reflect.Pointer && rv.IsNil():
		return "nil"
	case rv.Kind() == reflect.Map && rv.IsNil():
		return "nil map"
	case rv.Kind() == reflect.Pointer:
		return fmt.Sprintf("&%#v", rv.Elem().Interface())
	}
	return fmt.Sprintf("%#v", v)
}

func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s differs from what was committed:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

func normTransfer(x pb.Transfer) pb.Transfer {
	if x.Timeout.IsZero() {
		x.Timeout = time.Time{} // zero: never expires
	} else {
		x.Timeout = milli(x.Timeout)
	}
	x.CreatedAt = milli(x.CreatedAt)
	return x
}

func normPayment(p pb.Payment) pb.Payment {
	p.Version = 0 // set by asWriter; testPaymentVersions checks it
	p.CreatedAt = sec(p.CreatedAt)
	if p.AuthorizationExpiresAt != nil {
		e := sec(*p.AuthorizationExpiresAt)
		p.AuthorizationExpiresAt = &e
	}
	return p
}

func checkTransfer(t *testing.T, what string, got *pb.Transfer, want pb.Transfer) {
	t.Helper()
	check(t, what, normTransfer(*got), normTransfer(want))
}

func checkPayment(t *testing.T, what string, got *pb.Payment, want pb.Payment) {
	t.Helper()
	check(t, what, normPayment(*got), normPayment(want))
}

func ptr[T any](v T) *T { return &v }

func payment(id, payer, merchant, agent string, created time.Time) pb.Payment {
	exp := created.Add(pb.DefaultAuthorizationTTL)
	return pb.Payment{ID: id, Object: "payment", Status: pb.StatusAuthorized, Amount: 1000, Currency: "CNY",
		MerchantID: merchant, PayerID: payer, AgentID: pb.OptString(agent), Description: "coffee",
		CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: &exp, Metadata: map[string]string{},
		Assurance: pb.AssuranceSigned, CreatedAt: created}
}

func idem(caller, key string, created time.Time) pb.IdempotencyRecord {
	return pb.IdempotencyRecord{Caller: caller, Key: key, RequestHash: sha256.Sum256([]byte(caller + "\x00" + key)),
		Status: 201, Body: []byte(`{"caller":"` + caller + `","key":"` + key + `"}`), CreatedAt: created}
}

func testCommitAccounts(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts := []pb.Account{
		{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: big},
		{ID: 2, Owner: "usr_alice", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: big, DebitsPending: 300},
		{ID: 3, Owner: "mch_cafe", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPending: 300},
	}
	commit(t, s, &pb.Batch{Accounts: accts})
	for _, want := range accts {
		got, err := s.AccountByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("AccountByID(%d) after insert: %v", want.ID, err)
		}
		check(t, fmt.Sprintf("AccountByID(%d) after insert", want.ID), *got, want)
		got, err = s.Account(ctx, want.Owner, want.Currency)
		if err != nil {
			t.Fatalf("Account(%q, %q) after insert: %v", want.Owner, want.Currency, err)
		}
		check(t, fmt.Sprintf("Account(%q, %q) after insert", want.Owner, want.Currency), *got, want)
	}

	// A second commit with the same IDs carries the final balances.
	upd := []pb.Account{
		{ID: 2, Owner: "usr_alice", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: big, DebitsPosted: 250, DebitsPending: 0},
		{ID: 3, Owner: "mch_cafe", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: 250},
	}
	commit(t, s, &pb.Batch{Accounts: upd})
	for _, want := range append([]pb.Account{accts[0]}, upd...) {
		got, err := s.AccountByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("AccountByID(%d) after update: %v", want.ID, err)
		}
		check(t, fmt.Sprintf("AccountByID(%d) after update", want.ID), *got, want)
		got, err = s.Account(ctx, want.Owner, want.Currency)
		if err != nil {
			t.Fatalf("Account(%q, %q) after update: %v", want.Owner, want.Currency, err)
		}
		check(t, fmt.Sprintf("Account(%q, %q) after update", want.Owner, want.Currency), *got, want)
	}
}

// ledgerFixture is three accounts and one transfer of every kind: a posted
// top-up, a hold that is posted, and a hold without timeout that is voided.
func ledgerFixture() ([]pb.Account, []pb.Transfer) {
	accts := []pb.Account{
		{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: big},
		{ID: 2, Owner: "usr_alice", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: big, DebitsPosted: 400},
		{ID: 3, Owner: "mch_cafe", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: 400},
	}
	trs := []pb.Transfer{
		{ID: 1, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 2, Amount: big, Currency: "CNY", Ref: "top_1", CreatedAt: t0},
		{ID: 2, Kind: pb.TransferPending, DebitAccountID: 2, CreditAccountID: 3, Amount: 500, Currency: "CNY",
			Timeout: t0.Add(pb.DefaultAuthorizationTTL + 123456789), Ref: "pay_1", CreatedAt: t0.Add(1001500 * time.Microsecond)},
		{ID: 3, Kind: pb.TransferPost, DebitAccountID: 2, CreditAccountID: 3, Amount: 400, Currency: "CNY", PendingID: 2,
			Ref: "pay_1", CreatedAt: t0.Add(2 * time.Second)},
		{ID: 4, Kind: pb.TransferPending, DebitAccountID: 2, CreditAccountID: 3, Amount: 250, Currency: "CNY", Ref: "pay_2",
			CreatedAt: t0.Add(3 * time.Second)},
		{ID: 5, Kind: pb.TransferVoid, DebitAccountID: 2, CreditAccountID: 3, Amount: 250, Currency: "CNY", PendingID: 4,
			Ref: "pay_2", CreatedAt: t0.Add(4 * time.Second)},
	}
	return accts, trs
}

func scanAll(t *testing.T, s pb.Store) ([]pb.Account, []pb.Transfer) {
	t.Helper()
	var as []pb.Account
	var ts []pb.Transfer
	err := s.ScanLedger(t.Context(), func(a *pb.Account) error {
		if len(ts) > 0 {
			return fmt.Errorf("account %d came after a transfer", a.ID)
		}
		as = append(as, *a)
		return nil
	}, func(x *pb.Transfer) error {
		ts = append(ts, *x)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanLedger: %v", err)
	}
	return as, ts
}

func testCommitTransfers(t *testing.T, s pb.Store) {
	accts, trs := ledgerFixture()
	// Two commits: the post and void reference holds of an earlier batch,
	// and a hold and its post may also share a batch (transfers 2 and 3).
	commit(t, s, &pb.Batch{Accounts: accts, Transfers: trs[:3]})
	commit(t, s, &pb.Batch{Transfers: trs[3:]})
	_, got := scanAll(t, s)
	if len(got) != len(trs) {
		t.Fatalf("ScanLedger returned %d transfers, want %d", len(got), len(trs))
	}
	for i, want := range trs {
		checkTransfer(t, fmt.Sprintf("transfer %d (kind %d) read by ScanLedger", want.ID, want.Kind), &got[i], want)
	}
	for _, id := range []int64{2, 4} {
		got, _, err := s.PendingTransfer(t.Context(), id)
		if err != nil {
			t.Fatalf("PendingTransfer(%d): %v", id, err)
		}
		checkTransfer(t, fmt.Sprintf("PendingTransfer(%d)", id), got, trs[id-1])
	}
}

// testPaymentVersions: a payment's Version is stored and read back, from
// its creation (1) through each change.
func testPaymentVersions(t *testing.T, s pb.Store) {
	p := payment("pay_v", "usr_alice", "mch_cafe", "", t0)
	for want := int64(1); want <= 3; want++ {
		b := &pb.Batch{Payments: []pb.Payment{p}}
		commit(t, s, b)
		got, err := s.Payment(t.Context(), p.ID)
		if err != nil || got.Version != want {
			t.Fatalf("after commit %d: Version %v, %v; want %d", want, got, err, want)
		}
		p.AmountCaptured = want
	}
}

func testCommitPayments(t *testing.T, s pb.Store) {
	ctx := t.Context()
	exp := t0.Add(pb.DefaultAuthorizationTTL)
	p1 := pb.Payment{ID: pb.NewID(pb.PrefixPayment, t0), Object: "payment", Status: pb.StatusAuthorized,
		Amount: big, FeeAmount: 30, Currency: "CNY", MerchantID: "mch_cafe", PayerID: "usr_alice",
		AgentID: "agt_butler", MandateID: "mdt_breakfast", Description: `Café "au lait" ☕ — 2×`,
		CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: &exp,
		Metadata:  map[string]string{"order": "42", "note": "ünïcode ✓", "empty": ""},
		CreatedAt: t0, HoldID: 7}
	p2 := pb.Payment{ID: pb.NewID(pb.PrefixPayment, t0.Add(time.Millisecond)), Object: "payment",
		Status: pb.StatusRequiresConfirmation, Amount: 5000, Currency: "USD", MerchantID: "mch_books",
		PayerID: "usr_bob", CaptureMethod: pb.CaptureAutomatic, Metadata: map[string]string{},
		CreatedAt: t0.Add(time.Millisecond)}
	p3 := pb.Payment{ID: pb.NewID(pb.PrefixPayment, t0.Add(2*time.Millisecond)), Object: "payment",
		Status: pb.StatusRequiresConfirmation, Amount: 1, Currency: "JPY", MerchantID: "mch_books",
		PayerID: "usr_bob", AgentID: "agt_x", CaptureMethod: pb.CaptureAutomatic, Metadata: map[string]string{},
		CreatedAt: t0.Add(2 * time.Millisecond)}
	commit(t, s, &pb.Batch{Payments: []pb.Payment{p1, p2, p3}})
	for _, want := range []pb.Payment{p1, p2, p3} {
		got, err := s.Payment(ctx, want.ID)
		if err != nil {
			t.Fatalf("Payment(%s) after insert: %v", want.ID, err)
		}
		checkPayment(t, "Payment("+want.ID+") after insert", got, want)
		if want.Metadata != nil && len(want.Metadata) == 0 && got.Metadata == nil {
			t.Errorf("Payment(%s): empty metadata came back as a nil map; the API would render it as null instead of {}", want.ID)
		}
	}

	// Upsert: the mutable fields change, everything else stays. p1 is
	// captured and its hold closed (expiry set → nil), p2 authorized (nil →
	// set), p3 declined; p4 is inserted in the same batch.
	p1.Status, p1.AmountCaptured, p1.AmountRefunded = pb.StatusCaptured, big-1, 100
	p1.FeeAmount, p1.FeeRefunded, p1.AuthorizationExpiresAt, p1.HoldID = 29, 1, nil, 0
	p2.Status, p2.AuthorizationExpiresAt, p2.HoldID = pb.StatusAuthorized, ptr(t0.Add(time.Hour+999*time.Millisecond)), 9
	p3.Status, p3.DeclineCode = pb.StatusDeclined, pb.DeclineInsufficientFunds
	p4 := payment(pb.NewID(pb.PrefixPayment, t0.Add(3*time.Millisecond)), "usr_carol", "mch_cafe", "", t0.Add(3*time.Millisecond))
	commit(t, s, &pb.Batch{Payments: []pb.Payment{p1, p2, p3, p4}})
	for _, want := range []pb.Payment{p1, p2, p3, p4} {
		got, err := s.Payment(ctx, want.ID)
		if err != nil {
			t.Fatalf("Payment(%s) after update: %v", want.ID, err)
		}
		checkPayment(t, "Payment("+want.ID+") after update", got, want)
	}
}

// Refunds and top-ups have no reader in pb.Store: the suite checks only
// that they commit, many at once, alongside rows that can be read.
func testCommitRefundsAndTopups(t *testing.T, s pb.Store) {
	var b pb.Batch
	for i := range 70 {
		b.Refunds = append(b.Refunds, pb.Refund{ID: fmt.Sprintf("re_%03d", i), Object: "refund", PaymentID: "pay_1",
			Amount: int64(i + 1), Currency: "CNY", Reason: "requested_by_customer", Status: "succeeded", CreatedAt: t0})
		b.Topups = append(b.Topups, pb.Topup{ID: fmt.Sprintf("top_%03d", i), Object: "topup", UserID: "usr_alice",
			Amount: big, Currency: "CNY", Status: "succeeded", CreatedAt: t0})
	}
	b.Refunds[0].Reason = "" // optional
	b.Users = []pb.User{{ID: "usr_alice", Name: "Alice", CreatedAt: t0}}
	commit(t, s, &b)
	if _, err := s.User(t.Context(), "usr_alice"); err != nil {
		t.Errorf("User(usr_alice) committed with refunds and top-ups: %v", err)
	}
}

func testCommitIdentities(t *testing.T, s pb.Store) {
	ctx := t.Context()
	users := []pb.User{
		{ID: "usr_alice", Name: "Alice O'Hara \"Al\" 爱丽丝", CreatedAt: t0},
		{ID: "usr_bob", Name: "", CreatedAt: t0.Add(time.Hour)},
	}
	merchants := []pb.Merchant{
		{ID: "mch_cafe", Name: "Café", Category: "food_and_drink", CreatedAt: t0},
		{ID: "mch_books", Name: "Books", Category: "", CreatedAt: t0.Add(time.Minute)},
	}
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	agents := []pb.Agent{
		{ID: "agt_butler", UserID: "usr_alice", Name: "Butler", PublicKey: jwk, KeyID: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", CreatedAt: t0},
		{ID: "agt_plain", UserID: "usr_alice", Name: "Plain", CreatedAt: t0.Add(time.Second)},
	}
	keys := []pb.APIKey{
		{Hash: sha256.Sum256([]byte("sk_user")), Principal: pb.Principal{Role: pb.RoleUser, ID: "usr_alice", UserID: "usr_alice"}, CreatedAt: t0},
		{Hash: sha256.Sum256([]byte("sk_merchant")), Principal: pb.Principal{Role: pb.RoleMerchant, ID: "mch_cafe"}, CreatedAt: t0},
		{Hash: sha256.Sum256([]byte("sk_agent")), Principal: pb.Principal{Role: pb.RoleAgent, ID: "agt_butler", UserID: "usr_alice"}, CreatedAt: t0},
		{Hash: sha256.Sum256([]byte("sk_operator")), Principal: pb.Principal{Role: pb.RoleOperator, ID: "operator"}, CreatedAt: t0},
	}
	commit(t, s, &pb.Batch{Users: users, Merchants: merchants, Agents: agents, APIKeys: keys})

	for _, want := range users {
		got, err := s.User(ctx, want.ID)
		if err != nil {
			t.Fatalf("User(%s): %v", want.ID, err)
		}
		got.CreatedAt, want.CreatedAt = sec(got.CreatedAt), sec(want.CreatedAt)
		check(t, "User("+want.ID+")", *got, want)
	}
	for _, want := range merchants {
		got, err := s.Merchant(ctx, want.ID)
		if err != nil {
			t.Fatalf("Merchant(%s): %v", want.ID, err)
		}
		got.CreatedAt, want.CreatedAt = sec(got.CreatedAt), sec(want.CreatedAt)
		check(t, "Merchant("+want.ID+")", *got, want)
	}
	for _, want := range agents {
		got, err := s.Agent(ctx, want.ID)
		if err != nil {
			t.Fatalf("Agent(%s): %v", want.ID, err)
		}
		got.CreatedAt, want.CreatedAt = sec(got.CreatedAt), sec(want.CreatedAt)
		check(t, "Agent("+want.ID+")", *got, want)
	}
	for _, k := range keys {
		got, err := s.Principal(ctx, k.Hash)
		if err != nil {
			t.Fatalf("Principal(hash of %s's key): %v", k.Principal.ID, err)
		}
		if got != k.Principal {
			t.Errorf("Principal(hash of %s's key) = %+v, want %+v", k.Principal.ID, got, k.Principal)
		}
	}
}

func testCommitEmptyBatch(t *testing.T, s pb.Store) {
	commit(t, s, &pb.Batch{})
	a, x, err := s.NextIDs(t.Context())
	if err != nil || a != 1 || x != 1 {
		t.Errorf("NextIDs after an empty Commit = (%d, %d, %v), want (1, 1, nil)", a, x, err)
	}
}

// lookup returns LookupIdempotency's answer keyed by (caller, key), failing
// on duplicates.
func lookup(t *testing.T, s pb.Store, keys []pb.IdempotencyKey) map[pb.IdempotencyKey]pb.IdempotencyRecord {
	t.Helper()
	recs, err := s.LookupIdempotency(t.Context(), keys)
	if err != nil {
		t.Fatalf("LookupIdempotency(%d keys): %v", len(keys), err)
	}
	out := make(map[pb.IdempotencyKey]pb.IdempotencyRecord, len(recs))
	for _, r := range recs {
		k := pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}
		if _, dup := out[k]; dup {
			t.Errorf("LookupIdempotency returned %+v twice", k)
		}
		out[k] = r
	}
	return out
}

func checkIdem(t *testing.T, got, want pb.IdempotencyRecord) {
	t.Helper()
	what := fmt.Sprintf("idempotency record (%q, %q)", want.Caller, want.Key)
	if got.Caller != want.Caller || got.Key != want.Key {
		t.Errorf("%s: came back as (%q, %q)", what, got.Caller, got.Key)
	}
	if got.RequestHash != want.RequestHash {
		t.Errorf("%s: RequestHash = %x, want %x", what, got.RequestHash, want.RequestHash)
	}
	if got.Status != want.Status {
		t.Errorf("%s: Status = %d, want %d", what, got.Status, want.Status)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("%s: Body = %q, want %q (byte for byte)", what, got.Body, want.Body)
	}
	if !milli(got.CreatedAt).Equal(milli(want.CreatedAt)) {
		t.Errorf("%s: CreatedAt = %v, want %v (to the millisecond)", what, got.CreatedAt, want.CreatedAt)
	}
}

func testIdempotency(t *testing.T, s pb.Store) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	recs := []pb.IdempotencyRecord{
		idem("usr_alice", "k1", t0),
		idem("usr_alice", "k2", t0.Add(time.Millisecond)),
		idem("usr_bob", "k1", t0.Add(2*time.Millisecond)), // same key, another caller
		{Caller: "mch_cafe", Key: "décliné ✓", RequestHash: sha256.Sum256(binary), Status: 402, Body: binary, CreatedAt: t0.Add(3 * time.Millisecond)},
	}
	recs[2].Body = []byte(`{"other":"body"}`)
	recs[2].Status = 409
	commit(t, s, &pb.Batch{Idempotency: recs})

	asked := []pb.IdempotencyKey{
		{Caller: "usr_alice", Key: "k1"},
		{Caller: "usr_bob", Key: "k1"},
		{Caller: "mch_cafe", Key: "décliné ✓"},
		{Caller: "usr_alice", Key: "k3"}, // missing
		{Caller: "usr_bob", Key: "k2"},   // exists only under usr_alice
		{Caller: "usr_carol", Key: "k1"}, // exists only under others
	}
	got := lookup(t, s, asked)
	want := map[pb.IdempotencyKey]pb.IdempotencyRecord{}
	for _, i := range []int{0, 2, 3} {
		want[pb.IdempotencyKey{Caller: recs[i].Caller, Key: recs[i].Key}] = recs[i]
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("LookupIdempotency returned %+v, which was not stored under that caller or not asked for", k)
		}
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("LookupIdempotency did not return stored and asked-for %+v", k)
			continue
		}
		checkIdem(t, g, w)
	}

	if got := lookup(t, s, nil); len(got) != 0 {
		t.Errorf("LookupIdempotency(no keys) returned %d records, want none", len(got))
	}
	if got := lookup(t, s, []pb.IdempotencyKey{{Caller: "usr_alice", Key: "k2"}}); len(got) != 1 {
		t.Errorf("LookupIdempotency(usr_alice/k2) returned %d records, want 1", len(got))
	} else {
		checkIdem(t, got[pb.IdempotencyKey{Caller: "usr_alice", Key: "k2"}], recs[1])
	}
}

// An outcome may have an empty response body; it must still be stored and
// replayed (as empty).
func testIdempotencyEmptyBody(t *testing.T, s pb.Store) {
	testIdempotencyBody(t, s, []byte{})
}

// A nil body is an empty body: Render may return one.
func testIdempotencyNilBody(t *testing.T, s pb.Store) {
	testIdempotencyBody(t, s, nil)
}

func testIdempotencyBody(t *testing.T, s pb.Store, body []byte) {
	r := idem("usr_alice", "no-body", t0)
	r.Body, r.Status = body, 204
	other := idem("usr_alice", "other", t0)
	if err := s.Commit(t.Context(), &pb.Batch{Idempotency: []pb.IdempotencyRecord{r, other}}); err != nil {
		t.Fatalf("Commit of an idempotency record with Body %#v: %v", body, err)
	}
	got := lookup(t, s, []pb.IdempotencyKey{{Caller: "usr_alice", Key: "no-body"}})
	g, ok := got[pb.IdempotencyKey{Caller: "usr_alice", Key: "no-body"}]
	if !ok {
		t.Fatalf("LookupIdempotency did not return the record with Body %#v", body)
	}
	checkIdem(t, g, r)
}

// The ledger writer asks for all of a batch's keys at once: thousands,
// mostly not stored, and a store may have to split such a query.
func testIdempotencyManyKeys(t *testing.T, s pb.Store) {
	const n = 4200
	var recs []pb.IdempotencyRecord
	var keys []pb.IdempotencyKey
	for i := range n {
		r := idem(fmt.Sprintf("usr_%d", i%7), fmt.Sprintf("key-%05d", i), t0)
		keys = append(keys, pb.IdempotencyKey{Caller: r.Caller, Key: r.Key})
		if i%14 == 0 || i == n-1 {
			recs = append(recs, r)
		}
	}
	commit(t, s, &pb.Batch{Idempotency: recs})
	got := lookup(t, s, keys)
	if len(got) != len(recs) {
		t.Errorf("LookupIdempotency of %d keys (%d of them stored) returned %d records", len(keys), len(recs), len(got))
	}
	for _, r := range recs {
		g, ok := got[pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}]
		if !ok {
			t.Errorf("LookupIdempotency of %d keys did not return stored %s/%s", len(keys), r.Caller, r.Key)
			continue
		}
		checkIdem(t, g, r)
	}
}

// badBatch is a batch of one row of every kind; the caller adds the row
// that makes it fail.
func badBatch() *pb.Batch {
	return &pb.Batch{
		Accounts: []pb.Account{
			{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: 999}, // an update of an existing row
			{ID: 10, Owner: "usr_new", Currency: "CNY", CreditsPosted: 999},
		},
		Transfers: []pb.Transfer{{ID: 10, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 10, Amount: 999, Currency: "CNY", Ref: "top_new", CreatedAt: t0}},
		Payments:  []pb.Payment{payment("pay_new", "usr_new", "mch_new", "", t0)},
		Refunds:   []pb.Refund{{ID: "re_new", Object: "refund", PaymentID: "pay_new", Amount: 1, Currency: "CNY", Status: "succeeded", CreatedAt: t0}},
		Topups:    []pb.Topup{{ID: "top_new", Object: "topup", UserID: "usr_new", Amount: 999, Currency: "CNY", Status: "succeeded", CreatedAt: t0}},
		Merchants: []pb.Merchant{{ID: "mch_new", Name: "New", CreatedAt: t0}},
		Agents:    []pb.Agent{{ID: "agt_new", UserID: "usr_new", Name: "New", CreatedAt: t0}},
		APIKeys:   []pb.APIKey{{Hash: sha256.Sum256([]byte("sk_new")), Principal: pb.Principal{Role: pb.RoleUser, ID: "usr_new", UserID: "usr_new"}, CreatedAt: t0}},
	}
}

// seedExisting commits the rows that badBatch collides with or updates.
func seedExisting(t *testing.T, s pb.Store) {
	t.Helper()
	commit(t, s, &pb.Batch{
		Accounts:    []pb.Account{{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: 5}},
		Users:       []pb.User{{ID: "usr_old", Name: "Old", CreatedAt: t0}},
		Idempotency: []pb.IdempotencyRecord{idem("usr_old", "k", t0)},
	})
}

// checkNothingOf checks that no row of badBatch (plus user usr_new and
// idempotency record usr_new/k) was written and the existing rows are as
// seedExisting left them.
func checkNothingOf(t *testing.T, s pb.Store) {
	t.Helper()
	ctx := t.Context()
	if a, err := s.AccountByID(ctx, 1); err != nil {
		t.Errorf("AccountByID(1) after the failed Commit: %v", err)
	} else if a.DebitsPosted != 5 {
		t.Errorf("account 1 has DebitsPosted %d after the failed Commit, want 5 (the failed batch's update must not apply)", a.DebitsPosted)
	}
	_, err := s.AccountByID(ctx, 10)
	wantNotFound(t, "AccountByID(10) of the failed batch", err)
	_, err = s.Account(ctx, "usr_new", "CNY")
	wantNotFound(t, "Account(usr_new, CNY) of the failed batch", err)
	_, err = s.Payment(ctx, "pay_new")
	wantNotFound(t, "Payment(pay_new) of the failed batch", err)
	_, err = s.Merchant(ctx, "mch_new")
	wantNotFound(t, "Merchant(mch_new) of the failed batch", err)
	_, err = s.Agent(ctx, "agt_new")
	wantNotFound(t, "Agent(agt_new) of the failed batch", err)
	_, err = s.User(ctx, "usr_new")
	wantNotFound(t, "User(usr_new) of the failed batch", err)
	_, err = s.Principal(ctx, sha256.Sum256([]byte("sk_new")))
	wantNotFound(t, "Principal(sk_new) of the failed batch", err)
	if u, err := s.User(ctx, "usr_old"); err != nil {
		t.Errorf("User(usr_old) after the failed Commit: %v", err)
	} else if u.Name != "Old" {
		t.Errorf("User(usr_old).Name = %q after the failed Commit, want %q", u.Name, "Old")
	}
	got := lookup(t, s, []pb.IdempotencyKey{{Caller: "usr_old", Key: "k"}, {Caller: "usr_new", Key: "k"}})
	if _, ok := got[pb.IdempotencyKey{Caller: "usr_new", Key: "k"}]; ok {
		t.Errorf("idempotency record usr_new/k of the failed batch was written")
	}
	if r, ok := got[pb.IdempotencyKey{Caller: "usr_old", Key: "k"}]; !ok {
		t.Errorf("idempotency record usr_old/k is gone after the failed Commit")
	} else {
		checkIdem(t, r, idem("usr_old", "k", t0))
	}
	if a, x, err := s.NextIDs(ctx); err != nil || a != 2 || x != 1 {
		t.Errorf("NextIDs after the failed Commit = (%d, %d, %v), want (2, 1, nil)", a, x, err)
	}
	var n int
	if err := s.ScanLedger(ctx, func(*pb.Account) error { return nil }, func(*pb.Transfer) error { n++; return nil }); err != nil {
		t.Errorf("ScanLedger after the failed Commit: %v", err)
	} else if n != 0 {
		t.Errorf("ScanLedger after the failed Commit saw %d transfers, want 0", n)
	}
}

// checkStillWorks checks that a good Commit after a failed one succeeds.
func checkStillWorks(t *testing.T, s pb.Store) {
	t.Helper()
	b := badBatch()
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("a valid Commit after a failed one: %v", err)
	}
	if _, err := s.Payment(t.Context(), "pay_new"); err != nil {
		t.Errorf("Payment(pay_new) after a valid Commit that followed a failed one: %v", err)
	}
	if a, err := s.AccountByID(t.Context(), 1); err != nil || a.DebitsPosted != 999 {
		t.Errorf("AccountByID(1) after a valid Commit that followed a failed one = (%+v, %v), want DebitsPosted 999", a, err)
	}
}

func testAtomicDuplicateUser(t *testing.T, s pb.Store) {
	seedExisting(t, s)
	b := badBatch()
	b.Idempotency = []pb.IdempotencyRecord{idem("usr_new", "k", t0)}
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}, {ID: "usr_old", Name: "Impostor", CreatedAt: t0}}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with the ID of an existing user succeeded, want an error")
	}
	checkNothingOf(t, s)
	checkStillWorks(t, s)
}

func testAtomicDuplicateIdempotency(t *testing.T, s pb.Store) {
	seedExisting(t, s)
	b := badBatch()
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}}
	again := idem("usr_old", "k", t0.Add(time.Hour))
	again.Body = []byte(`{"second":"answer"}`)
	b.Idempotency = []pb.IdempotencyRecord{idem("usr_new", "k", t0), again}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with an idempotency (caller, key) already stored succeeded, want an error")
	}
	checkNothingOf(t, s)
	checkStillWorks(t, s)
}

func testAtomicDuplicateInBatch(t *testing.T, s pb.Store) {
	seedExisting(t, s)
	b := badBatch()
	b.Idempotency = []pb.IdempotencyRecord{idem("usr_new", "k", t0)}
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}, {ID: "usr_new", Name: "Twice", CreatedAt: t0}}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with one user ID twice succeeded, want an error")
	}
	checkNothingOf(t, s)
	checkStillWorks(t, s)
}

// countdown is a context that cancels itself when it has been asked for
// Done or Err the n-th time: a Commit canceled at every point it looks.
type countdown struct {
	context.Context
	cancel context.CancelFunc
	n      atomic.Int64
	fired  atomic.Bool
}

func newCountdown(parent context.Context, n int64) *countdown {
	ctx, cancel := context.WithCancel(parent)
	c := &countdown{Context: ctx, cancel: cancel}
	c.n.Store(n)
	return c
}

func (c *countdown) tick() {
	if c.n.Add(-1) == 0 {
		c.fired.Store(true)
		c.cancel()
		// Let goroutines watching Done see the cancellation before the
		// caller goes on, as a slow scheduler might.
		time.Sleep(2 * time.Millisecond)
	}
}
func (c *countdown) Done() <-chan struct{} { c.tick(); return c.Context.Done() }
func (c *countdown) Err() error            { c.tick(); return c.Context.Err() }

// testCommitCanceled cancels Commit's context at each point in turn: the
// batch is written whole or not at all, an error means nothing was written
// (or, at worst, that the acknowledgement was lost), success means all was,
// and the store keeps working.
func testCommitCanceled(t *testing.T, s pb.Store) {
	ctx := t.Context()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	b := &pb.Batch{Users: []pb.User{{ID: "usr_pre", Name: "Pre", CreatedAt: t0}}}
	if err := s.Commit(canceled, b); err == nil {
		if _, err := s.User(ctx, "usr_pre"); err != nil {
			t.Errorf("Commit with a canceled context succeeded but its user is not there: %v", err)
		}
	} else if _, err := s.User(ctx, "usr_pre"); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Errorf("Commit with a canceled context failed but User(usr_pre) = %v, want not found", err)
	}

	for k := int64(1); k <= 500; k++ {
		u, m := fmt.Sprintf("usr_%03d", k), fmt.Sprintf("mch_%03d", k)
		acct := pb.Account{ID: k, Owner: u, Currency: "CNY", CreditsPosted: k}
		b := &pb.Batch{
			Accounts:       []pb.Account{acct},
			AccountChanges: []pb.AccountChange{{Created: true, CreditsPosted: k}},
			Users:          []pb.User{{ID: u, Name: "U", CreatedAt: t0}},
			Merchants:      []pb.Merchant{{ID: m, Name: "M", CreatedAt: t0}},
			Idempotency:    []pb.IdempotencyRecord{idem(u, "k", t0)},
		}
		c := newCountdown(ctx, k)
		err := s.Commit(c, b)
		_, uerr := s.User(ctx, u)
		_, merr := s.Merchant(ctx, m)
		_, aerr := s.AccountByID(ctx, k)
		recs, lerr := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: u, Key: "k"}})
		if lerr != nil {
			t.Fatalf("LookupIdempotency after Commit canceled at point %d: %v", k, lerr)
		}
		seen := []bool{uerr == nil, merr == nil, aerr == nil, len(recs) == 1}
		all, none := !slices.Contains(seen, false), !slices.Contains(seen, true)
		switch {
		case !all && !none:
			t.Fatalf("Commit canceled at point %d (error %v) left part of its batch: user, merchant, account, idempotency record visible = %v", k, err, seen)
		case err == nil && !all:
			t.Fatalf("Commit canceled at point %d returned nil but wrote nothing", k)
		case err != nil && all:
			t.Logf("Commit canceled at point %d returned %v but its batch was written", k, err)
		}
		if none {
			// The same batch again, not canceled, must now succeed.
			asWriter(t, s, b)
			if err := s.Commit(ctx, b); err != nil {
				t.Fatalf("Commit after one canceled at point %d: %v", k, err)
			}
		}
		if !c.fired.Load() {
			return // Commit finished before looking at its context k times
		}
	}
	t.Fatal("Commit looked at its context more than 500 times")
}

func testNotFound(t *testing.T, s pb.Store) {
	ctx := t.Context()
	// Not an empty store: one row of every kind, none of them asked for.
	accts, trs := ledgerFixture()
	commit(t, s, &pb.Batch{
		Accounts: accts, Transfers: trs,
		Payments:  []pb.Payment{payment("pay_1", "usr_alice", "mch_cafe", "agt_butler", t0)},
		Users:     []pb.User{{ID: "usr_alice", Name: "Alice", CreatedAt: t0}},
		Merchants: []pb.Merchant{{ID: "mch_cafe", Name: "Café", CreatedAt: t0}},
		Agents:    []pb.Agent{{ID: "agt_butler", UserID: "usr_alice", Name: "Butler", CreatedAt: t0}},
		APIKeys:   []pb.APIKey{{Hash: sha256.Sum256([]byte("sk_alice")), Principal: pb.Principal{Role: pb.RoleUser, ID: "usr_alice", UserID: "usr_alice"}, CreatedAt: t0}},
	})
	_, err := s.Account(ctx, "usr_nobody", "CNY")
	wantNotFound(t, "Account(usr_nobody, CNY)", err)
	_, err = s.Account(ctx, "usr_alice", "USD")
	wantNotFound(t, "Account(usr_alice, USD) (owner exists in CNY only)", err)
	_, err = s.AccountByID(ctx, 99)
	wantNotFound(t, "AccountByID(99)", err)
	_, err = s.AccountByID(ctx, 0)
	wantNotFound(t, "AccountByID(0)", err)
	_, _, err = s.PendingTransfer(ctx, 99)
	wantNotFound(t, "PendingTransfer(99)", err)
	_, err = s.User(ctx, "usr_nobody")
	wantNotFound(t, "User(usr_nobody)", err)
	_, err = s.User(ctx, "mch_cafe")
	wantNotFound(t, "User(mch_cafe) (a merchant's ID)", err)
	_, err = s.Merchant(ctx, "mch_nobody")
	wantNotFound(t, "Merchant(mch_nobody)", err)
	_, err = s.Agent(ctx, "agt_nobody")
	wantNotFound(t, "Agent(agt_nobody)", err)
	_, err = s.Payment(ctx, "pay_nobody")
	wantNotFound(t, "Payment(pay_nobody)", err)
	_, err = s.Payment(ctx, "")
	wantNotFound(t, `Payment("")`, err)
	_, err = s.Principal(ctx, sha256.Sum256([]byte("sk_unknown")))
	wantNotFound(t, "Principal(hash of an unknown key)", err)
	_, err = s.Principal(ctx, [32]byte{})
	wantNotFound(t, "Principal(zero hash)", err)
}

func testNextIDs(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if a, x, err := s.NextIDs(ctx); err != nil || a != 1 || x != 1 {
		t.Fatalf("NextIDs on an empty store = (%d, %d, %v), want (1, 1, nil)", a, x, err)
	}
	commit(t, s, &pb.Batch{
		Accounts: []pb.Account{{ID: 3, Owner: "a", Currency: "CNY"}, {ID: 1, Owner: "b", Currency: "CNY"}},
		Transfers: []pb.Transfer{
			{ID: 5, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 3, Amount: 1, Currency: "CNY", Ref: "x", CreatedAt: t0},
			{ID: 2, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 3, Amount: 1, Currency: "CNY", Ref: "x", CreatedAt: t0},
		},
	})
	if a, x, err := s.NextIDs(ctx); err != nil || a != 4 || x != 6 {
		t.Errorf("NextIDs after accounts {3, 1} and transfers {5, 2} = (%d, %d, %v), want (4, 6, nil)", a, x, err)
	}
	// Accounts only: the transfer ID stays.
	commit(t, s, &pb.Batch{Accounts: []pb.Account{{ID: 3, Owner: "a", Currency: "CNY", CreditsPosted: 2}, {ID: 7, Owner: "c", Currency: "CNY"}}})
	if a, x, err := s.NextIDs(ctx); err != nil || a != 8 || x != 6 {
		t.Errorf("NextIDs after adding account 7 = (%d, %d, %v), want (8, 6, nil)", a, x, err)
	}
}

func testPendingTransfer(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts, trs := ledgerFixture()
	// First the holds alone: both open.
	commit(t, s, &pb.Batch{Accounts: accts, Transfers: []pb.Transfer{trs[0], trs[1]}})
	commit(t, s, &pb.Batch{Transfers: []pb.Transfer{trs[3]}})
	for _, id := range []int64{2, 4} {
		got, resolved, err := s.PendingTransfer(ctx, id)
		if err != nil {
			t.Fatalf("PendingTransfer(%d) of an open hold: %v", id, err)
		}
		if resolved {
			t.Errorf("PendingTransfer(%d) of an open hold: resolved = true, want false", id)
		}
		checkTransfer(t, fmt.Sprintf("PendingTransfer(%d)", id), got, trs[id-1])
	}
	// Post hold 2: resolved; hold 4 still open.
	commit(t, s, &pb.Batch{Transfers: []pb.Transfer{trs[2]}})
	if _, resolved, err := s.PendingTransfer(ctx, 2); err != nil || !resolved {
		t.Errorf("PendingTransfer(2) after a post = (resolved %v, %v), want (true, nil)", resolved, err)
	}
	if _, resolved, err := s.PendingTransfer(ctx, 4); err != nil || resolved {
		t.Errorf("PendingTransfer(4) after another hold was posted = (resolved %v, %v), want (false, nil)", resolved, err)
	}
	// Void hold 4: resolved.
	commit(t, s, &pb.Batch{Transfers: []pb.Transfer{trs[4]}})
	got, resolved, err := s.PendingTransfer(ctx, 4)
	if err != nil || !resolved {
		t.Errorf("PendingTransfer(4) after a void = (resolved %v, %v), want (true, nil)", resolved, err)
	} else {
		checkTransfer(t, "PendingTransfer(4) after a void", got, trs[3])
	}
	// Transfers of the other kinds are not pending transfers.
	for _, id := range []int64{1, 3, 5} {
		_, _, err := s.PendingTransfer(ctx, id)
		wantNotFound(t, fmt.Sprintf("PendingTransfer(%d) of a transfer of kind %d", id, trs[id-1].Kind), err)
	}
}

func testAccountsByOwner(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts := []pb.Account{
		{ID: 1, Owner: "usr_alice", Currency: "USD", CreditsPosted: 1},
		{ID: 2, Owner: "usr_bob", Currency: "CNY", CreditsPosted: 2},
		{ID: 3, Owner: "usr_alice", Currency: "CNY", CreditsPosted: 3, Flags: pb.DebitsMustNotExceedCredits},
		{ID: 4, Owner: "usr_alice", Currency: "EUR", CreditsPosted: 4, DebitsPending: 1},
		{ID: 5, Owner: "usr_alice2", Currency: "AUD", CreditsPosted: 5},
	}
	commit(t, s, &pb.Batch{Accounts: accts})
	got, err := s.AccountsByOwner(ctx, "usr_alice")
	if err != nil {
		t.Fatalf("AccountsByOwner(usr_alice): %v", err)
	}
	want := []pb.Account{accts[2], accts[3], accts[0]} // CNY, EUR, USD
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AccountsByOwner(usr_alice) =\n\t%+v\nwant only usr_alice's, ordered by currency:\n\t%+v", got, want)
	}
	got, err = s.AccountsByOwner(ctx, "usr_nobody")
	if err != nil || len(got) != 0 {
		t.Errorf("AccountsByOwner(usr_nobody) = (%+v, %v), want no accounts and no error", got, err)
	}
}

// listFixture commits n payments with increasing IDs among payers, merchants
// and agents, and returns them newest first.
func listFixture(t *testing.T, s pb.Store, n int) []pb.Payment {
	t.Helper()
	payers := []string{"usr_alice", "usr_bob", "usr_carol"}
	merchants := []string{"mch_cafe", "mch_books"}
	agents := []string{"", "agt_butler", "", "agt_robot", "agt_butler"}
	var ps []pb.Payment
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		p := payment(pb.NewID(pb.PrefixPayment, at), payers[i%len(payers)], merchants[i%len(merchants)], agents[i%len(agents)], at)
		p.Amount = int64(i + 1)
		if i%7 == 3 {
			p.Status = pb.StatusRequiresConfirmation
		}
		ps = append(ps, p)
	}
	// Commit in two batches, the second with the older half, so that the
	// order of insertion is not the order of IDs.
	commit(t, s, &pb.Batch{Payments: ps[n/2:]})
	commit(t, s, &pb.Batch{Payments: ps[:n/2]})
	slices.Reverse(ps)
	for i := 1; i < len(ps); i++ {
		if ps[i-1].ID <= ps[i].ID {
			t.Fatalf("pb.NewID did not give increasing IDs for increasing times: %s then %s", ps[i].ID, ps[i-1].ID)
		}
	}
	return ps
}

func ids(ps []pb.Payment) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func where(ps []pb.Payment, keep func(p *pb.Payment) bool) []pb.Payment {
	var out []pb.Payment
	for i := range ps {
		if keep(&ps[i]) {
			out = append(out, ps[i])
		}
	}
	return out
}

// walk lists every page of f with limit and checks has_more on each.
func walk(t *testing.T, s pb.Store, f pb.PaymentFilter, limit int, what string) []pb.Payment {
	t.Helper()
	var all []pb.Payment
	f.Limit = limit
	for page := 1; ; page++ {
		got, more, err := s.ListPayments(t.Context(), f)
		if err != nil {
			t.Fatalf("%s, page %d: %v", what, page, err)
		}
		if got == nil {
			t.Errorf("%s, page %d: nil slice, want a non-nil (possibly empty) one, so that the API renders data as []", what, page)
		}
		if len(got) > limit {
			t.Fatalf("%s, page %d: %d payments, more than limit %d", what, page, len(got), limit)
		}
		if more && len(got) < limit {
			t.Fatalf("%s, page %d: has_more with a short page of %d (limit %d)", what, page, len(got), limit)
		}
		all = append(all, got...)
		if !more {
			return all
		}
		if len(got) == 0 {
			t.Fatalf("%s, page %d: has_more with an empty page", what, page)
		}
		if page > 1000 {
			t.Fatalf("%s: more than 1000 pages", what)
		}
		f.StartingAfter = got[len(got)-1].ID
	}
}

func testListPaymentsFilters(t *testing.T, s pb.Store) {
	ps := listFixture(t, s, 60)
	cases := []struct {
		f    pb.PaymentFilter
		keep func(p *pb.Payment) bool
	}{
		{pb.PaymentFilter{}, func(*pb.Payment) bool { return true }},
		{pb.PaymentFilter{PayerID: "usr_alice"}, func(p *pb.Payment) bool { return p.PayerID == "usr_alice" }},
		{pb.PaymentFilter{PayerID: "usr_bob"}, func(p *pb.Payment) bool { return p.PayerID == "usr_bob" }},
		{pb.PaymentFilter{MerchantID: "mch_books"}, func(p *pb.Payment) bool { return p.MerchantID == "mch_books" }},
		{pb.PaymentFilter{AgentID: "agt_butler"}, func(p *pb.Payment) bool { return p.AgentID == "agt_butler" }},
		{pb.PaymentFilter{AgentID: "agt_robot"}, func(p *pb.Payment) bool { return p.AgentID == "agt_robot" }},
		{pb.PaymentFilter{PayerID: "usr_nobody"}, func(*pb.Payment) bool { return false }},
		{pb.PaymentFilter{MerchantID: "mch_nobody"}, func(*pb.Payment) bool { return false }},
		{pb.PaymentFilter{AgentID: "agt_nobody"}, func(*pb.Payment) bool { return false }},
		{pb.PaymentFilter{PayerID: "usr_bob", Status: pb.StatusRequiresConfirmation}, func(p *pb.Payment) bool {
			return p.PayerID == "usr_bob" && p.Status == pb.StatusRequiresConfirmation
		}},
		{pb.PaymentFilter{Status: pb.StatusRefunded}, func(*pb.Payment) bool { return false }},
	}
	for _, c := range cases {
		want := where(ps, c.keep)
		got, more, err := s.ListPayments(t.Context(), c.f)
		if err != nil {
			t.Fatalf("ListPayments(%+v): %v", c.f, err)
		}
		if more {
			t.Errorf("ListPayments(%+v): has_more with %d payments in all", c.f, len(want))
		}
		if got == nil {
			t.Errorf("ListPayments(%+v): nil slice, want a non-nil (possibly empty) one, so that the API renders data as []", c.f)
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("ListPayments(%+v) =\n\t%v\nwant these, newest first:\n\t%v", c.f, ids(got), ids(want))
			continue
		}
		for i := range got {
			checkPayment(t, fmt.Sprintf("ListPayments(%+v)[%d]", c.f, i), &got[i], want[i])
		}
	}
}

func testListPaymentsPagination(t *testing.T, s pb.Store) {
	ps := listFixture(t, s, 90)
	filters := []struct {
		f    pb.PaymentFilter
		keep func(p *pb.Payment) bool
	}{
		{pb.PaymentFilter{}, func(*pb.Payment) bool { return true }},
		{pb.PaymentFilter{PayerID: "usr_carol"}, func(p *pb.Payment) bool { return p.PayerID == "usr_carol" }},
		{pb.PaymentFilter{MerchantID: "mch_cafe"}, func(p *pb.Payment) bool { return p.MerchantID == "mch_cafe" }},
		{pb.PaymentFilter{AgentID: "agt_butler"}, func(p *pb.Payment) bool { return p.AgentID == "agt_butler" }},
	}
	for _, c := range filters {
		want := ids(where(ps, c.keep))
		// 1, a page that divides the count exactly (no trailing empty
		// page with has_more), one that does not, and the whole list.
		for _, limit := range []int{1, 7, 15, len(want), len(want) + 1} {
			what := fmt.Sprintf("walking ListPayments(%+v) with limit %d", c.f, limit)
			if got := ids(walk(t, s, c.f, limit, what)); !slices.Equal(got, want) {
				t.Errorf("%s gave\n\t%v\nwant\n\t%v", what, got, want)
			}
		}
	}
	// StartingAfter an ID that is not stored still cuts at that ID.
	mid := ps[40].ID
	cut := mid[:len(mid)-1] + "~" // sorts just after mid, before the next newer ID
	got, more, err := s.ListPayments(t.Context(), pb.PaymentFilter{StartingAfter: cut, Limit: 3})
	if err != nil || !more || !slices.Equal(ids(got), ids(ps[40:43])) {
		t.Errorf("ListPayments(StartingAfter: an unstored ID just above %s, Limit: 3) = (%v, %v, %v), want (%v, true, nil)", mid, ids(got), more, err, ids(ps[40:43]))
	}
	// StartingAfter the oldest: an empty last page.
	got, more, err = s.ListPayments(t.Context(), pb.PaymentFilter{StartingAfter: ps[len(ps)-1].ID})
	if err != nil || more || len(got) != 0 {
		t.Errorf("ListPayments(StartingAfter: the oldest) = (%v, %v, %v), want ([], false, nil)", ids(got), more, err)
	}
}

func testListPaymentsLimit(t *testing.T, s pb.Store) {
	n := 2*pb.MaxListLimit + 10
	ps := listFixture(t, s, n)
	for _, limit := range []int{0, -1, pb.MaxListLimit, pb.MaxListLimit + 1, 1 << 30} {
		got, more, err := s.ListPayments(t.Context(), pb.PaymentFilter{Limit: limit})
		if err != nil {
			t.Fatalf("ListPayments(Limit: %d): %v", limit, err)
		}
		if len(got) != pb.MaxListLimit || !more {
			t.Errorf("ListPayments(Limit: %d) of %d payments: %d payments, has_more %v; want %d (pb.MaxListLimit), true", limit, n, len(got), more, pb.MaxListLimit)
			continue
		}
		if !slices.Equal(ids(got), ids(ps[:pb.MaxListLimit])) {
			t.Errorf("ListPayments(Limit: %d) did not return the %d newest payments, newest first", limit, pb.MaxListLimit)
		}
	}
	// Walking with limit 0 visits all, a full page at a time.
	if got := walk(t, s, pb.PaymentFilter{}, pb.MaxListLimit, "walking ListPayments with the default limit"); !slices.Equal(ids(got), ids(ps)) {
		t.Errorf("walking ListPayments with the default limit gave %d payments, want all %d newest first", len(got), n)
	}
}

func testExpiredPayments(t *testing.T, s pb.Store) {
	ctx := t.Context()
	now := t0.Truncate(time.Second).Add(500 * time.Millisecond) // API times are whole seconds; now is not
	mk := func(name string, st pb.PaymentStatus, exp *time.Time) pb.Payment {
		p := payment("pay_"+name, "usr_alice", "mch_cafe", "", t0.Add(-pb.DefaultAuthorizationTTL))
		p.Status, p.AuthorizationExpiresAt = st, exp
		return p
	}
	at := func(d time.Duration) *time.Time { return ptr(now.Truncate(time.Second).Add(d)) }
	due := []pb.Payment{ // oldest expiry first
		mk("due_3h", pb.StatusAuthorized, at(-3*time.Hour)),
		mk("due_2h", pb.StatusAuthorized, at(-2*time.Hour)),
		mk("due_1s", pb.StatusAuthorized, at(-time.Second)),
		mk("due_now", pb.StatusAuthorized, at(0)), // expiry == now to the second, < now exactly
	}
	notDue := []pb.Payment{
		mk("future", pb.StatusAuthorized, at(time.Second)),
		mk("future_1h", pb.StatusAuthorized, at(time.Hour)),
		mk("no_expiry", pb.StatusAuthorized, nil),
		mk("captured", pb.StatusCaptured, at(-4*time.Hour)),
		mk("canceled", pb.StatusCanceled, at(-4*time.Hour)),
		mk("expired", pb.StatusExpired, at(-4*time.Hour)),
		mk("requires_confirmation", pb.StatusRequiresConfirmation, at(-4*time.Hour)),
		mk("declined", pb.StatusDeclined, at(-4*time.Hour)),
		mk("refunded", pb.StatusRefunded, at(-4*time.Hour)),
	}
	// Insert in an order that is neither by ID nor by expiry.
	b := &pb.Batch{}
	for i := range max(len(due), len(notDue)) {
		if i < len(notDue) {
			b.Payments = append(b.Payments, notDue[i])
		}
		if i < len(due) {
			b.Payments = append(b.Payments, due[len(due)-1-i])
		}
	}
	commit(t, s, b)
	got, err := s.ExpiredPayments(ctx, now, 100)
	if err != nil {
		t.Fatalf("ExpiredPayments: %v", err)
	}
	if want := ids(due); !slices.Equal(got, want) {
		t.Errorf("ExpiredPayments(now, 100) = %v, want the authorized payments with expiry <= now, oldest expiry first: %v", got, want)
	}
	got, err = s.ExpiredPayments(ctx, now, 2)
	if err != nil {
		t.Fatalf("ExpiredPayments(limit 2): %v", err)
	}
	if want := ids(due[:2]); !slices.Equal(got, want) {
		t.Errorf("ExpiredPayments(now, 2) = %v, want the 2 oldest expiries %v", got, want)
	}
	// A second earlier, the one expiring within now's second is not due yet.
	got, err = s.ExpiredPayments(ctx, now.Add(-time.Second), 100)
	if err != nil {
		t.Fatalf("ExpiredPayments(now-1s): %v", err)
	}
	if want := ids(due[:3]); !slices.Equal(got, want) {
		t.Errorf("ExpiredPayments(now-1s, 100) = %v, want %v", got, want)
	}
	// Once expired (status updated), a payment is no longer returned.
	done := due[0]
	done.Status = pb.StatusExpired
	commit(t, s, &pb.Batch{Payments: []pb.Payment{done}})
	got, err = s.ExpiredPayments(ctx, now, 100)
	if err != nil {
		t.Fatalf("ExpiredPayments after one expired: %v", err)
	}
	if want := ids(due[1:]); !slices.Equal(got, want) {
		t.Errorf("ExpiredPayments after %s was marked expired = %v, want %v", done.ID, got, want)
	}
}

func testDeleteIdempotency(t *testing.T, s pb.Store) {
	ctx := t.Context()
	cutoff := t0
	var old, young []pb.IdempotencyRecord
	for i := range 10 {
		old = append(old, idem(fmt.Sprintf("usr_%d", i%3), fmt.Sprintf("old-%d", i), cutoff.Add(-time.Duration(i+1)*time.Millisecond)))
	}
	young = append(young,
		idem("usr_0", "at-cutoff", cutoff),
		idem("usr_1", "after-cutoff", cutoff.Add(time.Millisecond)),
		idem("usr_2", "much-later", cutoff.Add(pb.IdempotencyRetention)))
	commit(t, s, &pb.Batch{Idempotency: append(slices.Clone(old), young...)})

	var keys []pb.IdempotencyKey
	for _, r := range append(slices.Clone(old), young...) {
		keys = append(keys, pb.IdempotencyKey{Caller: r.Caller, Key: r.Key})
	}
	count := func() (nOld int, youngLeft map[pb.IdempotencyKey]bool) {
		got := lookup(t, s, keys)
		youngLeft = map[pb.IdempotencyKey]bool{}
		for _, r := range old {
			if _, ok := got[pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}]; ok {
				nOld++
			}
		}
		for _, r := range young {
			k := pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}
			if _, ok := got[k]; ok {
				youngLeft[k] = true
			}
		}
		return nOld, youngLeft
	}
	steps := []struct{ limit, want int }{{4, 4}, {4, 4}, {4, 2}, {4, 0}}
	left := len(old)
	for _, st := range steps {
		n, err := s.DeleteIdempotency(ctx, cutoff, st.limit)
		if err != nil {
			t.Fatalf("DeleteIdempotency(cutoff, %d): %v", st.limit, err)
		}
		if n != st.want {
			t.Errorf("DeleteIdempotency(cutoff, %d) with %d older records left = %d, want %d", st.limit, left, n, st.want)
		}
		left -= st.want
		nOld, youngLeft := count()
		if nOld != left {
			t.Errorf("after DeleteIdempotency(cutoff, %d): %d records older than the cutoff remain, want %d", st.limit, nOld, left)
		}
		for _, r := range young {
			if k := (pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}); !youngLeft[k] {
				t.Errorf("DeleteIdempotency(cutoff, %d) removed %s/%s created at %v, not before the cutoff %v", st.limit, r.Caller, r.Key, r.CreatedAt, cutoff)
			}
		}
	}
}

func testScanLedger(t *testing.T, s pb.Store) {
	if as, ts := scanAll(t, s); len(as)+len(ts) != 0 {
		t.Errorf("ScanLedger of an empty store saw %d accounts and %d transfers", len(as), len(ts))
	}
	accts, trs := ledgerFixture()
	// Rows out of ID order, over two commits, with an account update.
	commit(t, s, &pb.Batch{Accounts: []pb.Account{accts[2], accts[0]}, Transfers: []pb.Transfer{trs[3], trs[0]}})
	accts[0].DebitsPosted++
	commit(t, s, &pb.Batch{Accounts: []pb.Account{accts[1], accts[0]}, Transfers: []pb.Transfer{trs[4], trs[2], trs[1]}})
	as, ts := scanAll(t, s)
	if len(as) != len(accts) {
		t.Fatalf("ScanLedger saw %d accounts, want %d", len(as), len(accts))
	}
	for i := range accts {
		check(t, fmt.Sprintf("ScanLedger's account #%d", i), as[i], accts[i])
	}
	if len(ts) != len(trs) {
		t.Fatalf("ScanLedger saw %d transfers, want %d", len(ts), len(trs))
	}
	for i := range trs {
		checkTransfer(t, fmt.Sprintf("ScanLedger's transfer #%d", i), &ts[i], trs[i])
	}
}

func testScanLedgerCallbackError(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts, trs := ledgerFixture()
	commit(t, s, &pb.Batch{Accounts: accts, Transfers: trs})
	stop := errors.New("stop here")

	var na, nt int
	err := s.ScanLedger(ctx, func(*pb.Account) error {
		na++
		if na == 2 {
			return fmt.Errorf("account callback: %w", stop)
		}
		return nil
	}, func(*pb.Transfer) error { nt++; return nil })
	if !errors.Is(err, stop) {
		t.Errorf("ScanLedger with an account callback failing = %v, want an error wrapping the callback's", err)
	}
	if na != 2 || nt != 0 {
		t.Errorf("ScanLedger with the 2nd account callback failing called accounts %d times and transfers %d times, want 2 and 0", na, nt)
	}

	na, nt = 0, 0
	err = s.ScanLedger(ctx, func(*pb.Account) error { na++; return nil }, func(*pb.Transfer) error {
		nt++
		if nt == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("ScanLedger with a transfer callback failing = %v, want the callback's error", err)
	}
	if na != len(accts) || nt != 3 {
		t.Errorf("ScanLedger with the 3rd transfer callback failing called accounts %d times and transfers %d times, want %d and 3", na, nt, len(accts))
	}

	// The store still works afterwards.
	if as, ts := scanAll(t, s); len(as) != len(accts) || len(ts) != len(trs) {
		t.Errorf("ScanLedger after stopped scans saw %d accounts and %d transfers, want %d and %d", len(as), len(ts), len(accts), len(trs))
	}
}

// testConcurrentReads commits batches from one goroutine (as the single
// ledger writer does) while others read. Every batch i writes user, merchant,
// payment and idempotency record i, account i+1 and transfer i, so readers
// can check that a batch is seen whole or not at all, and that what Commit
// acknowledged is visible.
func testConcurrentReads(t *testing.T, s pb.Store) {
	ctx := t.Context()
	commit(t, s, &pb.Batch{Accounts: []pb.Account{{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY"}}})
	const batches, readers = 40, 4
	name := func(prefix string, i int64) string { return fmt.Sprintf("%s%04d", prefix, i) }
	var acked atomic.Int64 // the last batch whose Commit returned
	var stop atomic.Bool
	var wg sync.WaitGroup

	wg.Go(func() {
		defer stop.Store(true)
		for i := int64(1); i <= batches; i++ {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			b := &pb.Batch{
				Accounts: []pb.Account{
					{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: i},
					{ID: i + 1, Owner: name("usr_", i), Currency: "CNY", CreditsPosted: 1},
				},
				Transfers:   []pb.Transfer{{ID: i, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: i + 1, Amount: 1, Currency: "CNY", Ref: name("top_", i), CreatedAt: at}},
				Users:       []pb.User{{ID: name("usr_", i), Name: "u", CreatedAt: at}},
				Merchants:   []pb.Merchant{{ID: name("mch_", i), Name: "m", CreatedAt: at}},
				Payments:    []pb.Payment{payment(name("pay_", i), name("usr_", i), name("mch_", i), "", at)},
				Idempotency: []pb.IdempotencyRecord{idem(name("usr_", i), "k", at)},
			}
			asWriter(t, s, b)
			if err := s.Commit(ctx, b); err != nil {
				t.Errorf("Commit of batch %d while reading concurrently: %v", i, err)
				return
			}
			acked.Store(i)
		}
	})

	read := func() error {
		i := acked.Load()
		if i > 0 {
			// Acknowledged: every row of batch i is visible.
			if _, err := s.User(ctx, name("usr_", i)); err != nil {
				return fmt.Errorf("User of acknowledged batch %d: %w", i, err)
			}
			if _, err := s.Payment(ctx, name("pay_", i)); err != nil {
				return fmt.Errorf("Payment of acknowledged batch %d: %w", i, err)
			}
			if _, err := s.AccountByID(ctx, i+1); err != nil {
				return fmt.Errorf("AccountByID of acknowledged batch %d: %w", i, err)
			}
			if r := lookupErr(ctx, s, name("usr_", i)); r != nil {
				return fmt.Errorf("LookupIdempotency of acknowledged batch %d: %w", i, r)
			}
			if _, _, err := s.ListPayments(ctx, pb.PaymentFilter{PayerID: name("usr_", i)}); err != nil {
				return fmt.Errorf("ListPayments: %w", err)
			}
		}
		// Batch i+1 may be committing: if one of its rows is visible, all are.
		if _, err := s.Merchant(ctx, name("mch_", i+1)); err == nil {
			if _, err := s.User(ctx, name("usr_", i+1)); err != nil {
				return fmt.Errorf("merchant of batch %d visible but its user is not: %w", i+1, err)
			}
			if _, err := s.Payment(ctx, name("pay_", i+1)); err != nil {
				return fmt.Errorf("merchant of batch %d visible but its payment is not: %w", i+1, err)
			}
		} else if pb.ErrorCode(err) != pb.ErrNotFound {
			return fmt.Errorf("Merchant: %w", err)
		}
		// ScanLedger reads one snapshot: n+1 accounts with n transfers, and
		// the funding account's balance of that same batch.
		var na, nt, funding int64
		err := s.ScanLedger(ctx, func(a *pb.Account) error {
			na++
			if a.ID == 1 {
				funding = a.DebitsPosted
			}
			return nil
		}, func(*pb.Transfer) error { nt++; return nil })
		if err != nil {
			return fmt.Errorf("ScanLedger: %w", err)
		}
		if na != nt+1 || funding != nt || nt < i {
			return fmt.Errorf("ScanLedger saw %d accounts, %d transfers and a funding balance of %d after batch %d was acknowledged: not one consistent snapshot", na, nt, funding, i)
		}
		if _, _, err := s.NextIDs(ctx); err != nil {
			return fmt.Errorf("NextIDs: %w", err)
		}
		if _, err := s.AccountsByOwner(ctx, pb.OwnerFunding); err != nil {
			return fmt.Errorf("AccountsByOwner: %w", err)
		}
		return nil
	}
	for range readers {
		wg.Go(func() {
			for !stop.Load() {
				if err := read(); err != nil {
					t.Errorf("concurrent read: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := acked.Load(); got != batches {
		t.Fatalf("only %d of %d batches were committed", got, batches)
	}
	if as, ts := scanAll(t, s); len(as) != batches+1 || len(ts) != batches {
		t.Errorf("after all commits ScanLedger saw %d accounts and %d transfers, want %d and %d", len(as), len(ts), batches+1, batches)
	}
}

func lookupErr(ctx context.Context, s pb.Store, caller string) error {
	recs, err := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: caller, Key: "k"}})
	if err != nil {
		return err
	}
	if len(recs) != 1 {
		return fmt.Errorf("%d records for %s/k, want 1", len(recs), caller)
	}
	return nil
}

func mandate(id, user, agent string, created time.Time) pb.Mandate {
	exp := created.Add(30 * 24 * time.Hour)
	return pb.Mandate{ID: id, Object: "mandate", UserID: user, AgentID: agent, Description: "breakfast, at most 30 CNY",
		Currency: "CNY", MaxAmount: 3000, Budget: pb.Budget{Amount: 15000, Period: pb.PeriodWeek},
		Categories: []string{"food_and_drink"}, ValidFrom: created, ExpiresAt: &exp, MaxPayments: 20,
		Schedule:  &pb.Schedule{Days: []string{"mon", "fri"}, Start: "07:00", End: "10:00", TimeZone: "Asia/Shanghai"},
		Condition: `payment.amount < 2000`, CreatedAt: created}
}

// testMandates: a mandate reads back whole; only its revocation changes;
// lists are a user's, newest first, optionally one agent's.
func testMandates(t *testing.T, s pb.Store) {
	ctx := t.Context()
	var ms []pb.Mandate
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		agent := "agt_a"
		if i%2 == 1 {
			agent = "agt_b"
		}
		ms = append(ms, mandate(pb.NewID(pb.PrefixMandate, at), "usr_alice", agent, at))
	}
	other := mandate(pb.NewID(pb.PrefixMandate, t0), "usr_bob", "agt_a", t0)
	commit(t, s, &pb.Batch{Mandates: append(slices.Clone(ms), other)})
	got, err := s.Mandate(ctx, ms[0].ID)
	if err != nil {
		t.Fatalf("Mandate: %v", err)
	}
	want := ms[0]
	if g, w := normMandate(*got), normMandate(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("Mandate read back\n\t%+v\nwant\n\t%+v", g, w)
	}
	revoked := t0.Add(time.Hour)
	r := ms[0]
	r.RevokedAt = &revoked
	r.Description = "changed" // not stored: a definition never changes
	commit(t, s, &pb.Batch{Mandates: []pb.Mandate{r}})
	got, _ = s.Mandate(ctx, ms[0].ID)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(sec(revoked)) || got.Description != ms[0].Description {
		t.Fatalf("after revocation: %+v", got)
	}
	_, err = s.Mandate(ctx, "mdt_missing")
	wantNotFound(t, "Mandate(mdt_missing)", err)
	list, more, err := s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_alice", Limit: 3})
	if err != nil || !more || len(list) != 3 || list[0].ID != ms[4].ID || list[2].ID != ms[2].ID {
		t.Fatalf("first page: %d more=%v %v", len(list), more, err)
	}
	list, more, err = s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_alice", StartingAfter: list[2].ID, Limit: 3})
	if err != nil || more || len(list) != 2 || list[1].ID != ms[0].ID {
		t.Fatalf("second page: %d more=%v %v", len(list), more, err)
	}
	list, _, _ = s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_alice", AgentID: "agt_b"})
	if len(list) != 2 || list[0].AgentID != "agt_b" || list[1].AgentID != "agt_b" {
		t.Fatalf("agent filter: %+v", list)
	}
	list, _, _ = s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_nobody"})
	if list == nil || len(list) != 0 {
		t.Fatalf("no mandates: %#v", list)
	}
}

func normMandate(m pb.Mandate) pb.Mandate {
	m.ValidFrom, m.CreatedAt = sec(m.ValidFrom), sec(m.CreatedAt)
	if m.ExpiresAt != nil {
		e := sec(*m.ExpiresAt)
		m.ExpiresAt = &e
	}
	return m
}

// testMandateUsage: usage rows read back, change, and can never pass their
// caps: a batch that would is refused whole.
func testMandateUsage(t *testing.T, s pb.Store) {
	ctx := t.Context()
	_, err := s.MandateUsage(ctx, "mdt_1", "2026-W48")
	wantNotFound(t, "MandateUsage of nothing", err)
	week := pb.MandateUsageRow{MandateID: "mdt_1", PeriodKey: "2026-W48", Spent: 1000, Payments: 1, CapAmount: 5000}
	all := pb.MandateUsageRow{MandateID: "mdt_1", PeriodKey: "*", Payments: 1, CapAmount: pb.MaxAmount, CapPayments: 2}
	commit(t, s, &pb.Batch{Usage: []pb.MandateUsageRow{week, all}})
	week.Spent, week.Payments, all.Payments = 5000, 2, 2
	commit(t, s, &pb.Batch{Usage: []pb.MandateUsageRow{week, all}})
	got, err := s.MandateUsage(ctx, "mdt_1", "2026-W48")
	if err != nil || *got != week {
		t.Fatalf("usage: %+v %v; want %+v", got, err, week)
	}
	for name, bad := range map[string]pb.MandateUsageRow{
		"over budget":   {MandateID: "mdt_1", PeriodKey: "2026-W48", Spent: 5001, Payments: 3, CapAmount: 5000},
		"over payments": {MandateID: "mdt_1", PeriodKey: "*", Payments: 3, CapAmount: pb.MaxAmount, CapPayments: 2},
		"negative":      {MandateID: "mdt_1", PeriodKey: "2026-W48", Spent: -1, Payments: 2, CapAmount: 5000},
	} {
		b := &pb.Batch{Usage: []pb.MandateUsageRow{bad}, Users: []pb.User{{ID: "usr_" + strings.ReplaceAll(name, " ", "_"), Name: "x", CreatedAt: t0}}}
		asWriter(t, s, b)
		if err := s.Commit(ctx, b); err == nil {
			t.Errorf("%s: a usage row past its cap was committed", name)
		}
		if _, err := s.User(ctx, b.Users[0].ID); pb.ErrorCode(err) != pb.ErrNotFound {
			t.Errorf("%s: the refused batch's user was written", name)
		}
	}
	if got, _ := s.MandateUsage(ctx, "mdt_1", "2026-W48"); *got != week {
		t.Fatalf("usage after refused batches: %+v", got)
	}
}

// testTOTP: a factor reads back byte for byte and is replaced whole.
func testTOTP(t *testing.T, s pb.Store) {
	ctx := t.Context()
	_, err := s.TOTP(ctx, "usr_alice")
	wantNotFound(t, "TOTP(usr_alice) before enrolment", err)
	f := pb.TOTPFactor{UserID: "usr_alice", Secret: []byte{0, 1, 2, 255}, CreatedAt: t0}
	commit(t, s, &pb.Batch{TOTP: []pb.TOTPFactor{f}})
	f.Active, f.LastStep = true, 59_999_999
	commit(t, s, &pb.Batch{TOTP: []pb.TOTPFactor{f}})
	got, err := s.TOTP(ctx, "usr_alice")
	if err != nil || !bytes.Equal(got.Secret, f.Secret) || !got.Active || got.LastStep != f.LastStep || !got.CreatedAt.Equal(sec(t0)) {
		t.Fatalf("TOTP = %+v, %v; want %+v", got, err, f)
	}
}

// testCodeFailures: wrong codes add up per confirmation, within a batch and
// across batches.
func testCodeFailures(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if n, err := s.CodeFailures(ctx, "cfm_a"); n != 0 || err != nil {
		t.Fatalf("CodeFailures before any = %d, %v", n, err)
	}
	commit(t, s, &pb.Batch{CodeFailures: []string{"cfm_a", "cfm_b", "cfm_a"}})
	commit(t, s, &pb.Batch{CodeFailures: []string{"cfm_a"}})
	for id, want := range map[string]int{"cfm_a": 3, "cfm_b": 1, "cfm_c": 0} {
		if n, err := s.CodeFailures(ctx, id); n != want || err != nil {
			t.Fatalf("CodeFailures(%s) = %d, %v; want %d", id, n, err, want)
		}
	}
}

// testPasskeys: a user's passkeys read back oldest first, byte for byte; a
// passkey written again replaces its record; other users' stay apart.
func testPasskeys(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if got, err := s.Passkeys(ctx, "usr_alice"); err != nil || len(got) != 0 {
		t.Fatalf("Passkeys before any = %v, %v", got, err)
	}
	a := pb.Passkey{ID: []byte{0, 1, 255}, UserID: "usr_alice", Credential: []byte(`{"n":1}`), CreatedAt: t0}
	b := pb.Passkey{ID: []byte{9}, UserID: "usr_alice", Credential: []byte(`{"n":2}`), CreatedAt: t0.Add(time.Minute)}
	c := pb.Passkey{ID: []byte{7}, UserID: "usr_bob", Credential: []byte(`{}`), CreatedAt: t0}
	commit(t, s, &pb.Batch{Passkeys: []pb.Passkey{b, a, c}})
	a.Credential = []byte(`{"n":3}`)
	revoked := t0.Add(time.Hour)
	a.RevokedAt = &revoked
	commit(t, s, &pb.Batch{Passkeys: []pb.Passkey{a}})
	got, err := s.Passkeys(ctx, "usr_alice")
	if err != nil || len(got) != 2 || !bytes.Equal(got[0].ID, a.ID) || string(got[0].Credential) != `{"n":3}` ||
		!bytes.Equal(got[1].ID, b.ID) || got[0].UserID != "usr_alice" || !got[1].CreatedAt.Equal(sec(b.CreatedAt)) ||
		got[0].RevokedAt == nil || !got[0].RevokedAt.Equal(sec(revoked)) || got[1].RevokedAt != nil {
		t.Fatalf("Passkeys(usr_alice) = %+v, %v", got, err)
	}
	// A credential update that raced the revocation does not undo it.
	a.RevokedAt, a.Credential = nil, []byte(`{"n":4}`)
	commit(t, s, &pb.Batch{Passkeys: []pb.Passkey{a}})
	if got, err := s.Passkeys(ctx, "usr_alice"); err != nil || got[0].RevokedAt == nil || string(got[0].Credential) != `{"n":4}` {
		t.Fatalf("after a racing update: %+v, %v", got, err)
	}
}

// testConfirmations: a payment's confirmation reads back, it is found by
// its ID, and an unconfirmed payment past it is listed as expired.
func testConfirmations(t *testing.T, s pb.Store) {
	ctx := t.Context()
	p := payment("pay_c", "usr_alice", "mch_cafe", "agt_butler", t0)
	p.Status = pb.StatusRequiresConfirmation
	p.Confirmation = pb.NewConfirmation(t0)
	commit(t, s, &pb.Batch{Payments: []pb.Payment{p}})
	got, err := s.PaymentByConfirmation(ctx, p.Confirmation.ID)
	if err != nil || got.ID != p.ID || got.Confirmation == nil || *got.Confirmation != *p.Confirmation {
		t.Fatalf("PaymentByConfirmation = %+v, %v; want %+v", got, err, p.Confirmation)
	}
	_, err = s.PaymentByConfirmation(ctx, "cfm_missing")
	wantNotFound(t, "PaymentByConfirmation(cfm_missing)", err)
	_, err = s.PaymentByConfirmation(ctx, "")
	wantNotFound(t, "PaymentByConfirmation(\"\")", err)
	ids, err := s.ExpiredPayments(ctx, p.Confirmation.ExpiresAt.Add(-time.Second), 10)
	if err != nil || len(ids) != 0 {
		t.Fatalf("before its expiry: %v %v", ids, err)
	}
	ids, err = s.ExpiredPayments(ctx, p.Confirmation.ExpiresAt, 10)
	if err != nil || len(ids) != 1 || ids[0] != p.ID {
		t.Fatalf("at its expiry: %v %v", ids, err)
	}
	// Confirmed: no longer listed.
	p.Status = pb.StatusCanceled
	commit(t, s, &pb.Batch{Payments: []pb.Payment{p}})
	if ids, _ := s.ExpiredPayments(ctx, p.Confirmation.ExpiresAt, 10); len(ids) != 0 {
		t.Fatalf("a canceled payment listed: %v", ids)
	}
}

// testNonces: a nonce is seen once stored, a second store of it refuses the
// batch, and old ones are deleted.
func testNonces(t *testing.T, s pb.Store) {
	ctx := t.Context()
	n := pb.Nonce{KeyID: "kid", Nonce: "n1", Expires: t0.Add(5 * time.Minute)}
	if seen, err := s.NonceSeen(ctx, "kid", "n1"); err != nil || seen {
		t.Fatalf("before: %v %v", seen, err)
	}
	commit(t, s, &pb.Batch{Nonces: []pb.Nonce{n, {KeyID: "kid", Nonce: "n2", Expires: t0.Add(time.Hour)}}})
	if seen, err := s.NonceSeen(ctx, "kid", "n1"); err != nil || !seen {
		t.Fatalf("after: %v %v", seen, err)
	}
	if seen, _ := s.NonceSeen(ctx, "other", "n1"); seen {
		t.Fatal("a nonce is per key")
	}
	b := &pb.Batch{Nonces: []pb.Nonce{n}, Users: []pb.User{{ID: "usr_nonce", Name: "x", CreatedAt: t0}}}
	if err := s.Commit(ctx, b); err == nil {
		t.Fatal("a nonce was stored twice")
	}
	if _, err := s.User(ctx, "usr_nonce"); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Fatal("the refused batch's user was written")
	}
	if d, err := s.DeleteNonces(ctx, t0.Add(10*time.Minute), 10); err != nil || d != 1 {
		t.Fatalf("DeleteNonces = %d, %v; want 1", d, err)
	}
	if seen, _ := s.NonceSeen(ctx, "kid", "n2"); !seen {
		t.Fatal("a nonce inside its window was deleted")
	}
}

func testAgentByKeyID(t *testing.T, s pb.Store) {
	ctx := t.Context()
	later := t0.Add(time.Hour)
	k1 := pb.AgentKey{KeyID: "thumb-1", AgentID: "agt_k", PublicKey: `{"kty":"OKP"}`, CreatedAt: t0}
	k2 := pb.AgentKey{KeyID: "thumb-2", AgentID: "agt_k", PublicKey: `{"kty":"OKP","x":"2"}`, CreatedAt: later}
	commit(t, s, &pb.Batch{AgentKeys: []pb.AgentKey{k1, k2}})
	k1.NotAfter, k1.RevokedAt = &later, &later
	commit(t, s, &pb.Batch{AgentKeys: []pb.AgentKey{k1}})
	got, err := s.AgentKey(ctx, "thumb-1")
	if err != nil || got.AgentID != "agt_k" || got.PublicKey != k1.PublicKey || got.NotAfter == nil || !got.NotAfter.Equal(sec(later)) || got.RevokedAt == nil {
		t.Fatalf("AgentKey: %+v %v", got, err)
	}
	keys, err := s.AgentKeys(ctx, "agt_k")
	if err != nil || len(keys) != 2 || keys[0].KeyID != "thumb-1" || keys[1].KeyID != "thumb-2" || keys[1].NotAfter != nil {
		t.Fatalf("AgentKeys: %+v %v", keys, err)
	}
	_, err = s.AgentKey(ctx, "thumb-3")
	wantNotFound(t, "AgentKey(thumb-3)", err)
	if keys, err := s.AgentKeys(ctx, "agt_none"); err != nil || keys == nil || len(keys) != 0 {
		t.Fatalf("no keys: %#v %v", keys, err)
	}
}
