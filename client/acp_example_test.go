package client_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"os"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

// An agent buys two products through ACP: it opens a session at the
// merchant, delegates its agent card for the session's total (signed with
// its key), and completes the session with the token.
func ExampleClient_CompleteCheckoutSession() {
	ctx := context.Background()
	var agentKey ed25519.PrivateKey // the agent's registered key (paybound agent keygen)
	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_KEY"), client.WithDelegationKey(agentKey))
	const merchant = "mch_01jq0000000000000000000000"

	s, err := c.CreateCheckoutSession(ctx, merchant, client.CreateCheckoutSessionParams{
		Currency: "USD",
		Items:    []client.CheckoutItem{{ProductID: "prod_01jq0000000000000000000000", Quantity: 2}},
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := c.DelegatePayment(ctx, client.DelegatePaymentParams{
		Number:            os.Getenv("AGENT_CARD"), // paybound mandates card mdt_…
		CheckoutSessionID: s.ID, MerchantID: merchant,
		MaxAmount: s.Total(), Currency: s.Currency,
	})
	var acpErr *client.ACPError
	if errors.As(err, &acpErr) {
		log.Fatalf("refused: %s (%s)", acpErr.Message, acpErr.Param) // invalid_card, …
	} else if err != nil {
		log.Fatal(err)
	}
	done, err := c.CompleteCheckoutSession(ctx, merchant, s.ID, tok.ID)
	if err != nil {
		log.Fatal(err)
	}
	if done.Status != pb.CheckoutCompleted { // declined, or waiting for the user's approval
		log.Fatalf("%s: %+v", done.Status, done.Messages)
	}
	fmt.Println(done.Order.ID, done.PaymentID(), pb.FormatAmount(done.Total(), done.ISOCurrency()), done.ISOCurrency())
}
