package storetest

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func normPayment(p pb.Payment) pb.Payment {
	p.Version = 0 // set by asWriter; testPaymentVersions checks it
	p.CreatedAt = sec(p.CreatedAt)
	if p.AuthorizationExpiresAt != nil {
		e := sec(*p.AuthorizationExpiresAt)
		p.AuthorizationExpiresAt = &e
	}
	return p
}

func checkPayment(t *testing.T, what string, got *pb.Payment, want pb.Payment) {
	t.Helper()
	check(t, what, normPayment(*got), normPayment(want))
}

func payment(id, payer, merchant, agent string, created time.Time) pb.Payment {
	exp := created.Add(pb.DefaultAuthorizationTTL)
	return pb.Payment{ID: id, Object: "payment", Status: pb.StatusAuthorized, Amount: 1000, Currency: "CNY",
		MerchantID: merchant, PayerID: payer, AgentID: pb.OptString(agent), Description: "coffee",
		CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: &exp, Metadata: map[string]string{},
		Assurance: pb.AssuranceSigned, CreatedAt: created}
}

// testPaymentVersions: a payment's Version is stored and read back, from
// its creation (1) through each change.
func testPaymentVersions(t *testing.T, s pb.Store) {
	p := payment("pay_v", "usr_alice", "mch_cafe", "", t0)
	for want := int64(1); want <= 3; want++ {
		b := &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}}
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
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p1, p2, p3}}})
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
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p1, p2, p3, p4}}})
	for _, want := range []pb.Payment{p1, p2, p3, p4} {
		got, err := s.Payment(ctx, want.ID)
		if err != nil {
			t.Fatalf("Payment(%s) after update: %v", want.ID, err)
		}
		checkPayment(t, "Payment("+want.ID+") after update", got, want)
	}
}

// testPaymentMetadata: a payment written without metadata (a nil map)
// reads back, by every read, with an empty map, so that the API shows {}
// rather than null; metadata reads back as written.
func testPaymentMetadata(t *testing.T, s pb.Store) {
	ctx := t.Context()
	none := payment("pay_none", "usr_alice", "mch_cafe", "", t0)
	none.Metadata = nil
	none.Status, none.Confirmation = pb.StatusRequiresConfirmation, pb.NewConfirmation(t0)
	some := payment("pay_some", "usr_alice", "mch_cafe", "", t0.Add(time.Millisecond))
	some.Metadata = map[string]string{"order": "42"}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{none, some}}})
	want := map[string]map[string]string{none.ID: {}, some.ID: some.Metadata}
	checkMetadata := func(what string, p *pb.Payment) {
		t.Helper()
		if p.Metadata == nil || !reflect.DeepEqual(p.Metadata, want[p.ID]) {
			t.Errorf("%s: metadata %s, want %#v", what, show(p.Metadata), want[p.ID])
		}
	}
	for id := range want {
		got, err := s.Payment(ctx, id)
		if err != nil {
			t.Fatalf("Payment(%s): %v", id, err)
		}
		checkMetadata("Payment("+id+")", got)
	}
	got, err := s.PaymentByConfirmation(ctx, none.Confirmation.ID)
	if err != nil {
		t.Fatalf("PaymentByConfirmation: %v", err)
	}
	checkMetadata("PaymentByConfirmation", got)
	list, _, err := s.ListPayments(ctx, pb.PaymentFilter{PayerID: "usr_alice"})
	if err != nil || len(list) != 2 {
		t.Fatalf("ListPayments: %d payments, %v; want 2", len(list), err)
	}
	for i := range list {
		checkMetadata("ListPayments", &list[i])
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
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Users: users, Merchants: merchants, Agents: agents, APIKeys: keys}})

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
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: ps[n/2:]}})
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: ps[:n/2]}})
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
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{done}}})
	got, err = s.ExpiredPayments(ctx, now, 100)
	if err != nil {
		t.Fatalf("ExpiredPayments after one expired: %v", err)
	}
	if want := ids(due[1:]); !slices.Equal(got, want) {
		t.Errorf("ExpiredPayments after %s was marked expired = %v, want %v", done.ID, got, want)
	}
}
