package mcpserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/mcpserver"
	"github.com/paybound/paybound/internal/service"
)

// TestMerchantTools: a merchant creates a link, captures part of a hold,
// cancels another, refunds, reads its balance, settlement and disputes;
// the ledger agrees at every step, and retries with a key change nothing.
func TestMerchantTools(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	u := w.user(t, 10000)
	m := w.merchant(t, "shop")
	cs := w.connect(t, mcpserver.MerchantSide, m)

	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	for _, n := range []string{"create_payment_link", "capture_payment", "cancel_payment", "refund_payment", "list_payments", "get_balance", "settlement_report", "list_disputes"} {
		if !slices.Contains(names, n) {
			t.Errorf("merchant tool %s missing from %v", n, names)
		}
	}
	if slices.Contains(names, "pay") {
		t.Error("the merchant's server offers pay")
	}

	var link mcpserver.LinkOut
	txt := ok(t, cs, "create_payment_link", map[string]any{"amount": 990, "currency": "USD", "description": "ebook", "max_uses": 3, "idempotency_key": "l"}, &link)
	if !strings.HasPrefix(link.URL, "https://pay.example.com/l/") || link.AmountFormatted != "9.90 USD" || !strings.Contains(txt, link.URL) {
		t.Fatalf("create_payment_link = %+v, %q", link, txt)
	}

	hold := func() *pb.Payment {
		return must[*pb.Payment](t, w.svc.CreatePayment(ctx, u, nil, service.CreatePaymentParams{Amount: 2000, Currency: "USD",
			MerchantID: m.ID, Description: "order", CaptureMethod: pb.CaptureManual}))
	}
	p1, p2 := hold(), hold()
	var cap mcpserver.PaymentOut
	ok(t, cs, "capture_payment", map[string]any{"payment_id": p1.ID, "amount": 1500, "idempotency_key": "c"}, &cap)
	if cap.Status != "captured" || cap.AmountCaptured != 1500 {
		t.Fatalf("capture = %+v", cap)
	}
	ok(t, cs, "capture_payment", map[string]any{"payment_id": p1.ID, "amount": 1500, "idempotency_key": "c"}, &cap) // retry
	refused(t, cs, "capture_payment", map[string]any{"payment_id": p1.ID, "amount": 100, "idempotency_key": "c"}, pb.ErrIdempotencyConflict)
	refused(t, cs, "capture_payment", map[string]any{"payment_id": p1.ID, "idempotency_key": "c2"}, pb.ErrPaymentState)
	var canceled mcpserver.PaymentOut
	ok(t, cs, "cancel_payment", map[string]any{"payment_id": p2.ID, "idempotency_key": "x"}, &canceled)
	if canceled.Status != "canceled" {
		t.Fatalf("cancel = %+v", canceled)
	}
	var ref mcpserver.RefundOut
	ok(t, cs, "refund_payment", map[string]any{"payment_id": p1.ID, "amount": 500, "reason": "late", "idempotency_key": "r"}, &ref)
	if ref.Amount != 500 || ref.PaymentID != p1.ID || ref.AmountFormatted != "5.00 USD" {
		t.Fatalf("refund = %+v", ref)
	}
	ok(t, cs, "refund_payment", map[string]any{"payment_id": p1.ID, "amount": 500, "reason": "late", "idempotency_key": "r"}, &ref) // retry
	refused(t, cs, "refund_payment", map[string]any{"payment_id": p1.ID, "amount": 1001, "idempotency_key": "r2"}, pb.ErrAmountTooLarge)
	if got := w.available(t, u); got != 10000-1000 {
		t.Fatalf("payer's wallet %d; want %d (captured 1500, refunded 500 once)", got, 10000-1000)
	}

	var bal struct {
		Balances []mcpserver.BalanceOut `json:"balances"`
	}
	ok(t, cs, "get_balance", nil, &bal)
	if len(bal.Balances) != 1 || bal.Balances[0].Available != 1000 {
		t.Fatalf("get_balance = %+v", bal)
	}
	var list struct {
		Data []mcpserver.PaymentOut `json:"data"`
	}
	ok(t, cs, "list_payments", nil, &list)
	if len(list.Data) != 2 {
		t.Fatalf("list_payments = %+v", list)
	}
	var rep mcpserver.SettlementOut
	txt = ok(t, cs, "settlement_report", map[string]any{"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, &rep)
	if rep.MerchantID != m.ID || len(rep.Summaries) != 1 || rep.Summaries[0].Totals.Net != 1000 || !strings.Contains(txt, "net 10.00 USD") {
		t.Fatalf("settlement_report = %+v, %q", rep, txt)
	}
	refused(t, cs, "settlement_report", map[string]any{"from": "yesterday"}, pb.ErrParameterInvalid)

	// A dispute by the payer shows in list_disputes.
	disp := w.be.Disputes.Open(ctx, u, nil, p1.ID, pb.ReasonMerchantError, "late")
	if disp.Err != nil {
		t.Fatal(disp.Err)
	}
	var ds struct {
		Data []mcpserver.DisputeOut `json:"data"`
	}
	ok(t, cs, "list_disputes", map[string]any{"status": "open"}, &ds)
	if len(ds.Data) != 1 || ds.Data[0].PaymentID != p1.ID {
		t.Fatalf("list_disputes = %+v", ds)
	}
	refused(t, cs, "list_disputes", map[string]any{"starting_after": "pay_x"}, pb.ErrParameterInvalid)

	// Another merchant sees none of it and can move none of it.
	other := w.connect(t, mcpserver.MerchantSide, w.merchant(t, "other"))
	refused(t, other, "refund_payment", map[string]any{"payment_id": p1.ID, "amount": 100, "idempotency_key": "r"}, pb.ErrNotFound)
	refused(t, other, "capture_payment", map[string]any{"payment_id": p1.ID, "idempotency_key": "c"}, pb.ErrNotFound)
	refused(t, other, "create_payment_link", map[string]any{"amount": 0, "currency": "USD", "description": "x", "idempotency_key": "l"}, pb.ErrInvalidAmount)
	refused(t, other, "create_payment_link", map[string]any{"amount": 10, "currency": "USD", "description": "x", "expires_at": "soon", "idempotency_key": "l"}, pb.ErrParameterInvalid)
	if w.available(t, u) != 9000 || w.available(t, m) != 1000 {
		t.Fatal("another merchant's calls moved money")
	}
	w.verify(t)
}

// TestAgentOnMerchantServer: the role is the server's to check, whichever
// tools a session lists: an agent's backend on the merchant's tools is
// refused and moves nothing.
func TestAgentOnMerchantServer(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	u := w.user(t, 10000)
	a := w.agent(t, u)
	m := w.merchant(t, "shop")
	p := must[*pb.Payment](t, w.svc.CreatePayment(ctx, u, nil, service.CreatePaymentParams{Amount: 2000, Currency: "USD",
		MerchantID: m.ID, Description: "order"}))
	cs := w.connect(t, mcpserver.MerchantSide, a)
	refused(t, cs, "refund_payment", map[string]any{"payment_id": p.ID, "amount": 100, "idempotency_key": "r"}, pb.ErrForbidden)
	refused(t, cs, "get_balance", nil, pb.ErrForbidden)
	agentSide := w.connect(t, mcpserver.AgentSide, m)
	refused(t, agentSide, "wallet_summary", nil, pb.ErrForbidden)
	if w.available(t, u) != 8000 {
		t.Fatal("money moved")
	}
}
