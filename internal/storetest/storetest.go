// Package storetest is the conformance suite of pb.Store: every store
// (internal/sqlite, internal/postgres) runs it from its own tests with
//
//	storetest.Run(t, func(t *testing.T) pb.Store { … open a fresh, empty store … })
//
// Each subtest opens its own store through open, which must return an empty
// store and arrange for it to be closed (t.Cleanup). The subtests run in
// parallel, so open is called from several goroutines at once.
//
// The tests of each capability's part of pb.Store are in a file named after
// it (ledger.go, payments.go and idempotency.go, mandates.go, stepup.go,
// agents.go, disputes.go, log.go, risk.go); commit.go holds what Commit
// promises whatever it writes (atomicity, cancellation, reads alongside).
//
// What the contract leaves to the store, the suite does not assert: the
// precision of API times beyond the second (the service truncates them to
// whole seconds), of ledger and idempotency times beyond the millisecond,
// the time zone of times read back, and the order of LookupIdempotency's
// results.
package storetest

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
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
		{"PaymentMetadata", testPaymentMetadata},
		{"Mandates", testMandates},
		{"MandateUsage", testMandateUsage},
		{"TOTP", testTOTP},
		{"CodeFailures", testCodeFailures},
		{"Passkeys", testPasskeys},
		{"Confirmations", testConfirmations},
		{"Nonces", testNonces},
		{"AgentByKeyID", testAgentByKeyID},
		{"UserAgents", testUserAgents},
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
		{"PayLinks", testPayLinks},
		{"Billing", testBilling},
		{"UsageLines", testUsageLines},
		{"MerchantTransfers", testMerchantTransfers},
		{"Checkout", testCheckout},
		{"CheckoutCompletionOnce", testCheckoutCompletionOnce},
		{"WebhookEndpoints", testWebhookEndpoints},
		{"WebhookOutbox", testWebhookOutbox},
		{"WebhookClaims", testWebhookClaims},
		{"X402Tabs", testX402Tabs},
		{"MandateRequests", testMandateRequests},
		{"SignInCodes", testSignInCodes},
		{"SignInGuards", testSignInGuards},
		{"WalletSessions", testWalletSessions},
		{"SignInChallenges", testSignInChallenges},
		{"CustomerProviders", testCustomerProviders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
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

func ptr[T any](v T) *T { return &v }

func testNotFound(t *testing.T, s pb.Store) {
	ctx := t.Context()
	// Not an empty store: one row of every kind, none of them asked for.
	accts, trs := ledgerFixture()
	commit(t, s, &pb.Batch{
		LedgerPart: pb.LedgerPart{
			Accounts:  accts,
			Transfers: trs,
		},
		PaymentPart: pb.PaymentPart{
			Payments:  []pb.Payment{payment("pay_1", "usr_alice", "mch_cafe", "agt_butler", t0)},
			Users:     []pb.User{{ID: "usr_alice", Name: "Alice", CreatedAt: t0}},
			Merchants: []pb.Merchant{{ID: "mch_cafe", Name: "Café", CreatedAt: t0}},
			Agents:    []pb.Agent{{ID: "agt_butler", UserID: "usr_alice", Name: "Butler", CreatedAt: t0}},
			APIKeys:   []pb.APIKey{{Hash: sha256.Sum256([]byte("sk_alice")), Principal: pb.Principal{Role: pb.RoleUser, ID: "usr_alice", UserID: "usr_alice"}, CreatedAt: t0}},
		},
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
