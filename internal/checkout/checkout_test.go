package checkout

import (
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func TestCardNumbers(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := newCardNumber()
		if len(n) != CardLength || !strings.HasPrefix(n, CardIIN) || !LuhnValid(n) || seen[n] {
			t.Fatalf("card number %q", n)
		}
		seen[n] = true
		// Any one digit changed breaks the check digit.
		for i := range n {
			b := []byte(n)
			b[i] = '0' + (b[i]-'0'+1)%10
			if LuhnValid(string(b)) {
				t.Fatalf("%s with digit %d changed is still valid", n, i)
			}
		}
	}
	for n, want := range map[string]bool{"4242424242424242": true, "79927398713": true, "79927398710": false, "": false, "4a42": false, "0": false} {
		if LuhnValid(n) != want {
			t.Errorf("LuhnValid(%q) = %v", n, !want)
		}
	}
}

func TestPrice(t *testing.T) {
	s := &pb.CheckoutSession{Lines: []pb.CheckoutLine{
		{ID: "li_a", Fulfillment: pb.FulfillmentDigital, Quantity: 2, UnitAmount: 300, Total: 600},
		{ID: "li_b", Fulfillment: pb.FulfillmentShipping, Quantity: 1, UnitAmount: 2500, Total: 2500},
	}}
	price(s, nil)
	if s.Total != 3100 || s.ItemsAmount != 3100 || len(s.Options) != 2 || s.Status != pb.CheckoutNotReady ||
		len(s.Messages) != 1 || s.Messages[0].Param != "$.fulfillment_details.address" {
		t.Fatalf("priced without an address: %+v", s)
	}
	s.FulfillmentDetails = &pb.FulfillmentDetails{Address: &pb.Address{Name: "A", LineOne: "1", City: "C", State: "S", Country: "US", PostalCode: "1"}}
	price(s, nil)
	if s.Status != pb.CheckoutReady || len(s.Messages) != 0 {
		t.Fatalf("priced with an address: %+v", s)
	}
}

func TestStatusAt(t *testing.T) {
	now := time.Date(2026, 4, 17, 10, 0, 0, 0, time.UTC)
	s := &pb.CheckoutSession{Status: pb.CheckoutReady, ExpiresAt: now}
	if s.StatusAt(now.Add(-time.Second)) != pb.CheckoutReady || s.StatusAt(now) != pb.CheckoutExpired {
		t.Fatal("an open session expires at ExpiresAt")
	}
	s.Status = pb.CheckoutCompleted
	if s.StatusAt(now.Add(time.Hour)) != pb.CheckoutCompleted {
		t.Fatal("a completed session does not expire")
	}
}

func TestLinesOf(t *testing.T) {
	ls, err := linesOf([]ItemIn{{ID: "prod_a"}, {ID: "prod_b"}, {ID: "prod_a"}})
	if err != nil || len(ls) != 2 || ls[0] != (LineParams{"prod_a", 2}) || ls[1] != (LineParams{"prod_b", 1}) {
		t.Fatalf("linesOf = %v, %v", ls, err)
	}
	for _, items := range [][]ItemIn{nil, {{ID: ""}}, make([]ItemIn, pb.MaxSessionLines*10+1)} {
		if _, err := linesOf(items); err == nil {
			t.Errorf("linesOf(%d items) accepted", len(items))
		}
	}
}

func TestACPCurrency(t *testing.T) {
	for in, want := range map[string]string{"usd": "USD", "jpy": "JPY", "USD": "", "us": "", "": "", "xyz": ""} {
		got, err := acpCurrency(in, "currency")
		if got != want || (want == "") != (err != nil) {
			t.Errorf("acpCurrency(%q) = %q, %v", in, got, err)
		}
	}
}

func TestCheckContact(t *testing.T) {
	good := &pb.FulfillmentDetails{Address: &pb.Address{Name: "A", LineOne: "1", City: "C", State: "S", Country: "US", PostalCode: "1"}}
	if err := checkContact(&pb.Buyer{Email: "a@example.com"}, good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		b     *pb.Buyer
		fd    *pb.FulfillmentDetails
		param string
	}{
		{&pb.Buyer{}, nil, "buyer.email"},
		{&pb.Buyer{Email: "Ada <a@example.com>"}, nil, "buyer.email"},
		{&pb.Buyer{Email: "a@example.com", FirstName: strings.Repeat("x", pb.MaxBuyerField+1)}, nil, "buyer.first_name"},
		{nil, &pb.FulfillmentDetails{Address: &pb.Address{Name: "A", LineOne: "1", City: "C", State: "S", Country: "usa", PostalCode: "1"}}, "fulfillment_details.address.country"},
		{nil, &pb.FulfillmentDetails{Address: &pb.Address{Name: "A", City: "C", State: "S", Country: "US", PostalCode: "1"}}, "fulfillment_details.address.line_one"},
		{nil, &pb.FulfillmentDetails{Name: "\xff"}, "fulfillment_details.name"},
	} {
		var e *pb.Error
		err := checkContact(tc.b, tc.fd)
		if err == nil || !asError(err, &e) || e.Param != tc.param {
			t.Errorf("checkContact(%+v, %+v) = %v; want a refusal of %s", tc.b, tc.fd, err, tc.param)
		}
	}
}

func asError(err error, e **pb.Error) bool {
	x, ok := err.(*pb.Error)
	*e = x
	return ok
}
