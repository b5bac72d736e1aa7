package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func testCheckout(t *testing.T, s pb.Store) {
	ctx := t.Context()
	prod := func(id, merchant string, created time.Time) pb.Product {
		return pb.Product{ID: id, Object: "product", MerchantID: merchant, Name: "Tea " + id, SKU: "sku-" + id, Price: big,
			Currency: "USD", Fulfillment: pb.FulfillmentShipping, Active: true, CreatedAt: sec(created), UpdatedAt: sec(created)}
	}
	a, b, c := prod("prod_1", "mch_a", t0), prod("prod_2", "mch_a", t0.Add(time.Second)), prod("prod_3", "mch_b", t0.Add(2*time.Second))
	exp := sec(t0.Add(time.Hour))
	sess := pb.CheckoutSession{ID: "cs_1", MerchantID: "mch_a", AgentID: "agt_1", UserID: "usr_1", Status: pb.CheckoutReady, Currency: "USD",
		Lines:    []pb.CheckoutLine{{ID: "li_1", ProductID: "prod_1", Name: "Tea", SKU: "sku", Fulfillment: pb.FulfillmentShipping, Quantity: 2, UnitAmount: 300, Total: 600}},
		Options:  []pb.FulfillmentOption{{ID: "shipping", Type: pb.FulfillmentShipping, Title: "Standard", LineIDs: []string{"li_1"}}},
		Buyer:    &pb.Buyer{Email: "a@example.com"},
		Messages: []pb.CheckoutMessage{}, ItemsAmount: 600, Total: 600, CreatedAt: sec(t0), UpdatedAt: sec(t0), ExpiresAt: exp, Version: 1}
	card := pb.AgentCard{ID: "card_1", Object: "agent_card", MandateID: "mdt_1", AgentID: "agt_1", UserID: "usr_1",
		NumberHash: "ab12", Last4: "4242", ExpMonth: 7, ExpYear: 2029, CreatedAt: sec(t0)}
	tok := pb.VaultToken{ID: "vt_1", CardID: "card_1", MandateID: "mdt_1", AgentID: "agt_1", UserID: "usr_1", MerchantID: "mch_a",
		CheckoutSessionID: "cs_1", MaxAmount: 600, Currency: "USD", ExpiresAt: exp, Metadata: map[string]string{"k": "v"}, CreatedAt: sec(t0)}
	commit(t, s, &pb.Batch{CheckoutPart: pb.CheckoutPart{Products: []pb.Product{a, b, c}, CheckoutSessions: []pb.CheckoutSession{sess},
		AgentCards: []pb.AgentCard{card}, VaultTokens: []pb.VaultToken{tok}}})

	got, err := s.Product(ctx, "prod_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "Product", *got, a)
	gs, err := s.CheckoutSession(ctx, "cs_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "CheckoutSession", *gs, sess)
	gc, err := s.AgentCardByHash(ctx, "ab12")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "AgentCardByHash", *gc, card)
	gt, err := s.VaultToken(ctx, "vt_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "VaultToken", *gt, tok)
	if n, err := s.CountAgentCards(ctx, "mdt_1"); err != nil || n != 1 {
		t.Errorf("CountAgentCards(mdt_1) = %d, %v; want 1", n, err)
	}
	if n, err := s.CountVaultTokens(ctx, "cs_1"); err != nil || n != 1 {
		t.Errorf("CountVaultTokens(cs_1) = %d, %v; want 1", n, err)
	}
	if n, err := s.CountAgentCards(ctx, "mdt_none"); err != nil || n != 0 {
		t.Errorf("CountAgentCards(mdt_none) = %d, %v; want 0", n, err)
	}
	// The mandate's cards: card_1, then one issued later; none of another.
	card2 := card
	card2.ID, card2.NumberHash, card2.Last4, card2.CreatedAt = "card_2", "cd34", "0005", sec(t0.Add(time.Second))
	other := card
	other.ID, other.MandateID, other.NumberHash = "card_3", "mdt_2", "ef56"
	commit(t, s, &pb.Batch{CheckoutPart: pb.CheckoutPart{AgentCards: []pb.AgentCard{card2, other}}})
	if cs, err := s.MandateAgentCards(ctx, "mdt_1"); err != nil || len(cs) != 2 {
		t.Errorf("MandateAgentCards(mdt_1) = %+v, %v", cs, err)
	} else {
		check(t, "MandateAgentCards[0]", cs[0], card)
		check(t, "MandateAgentCards[1]", cs[1], card2)
	}
	if cs, err := s.MandateAgentCards(ctx, "mdt_none"); err != nil || len(cs) != 0 {
		t.Errorf("MandateAgentCards(mdt_none) = %+v, %v", cs, err)
	}
	// A card revoked is replaced whole, by ID and by hash alike; a card
	// issued and revoked in one batch is stored revoked.
	revoked := card2
	at := sec(t0.Add(time.Minute))
	revoked.RevokedAt = &at
	fourth := card
	fourth.ID, fourth.MandateID, fourth.NumberHash = "card_4", "mdt_2", "aa99"
	fourthRevoked := fourth
	fourthRevoked.RevokedAt = &at
	commit(t, s, &pb.Batch{CheckoutPart: pb.CheckoutPart{AgentCards: []pb.AgentCard{revoked, fourth, fourthRevoked}}})
	for _, want := range []pb.AgentCard{card, revoked, fourthRevoked} {
		if got, err := s.AgentCard(ctx, want.ID); err != nil {
			t.Errorf("AgentCard(%s): %v", want.ID, err)
		} else {
			check(t, "AgentCard "+want.ID, *got, want)
		}
		if got, err := s.AgentCardByHash(ctx, want.NumberHash); err != nil {
			t.Errorf("AgentCardByHash(%s): %v", want.NumberHash, err)
		} else {
			check(t, "AgentCardByHash "+want.ID, *got, want)
		}
	}
	_, err = s.AgentCard(ctx, "card_none")
	wantNotFound(t, "a missing card by ID", err)
	_, err = s.Product(ctx, "prod_none")
	wantNotFound(t, "a missing product", err)
	_, err = s.CheckoutSession(ctx, "cs_none")
	wantNotFound(t, "a missing session", err)
	_, err = s.AgentCardByHash(ctx, "ffff")
	wantNotFound(t, "a missing card", err)
	_, err = s.VaultToken(ctx, "vt_none")
	wantNotFound(t, "a missing token", err)
	_, err = s.CheckoutCompletion(ctx, "cs_1")
	wantNotFound(t, "a missing completion", err)

	// Written again: replaced whole.
	b.Active, b.Price = false, 7
	sess.Status, sess.PaymentID, sess.Version = pb.CheckoutCompleted, "pay_1", 2
	sess.Order = &pb.Order{ID: "ord_1", Number: "1", PaymentID: "pay_1", PermalinkURL: "http://x/o", CreatedAt: sec(t0)}
	tok.UsedBy = "pay_1"
	done := pb.CheckoutCompletion{SessionID: "cs_1", TokenID: "vt_1", PaymentID: "pay_1", CreatedAt: sec(t0)}
	commit(t, s, &pb.Batch{CheckoutPart: pb.CheckoutPart{Products: []pb.Product{b}, CheckoutSessions: []pb.CheckoutSession{sess},
		VaultTokens: []pb.VaultToken{tok}, CheckoutCompletions: []pb.CheckoutCompletion{done}}})
	gs, _ = s.CheckoutSession(ctx, "cs_1")
	check(t, "CheckoutSession after completing", *gs, sess)
	if _, ok := s.(pb.SharedStore); ok {
		// Another process's write over a version this one no longer
		// holds, and a second new session of one ID: both refused whole.
		stale, dup := sess, sess
		stale.Status, stale.Version = pb.CheckoutCanceled, 2 // over 1; the store holds 2
		dup.Status, dup.Version = pb.CheckoutCanceled, 1
		for _, w := range []pb.CheckoutSession{stale, dup} {
			p := pb.Product{ID: "prod_stale", Object: "product", MerchantID: "mch_a", Name: "x", Currency: "USD", Price: 1,
				Fulfillment: pb.FulfillmentDigital, Active: true, CreatedAt: sec(t0), UpdatedAt: sec(t0)}
			err := s.Commit(ctx, &pb.Batch{CheckoutPart: pb.CheckoutPart{Products: []pb.Product{p}, CheckoutSessions: []pb.CheckoutSession{w}}})
			if !errors.Is(err, pb.ErrStoreConflict) {
				t.Fatalf("session written at version %d over the stored 2: %v, want ErrStoreConflict", w.Version, err)
			}
			_, err = s.Product(ctx, p.ID)
			wantNotFound(t, "a product of the refused batch", err)
		}
		gs, _ = s.CheckoutSession(ctx, "cs_1")
		check(t, "CheckoutSession after refused writes", *gs, sess)
		// Two changes of one session in one batch, in order.
		next, last := sess, sess
		next.Version, last.Version, last.Buyer = 3, 4, &pb.Buyer{Email: "b@example.com"}
		commit(t, s, &pb.Batch{CheckoutPart: pb.CheckoutPart{CheckoutSessions: []pb.CheckoutSession{next, last}}})
		gs, _ = s.CheckoutSession(ctx, "cs_1")
		check(t, "CheckoutSession after two changes in a batch", *gs, last)
		sess = last
	}
	gt, _ = s.VaultToken(ctx, "vt_1")
	check(t, "VaultToken after use", *gt, tok)
	gd, err := s.CheckoutCompletion(ctx, "cs_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "CheckoutCompletion", *gd, done)

	for _, tc := range []struct {
		f    pb.ProductFilter
		want []string
		more bool
	}{
		{pb.ProductFilter{}, []string{"prod_3", "prod_1"}, false},
		{pb.ProductFilter{IncludeArchived: true}, []string{"prod_3", "prod_2", "prod_1"}, false},
		{pb.ProductFilter{MerchantID: "mch_a", IncludeArchived: true, Limit: 1}, []string{"prod_2"}, true},
		{pb.ProductFilter{MerchantID: "mch_a", IncludeArchived: true, StartingAfter: "prod_2"}, []string{"prod_1"}, false},
		{pb.ProductFilter{MerchantID: "mch_none"}, []string{}, false},
	} {
		ps, more, err := s.ListProducts(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") || more != tc.more {
			t.Errorf("ListProducts(%+v) = %v, %v; want %v, %v", tc.f, ids, more, tc.want, tc.more)
		}
	}
}

// testCheckoutCompletionOnce: a second completion of a session, or a second
// use of a token, refuses its whole batch, and nothing of it is written.
func testCheckoutCompletionOnce(t *testing.T, s pb.Store) {
	ctx := t.Context()
	first := pb.CheckoutCompletion{SessionID: "cs_1", TokenID: "vt_1", PaymentID: "pay_1", CreatedAt: sec(t0)}
	commit(t, s, &pb.Batch{CheckoutPart: pb.CheckoutPart{CheckoutCompletions: []pb.CheckoutCompletion{first}}})
	for _, again := range []pb.CheckoutCompletion{
		{SessionID: "cs_1", TokenID: "vt_2", PaymentID: "pay_2", CreatedAt: sec(t0)},
		{SessionID: "cs_2", TokenID: "vt_1", PaymentID: "pay_3", CreatedAt: sec(t0)},
	} {
		p := pb.Product{ID: "prod_" + again.PaymentID, Object: "product", MerchantID: "mch_a", Name: "x", Currency: "USD", Price: 1,
			Fulfillment: pb.FulfillmentDigital, Active: true, CreatedAt: sec(t0), UpdatedAt: sec(t0)}
		err := s.Commit(ctx, &pb.Batch{CheckoutPart: pb.CheckoutPart{Products: []pb.Product{p}, CheckoutCompletions: []pb.CheckoutCompletion{again}}})
		if err == nil {
			t.Fatalf("a second completion %+v was committed", again)
		}
		if _, shared := s.(pb.SharedStore); shared && !errors.Is(err, pb.ErrStoreConflict) {
			t.Errorf("a shared store's refusal is %v, want ErrStoreConflict", err)
		}
		_, err = s.Product(ctx, p.ID)
		wantNotFound(t, "a product of the refused batch", err)
	}
	got, _ := s.CheckoutCompletion(ctx, "cs_1")
	if got == nil || got.PaymentID != "pay_1" {
		t.Errorf("the completion is %+v, want the first", got)
	}
}
