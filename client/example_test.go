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
