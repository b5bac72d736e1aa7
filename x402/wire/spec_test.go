package wire

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// TestSpecExamples: the header values of x402's transports-v2/http.md
// (testdata, with their source) decode into these types with every field
// the specification shows, and encode back to the same document.
func TestSpecExamples(t *testing.T) {
	raw, err := os.ReadFile("testdata/http-v2-examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var ex map[string]string
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatal(err)
	}
	roundTrip := func(name string, v any) {
		t.Helper()
		if err := DecodeHeader(ex[name], v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want, got any
		DecodeHeader(ex[name], &want)
		h, err := EncodeHeader(v)
		if err != nil {
			t.Fatal(err)
		}
		DecodeHeader(h, &got)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s does not round-trip:\n want %v\n  got %v", name, want, got)
		}
	}
	var pr PaymentRequired
	roundTrip("payment_required", &pr)
	if pr.X402Version != 2 || pr.Resource.URL != "https://api.example.com/premium-data" || len(pr.Accepts) != 1 ||
		pr.Accepts[0].Amount != "10000" || pr.Accepts[0].MaxTimeoutSeconds != 60 || pr.Accepts[0].Extra["name"] != "USDC" {
		t.Errorf("PaymentRequired: %+v", pr)
	}
	var pl PaymentPayload
	roundTrip("payment_signature", &pl)
	if pl.Accepted.PayTo != "0x209693Bc6afc0C5328bA36FaF03C514EF312287C" || len(pl.Payload) == 0 {
		t.Errorf("PaymentPayload: %+v", pl)
	}
	var ok, failed SettlementResponse
	roundTrip("payment_response_success", &ok)
	roundTrip("payment_response_failure", &failed)
	if !ok.Success || ok.Transaction == "" || failed.Success || failed.ErrorReason != ReasonInsufficientFunds {
		t.Errorf("SettlementResponse: %+v, %+v", ok, failed)
	}
}
