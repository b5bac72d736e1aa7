package sqlite_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/storetest"
)

// TestConformanceMergingEveryCommit runs the store's contract with every
// new payment added to payment_parties, and every signed request's nonce
// moved into signature_nonces, in the commit that writes it, so that the
// reads find them there (TestConformance, with the defaults, finds them
// after the mark and among the recent nonces).
func TestConformanceMergingEveryCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) pb.Store {
		s := open(t, filepath.Join(t.TempDir(), "paybound.db"))
		sqlite.SetMergeEvery(s, 1)
		sqlite.SetMoveNoncesAt(s, 1)
		return s
	})
}

// TestPartyListsAcrossMerges: with merges every few payments, the reads
// of a payer's, an agent's or a merchant's payments (lists with every
// filter and page size, recent payments, whether the payer paid a
// merchant, the activity tally) give what a model of the committed
// payments gives, while some of them are in payment_parties and some after
// its mark, across payments changed after their merge, and across a
// reopen; and every payment is listed once.
func TestPartyListsAcrossMerges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	s := open(t, path)
	sqlite.SetMergeEvery(s, 5)
	raw := openRaw(t, path)
	rng := rand.New(rand.NewPCG(20, 24))
	payers := []string{"usr_a", "usr_b", "usr_c"}
	agents := []string{"", "agt_x", "agt_y"}
	merchants := []string{"mch_1", "mch_2"}
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var model []pb.Payment // newest last
	var sawBoth bool
	for round := range 60 {
		var b pb.Batch
		for range 1 + rng.IntN(4) {
			at := t0.Add(time.Duration(len(model)) * time.Second)
			exp := at.Add(time.Hour)
			p := pb.Payment{ID: pb.NewID(pb.PrefixPayment, at), Object: "payment", Status: pb.StatusAuthorized, Amount: int64(1 + rng.IntN(900)),
				Currency: "USD", MerchantID: merchants[rng.IntN(len(merchants))], PayerID: payers[rng.IntN(len(payers))],
				AgentID: pb.OptString(agents[rng.IntN(len(agents))]), CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: &exp,
				Metadata: map[string]string{}, Assurance: pb.AssuranceSigned, CreatedAt: at, Version: 1}
			model = append(model, p)
			b.Payments, b.PaymentVersions = append(b.Payments, p), append(b.PaymentVersions, 0)
		}
		if rng.IntN(2) == 0 { // a change to an older payment, merged or not
			j := rng.IntN(len(model) - len(b.Payments) + 1)
			if !slices.ContainsFunc(b.Payments, func(p pb.Payment) bool { return p.ID == model[j].ID }) {
				p := &model[j]
				b.Payments, b.PaymentVersions = append(b.Payments, *p), append(b.PaymentVersions, p.Version)
				p.Version++
				p.Status = []pb.PaymentStatus{pb.StatusCaptured, pb.StatusCanceled, pb.StatusDeclined}[rng.IntN(3)]
				b.Payments[len(b.Payments)-1] = *p
			}
		}
		if err := s.Commit(t.Context(), &b); err != nil {
			t.Fatalf("round %d: Commit: %v", round, err)
		}
		if round == 30 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, path)
			sqlite.SetMergeEvery(s, 5)
		}
		if round%3 != 2 {
			continue
		}
		var merged, upto, last int
		if err := raw.QueryRow(`SELECT (SELECT COUNT(*) FROM payment_parties), (SELECT upto FROM payment_parties_upto), (SELECT MAX(rowid) FROM payments)`).Scan(&merged, &upto, &last); err != nil {
			t.Fatal(err)
		}
		sawBoth = sawBoth || (merged > 0 && upto < last)
		checkParties(t, s, model, payers, agents, merchants, fmt.Sprintf("round %d (%d payments, merged up to rowid %d of %d)", round, len(model), upto, last))
	}
	if !sawBoth {
		t.Fatal("no check ran with payments both in payment_parties and after its mark")
	}
}

