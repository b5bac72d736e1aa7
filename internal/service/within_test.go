package service_test

import (
	"context"
	"errors"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// CreatePaymentParams.Within writes with the payment, in its commit, or
// undoes the payment with its error.
func TestCreatePaymentWithin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	ctx := context.Background()
	payer, m := e.user(t, 1000, "USD"), e.merchant(t)
	users := func(b *pb.Batch) *[]pb.User { return &b.Users }

	sold := errors.New("sold out")
	params := service.CreatePaymentParams{Amount: 600, Currency: "USD", MerchantID: m.ID, CaptureMethod: pb.CaptureManual,
		Within: func(tx *ledger.Tx, p *pb.Payment) error { return sold }}
	if r := e.svc.CreatePayment(ctx, payer, nil, params); !errors.Is(r.Err, sold) || r.Value != nil {
		t.Fatalf("a failing Within: %+v, want its error and no payment", r)
	}
	if got := e.available(t, payer, "USD"); got != 1000 {
		t.Fatalf("after a failing Within the payer has %d available, want 1000 (nothing held)", got)
	}
	if ps, _, err := e.svc.ListPayments(ctx, payer, "", 10); err != nil || len(ps) != 0 {
		t.Fatalf("after a failing Within: payments %v, %v; want none", ps, err)
	}

	var seen pb.PaymentStatus
	params.Within = func(tx *ledger.Tx, p *pb.Payment) error {
		seen = p.Status
		ledger.Add(tx, users, pb.User{ID: "usr_within_" + p.ID[len(p.ID)-6:], Name: "written with " + p.ID})
		return nil
	}
	p := must[*pb.Payment](t, e.svc.CreatePayment(ctx, payer, nil, params))
	if seen != pb.StatusAuthorized || p.Status != pb.StatusAuthorized {
		t.Fatalf("Within saw %q, the payment is %q; want both authorized", seen, p.Status)
	}
	if u, err := e.st.User(ctx, "usr_within_"+p.ID[len(p.ID)-6:]); err != nil || u.Name != "written with "+p.ID {
		t.Fatalf("the row Within wrote: %+v, %v", u, err)
	}
	if got := e.available(t, payer, "USD"); got != 400 {
		t.Fatalf("the payer has %d available, want 400", got)
	}
	e.verify(t)
}
