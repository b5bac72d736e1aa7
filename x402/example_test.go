package x402_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"

	"github.com/paybound/paybound/x402"
)

// A seller charges one cent per quote, settled by Paybound's facilitator,
// and accepts tabs for it.
func ExampleMiddleware() {
	store, err := x402.OpenFileTabStore("tabs.jsonl")
	if err != nil {
		panic(err)
	}
	paywall := &x402.Middleware{
		Network:     "paybound:local",
		PayTo:       "mch_01jd0000000000000000000000",
		Facilitator: &x402.FacilitatorClient{URL: "https://pay.example.com/x402"},
		Price:       x402.Fixed(10_000, "USD", "a quote"), // 0.01 USD in atomic units
		Tabs: &x402.Tabs{Store: store, MinDeposit: 1_000_000,
			Claims: &x402.FacilitatorClient{URL: "https://pay.example.com/x402",
				Header: http.Header{"Authorization": {"Bearer " + "<merchant key>"}}}},
	}
	http.Handle("/quote", paywall.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"quote":"the early bird pays the worm"}`)
	})))
}

// A buyer agent pays 402s under its mandate, at most 5 cents a request and
// 1 USD an hour.
func ExampleTransport() {
	var key ed25519.PrivateKey // the agent's registered key
	client := &http.Client{Transport: &x402.Transport{
		Payer:         x402.Payer{Key: key, Mandate: "mdt_01jd0000000000000000000000"},
		Asset:         "USD",
		MaxPerRequest: 50_000,
		MaxPerHour:    1_000_000,
		TabDeposit:    100_000, // 0.10 USD tabs with sellers that offer them
	}}
	res, err := client.Get("https://api.example.com/quote")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	fmt.Println(res.Status, res.Header.Get("PAYMENT-RESPONSE") != "")
}