// checkParties compares s's reads by payer and by agent with the model's.
func checkParties(t *testing.T, s *sqlite.Store, model []pb.Payment, payers, agents, merchants []string, what string) {
	t.Helper()
	ctx := t.Context()
	newest := slices.Clone(model)
	slices.SortFunc(newest, func(a, b pb.Payment) int { return cmp.Compare(b.ID, a.ID) })
	var filters []pb.PaymentFilter
	for _, u := range payers {
		filters = append(filters, pb.PaymentFilter{PayerID: u}, pb.PaymentFilter{PayerID: u, Status: pb.StatusAuthorized},
			pb.PaymentFilter{PayerID: u, MerchantID: merchants[0]}, pb.PaymentFilter{PayerID: u, AgentID: agents[1]})
	}
	for _, a := range agents[1:] {
		filters = append(filters, pb.PaymentFilter{AgentID: a}, pb.PaymentFilter{AgentID: a, Status: pb.StatusCaptured},
			pb.PaymentFilter{AgentID: a, MerchantID: merchants[1]})
	}
	for _, m := range merchants {
		filters = append(filters, pb.PaymentFilter{MerchantID: m}, pb.PaymentFilter{MerchantID: m, Status: pb.StatusAuthorized})
	}
	for _, f := range filters {
		var want []string
		for _, p := range newest {
			if (f.PayerID == "" || p.PayerID == f.PayerID) && (f.AgentID == "" || string(p.AgentID) == f.AgentID) &&
				(f.MerchantID == "" || p.MerchantID == f.MerchantID) && (f.Status == "" || p.Status == f.Status) {
				want = append(want, p.ID)
			}
		}
		for _, limit := range []int{1, 3, 100} {
			var got []string
			g := f
			g.Limit = limit
			for pages := 0; ; pages++ {
				page, more, err := s.ListPayments(ctx, g)
				if err != nil || pages > len(model) {
					t.Fatalf("%s: ListPayments(%+v): %v", what, g, err)
				}
				for _, p := range page {
					got = append(got, p.ID)
				}
				if !more {
					break
				}
				g.StartingAfter = page[len(page)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: walking ListPayments(%+v) by %d gave\n\t%v\nwant\n\t%v", what, f, limit, got, want)
			}
		}
	}
	for _, u := range payers {
		var mine []pb.Payment
		for _, p := range newest {
			if p.PayerID == u {
				mine = append(mine, p)
			}
		}
		recent, err := s.RecentPayments(ctx, u, 4)
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, r := range recent {
			got = append(got, r.ID+"/"+string(r.Status))
		}
		for _, p := range mine[:min(4, len(mine))] {
			want = append(want, p.ID+"/"+string(p.Status))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: RecentPayments(%s, 4) = %v, want %v", what, u, got, want)
		}
		for _, m := range merchants {
			paid, err := s.PaidMerchant(ctx, u, m)
			want := slices.ContainsFunc(mine, func(p pb.Payment) bool {
				return p.MerchantID == m && (p.Status == pb.StatusAuthorized || p.Status == pb.StatusCaptured)
			})
			if err != nil || paid != want {
				t.Fatalf("%s: PaidMerchant(%s, %s) = %v, %v; want %v", what, u, m, paid, err, want)
			}
		}
		if len(mine) > 2 {
			q := pb.ActivityQuery{PayerID: u, SinceID: mine[len(mine)/2].ID, AgentID: "agt_x", MerchantID: merchants[0], Amount: 5}
			var want pb.Activity
			for _, p := range mine[:len(mine)/2+1] {
				q.Add(&want, &pb.RecentPayment{ID: p.ID, MerchantID: p.MerchantID, AgentID: string(p.AgentID), Amount: p.Amount, Status: p.Status, DeclineCode: p.DeclineCode})
			}
			got, err := s.PayerActivity(ctx, q)
			if err != nil || got != want {
				t.Fatalf("%s: PayerActivity(%+v) = %+v, %v; want %+v", what, q, got, err, want)
			}
		}
	}
}

// TestPaymentPartiesMigration: a database of schema 23 (payments indexed
// by payer, agent and merchant) opens with every payment in
// payment_parties under each of its parties (migrations 0024 and 0026), the
// mark at its last, the three indexes gone, and the lists as before.
func TestPaymentPartiesMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 23)
	rows := []struct{ id, payer, agent string }{
		{"pay_1", "usr_a", ""}, {"pay_2", "usr_b", "agt_x"}, {"pay_3", "usr_a", "agt_x"}, {"pay_4", "usr_a", "agt_y"},
	}
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO payments (id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded,
			currency, merchant_id, payer_id, agent_id, mandate_id, description, capture_method, metadata, decline_code, hold_id,
			created_at, version, confirmation_id, assurance)
			VALUES (?, 'captured', 100, 100, 0, 0, 0, 'USD', 'mch_1', ?, ?, '', '', 'automatic', '{}', '', 0, 0, 1, '', 'key')`,
			r.id, r.payer, r.agent); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	for f, want := range map[pb.PaymentFilter][]string{
		{PayerID: "usr_a"}:    {"pay_4", "pay_3", "pay_1"},
		{PayerID: "usr_b"}:    {"pay_2"},
		{AgentID: "agt_x"}:    {"pay_3", "pay_2"},
		{AgentID: "agt_y"}:    {"pay_4"},
		{AgentID: "agt_z"}:    nil,
		{MerchantID: "mch_1"}: {"pay_4", "pay_3", "pay_2", "pay_1"},
		{MerchantID: "mch_2"}: nil,
	} {
		ps, more, err := s.ListPayments(t.Context(), f)
		var got []string
		for _, p := range ps {
			got = append(got, p.ID)
		}
		if err != nil || more || !slices.Equal(got, want) {
			t.Errorf("ListPayments(%+v) after the migration = %v, %v, %v; want %v", f, got, more, err, want)
		}
	}
	raw := openRaw(t, path)
	var entries, upto, indexes int
	if err := raw.QueryRow(`SELECT (SELECT COUNT(*) FROM payment_parties), (SELECT upto FROM payment_parties_upto),
		(SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('payments_payer', 'payments_agent', 'payments_merchant'))`).Scan(&entries, &upto, &indexes); err != nil {
		t.Fatal(err)
	}
	if entries != 11 || upto != 4 || indexes != 0 {
		t.Fatalf("after the migration: %d entries in payment_parties (want 11), mark %d (want 4), %d of the old indexes (want 0)", entries, upto, indexes)
	}
}

// TestRiskColumnsCompact: a new payment's risk columns are stored through
// sqlstore.Compact, smaller than their JSON (the assessment too, under
// deflateMin), and read back whole; a row
// written before, with the columns as text, reads as it did.
func TestRiskColumnsCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	s := open(t, path)
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	input := `{"merchant_name":"bench merchant","category":"general","now":"2026-12-05T10:00:00Z","merchant_history":{"count":79,"median":100},` +
		`"paid_merchant_before":true,"available":999999992100,"agent_velocity":{"minute":{"count":79,"sum":7900},"hour":{"count":79,"sum":7900}},` +
		`"salt":"e06df3d92dc904419b1f298a3acf0004"}`
	p := pb.Payment{ID: pb.NewID(pb.PrefixPayment, at), Object: "payment", Status: pb.StatusCaptured, Amount: 100, AmountCaptured: 100,
		Currency: "USD", MerchantID: "mch_1", PayerID: "usr_1", CaptureMethod: pb.CaptureAutomatic, Metadata: map[string]string{},
		Assurance: pb.AssuranceUser, CreatedAt: at, Version: 1,
		Risk: &pb.Risk{Decision: pb.RiskAllow, Score: 10, Signals: []pb.RiskSignal{{Name: "new_merchant", Points: 10, Reason: "the merchant account is 0h old"}},
			Input: json.RawMessage(input)}}
	if err := s.Commit(t.Context(), &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}, PaymentVersions: []int64{0}}}); err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, path)
	risk, _ := p.Risk.Columns() // 121 bytes of JSON
	for col, v := range map[string]string{"risk_input": input, "risk": risk} {
		var stored []byte
		if err := raw.QueryRow(`SELECT `+col+` FROM payments WHERE id = ?`, p.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(stored, []byte{0, 'z'}) || len(stored) >= len(v)/2 {
			t.Fatalf("%s stored as %d bytes %q...; want it compacted, under half of %d", col, len(stored), stored[:min(8, len(stored))], len(v))
		}
	}
	got, err := s.Payment(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Risk.Input) != input || got.Risk.Score != 10 || got.Risk.Signals[0].Reason != "the merchant account is 0h old" {
		t.Fatalf("the risk read back as %+v, input %s", got.Risk, got.Risk.Input)
	}
	// A row from before: text columns.
	if _, err := raw.Exec(`UPDATE payments SET risk = ?, risk_input = ? WHERE id = ?`,
		`{"decision":"allow","score":3,"signals":[]}`, `{"now":"then"}`, p.ID); err != nil {
		t.Fatal(err)
	}
	got, err = s.Payment(t.Context(), p.ID)
	if err != nil || got.Risk.Score != 3 || string(got.Risk.Input) != `{"now":"then"}` {
		t.Fatalf("a text risk read back as %+v, %v", got.Risk, err)
	}
}
