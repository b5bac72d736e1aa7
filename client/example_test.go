package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

func ExampleNew() {
	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_KEY"),
		client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}),
		client.WithUserAgent("my-agent/1.0"))
	if err := c.Health(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_CreatePayment() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_KEY"))

	amount, err := pb.ParseAmount("12.50", "USD") // 1250 minor units
	if err != nil {
		log.Fatal(err)
	}
	p, err := c.CreatePayment(ctx, client.CreatePaymentParams{
		Amount:      amount,
		Currency:    "USD",
		MerchantID:  "mch_01jq0000000000000000000000",
		Description: "breakfast",
	})
	var e *pb.Error
	switch {
	case errors.As(err, &e) && e.Code.Type() == pb.TypeDeclined:
		// The declined payment is recorded; e.PaymentID names it.
		fmt.Println("declined:", e.Code, e.PaymentID)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(p.ID, p.Status, pb.FormatAmount(p.Amount, p.Currency), p.Currency)
	}
}

func ExampleClient_Capture() {
	ctx := context.Background()
	merchant := client.New("http://127.0.0.1:8080", os.Getenv("MERCHANT_KEY"))

	// Capture 5.00 of an authorization (a payment made with capture_method
	// manual); the rest of the hold is released.
	amount := int64(500)
	p, err := merchant.Capture(ctx, "pay_01jq0000000000000000000000", &amount)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Status, pb.FormatAmount(p.AmountCaptured, p.Currency))
}

func ExampleWithIdempotencyKey() {
	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_KEY"))

	// A key derived from your own order ID makes the top-up safe to repeat
	// even from another process: the server answers the repeat with the
	// stored result instead of funding the wallet twice.
	ctx := client.WithIdempotencyKey(context.Background(), "order-4711-topup")
	t, err := c.Topup(ctx, 5000, "USD")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.ID, t.Status)
}

func ExampleClient_ListPayments() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_KEY"))

	// Walk every page, newest first.
	params := client.ListParams{Limit: 100}
	for {
		page, err := c.ListPayments(ctx, params)
		if err != nil {
			log.Fatal(err)
		}
		for _, p := range page.Data {
			fmt.Println(p.ID, p.Status, pb.FormatAmount(p.Amount, p.Currency), p.Currency)
		}
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		params.StartingAfter = page.Data[len(page.Data)-1].ID
	}
}

func ExampleClient_VerifyLedger() {
	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_OPERATOR_KEY"))
	r, err := c.VerifyLedger(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	if !r.OK {
		log.Fatalf("ledger check failed: %v", r.Problems)
	}
	fmt.Println("checked", r.AccountsChecked, "accounts")
}

func ExampleAudit() {
	// srv stands in for your Paybound server in this example: a log of two
	// payments, one captured and then refunded in part, one authorized.
	srv := newFakeLog()
	defer srv.Close()
	srv.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t01", 1250, 1250, 250)
	srv.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t02", 500, 0, 0)
	logKey := srv.LogKey // the log's key as you saved it from an earlier audit

	c := client.New(srv.URL, os.Getenv("PAYBOUND_OPERATOR_KEY"))
	rep, err := client.Audit(context.Background(), c, client.AuditOptions{LogKey: logKey})
	switch {
	case errors.Is(err, client.ErrAudit):
		log.Fatalf("the log or the ledger is at fault: %v", err)
	case err != nil:
		log.Fatalf("couldn't audit the server: %v", err)
	}
	fmt.Printf("%d entries about %d payments; %d payments of the ledger match them\n",
		rep.Checkpoint.Size, rep.LogPayments, rep.Payments)
	// Output: 4 entries about 2 payments; 2 payments of the ledger match them
}

func ExampleVerifyReceipt() {
	// srv stands in for your Paybound server in this example.
	srv := newFakeLog()
	defer srv.Close()
	srv.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t01", 1250, 1250, 0)
	// The log's key comes from a source you trust (GET /v1/log/key once,
	// saved), never from the receipt it is to check.
	logKey := srv.LogKey

	ctx := context.Background()
	c := client.New(srv.URL, os.Getenv("PAYBOUND_KEY"))
	r, err := c.PaymentReceipt(ctx, "pay_01jq8v6x3k2m4n5p6q7r8s9t01")
	if err != nil {
		log.Fatal(err)
	}
	// Keep r; it verifies offline, years later, without the server.
	v, err := client.VerifyReceipt(r, logKey)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range v.Entries {
		fmt.Println(e.Index, e.Type, string(e.Data))
	}
	// Output:
	// 0 payment.created {"amount":1250}
	// 1 payment.captured {"amount":1250}
}

func ExampleVerifyConsistency() {
	// srv stands in for your Paybound server in this example.
	srv := newFakeLog()
	defer srv.Close()
	logKey := srv.LogKey // from a source you trust

	ctx := context.Background()
	c := client.New(srv.URL, "") // the log's endpoints need no key
	seen, err := c.LogCheckpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	srv.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t01", 1250, 1250, 0) // the log grows
	now, err := c.LogCheckpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Each checkpoint you see must extend the ones you saw before: a log
	// that was rewritten, or shown to someone else in another version,
	// fails here.
	var forked *client.ConsistencyError
	switch err := client.VerifyConsistency(ctx, c, logKey, seen, now); {
	case errors.As(err, &forked):
		log.Fatalf("the log is not append-only: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("consistent")
	// Output: consistent
}
