package storetest

import (
	"slices"
	"testing"

	pb "github.com/paybound/paybound"
)

// testCustomerProviders: the providers a customer has Token Pay objects
// with, each pair once, ordered, for several customers at once, bounded
// by limit; other customers' are left out.
func testCustomerProviders(t *testing.T, s pb.Store) {
	ctx := t.Context()
	objs := []pb.BillingObject{
		billingObject("grant_1", "grant", "mch_b", "usr_alice", 1, `{}`, nil),
		billingObject("grant_2", "grant", "mch_b", "usr_alice", 1, `{}`, nil),
		billingObject("grant_3", "grant", "mch_a", "usr_alice", 1, `{}`, nil),
		billingObject("acc_1", "accrual", "mch_c", "agt_alice", 1, `{}`, nil),
		billingObject("grant_4", "grant", "mch_d", "usr_bob", 1, `{}`, nil),
		billingObject("price_1", "price", "mch_a", "", 1, `{}`, nil),
	}
	commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{BillingObjects: objs}})
	got, err := s.CustomerProviders(ctx, []string{"usr_alice", "agt_alice"}, 10)
	want := []pb.CustomerProvider{{CustomerID: "agt_alice", ProviderID: "mch_c"}, {CustomerID: "usr_alice", ProviderID: "mch_a"}, {CustomerID: "usr_alice", ProviderID: "mch_b"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("CustomerProviders = %v, %v; want %v", got, err, want)
	}
	if got, err := s.CustomerProviders(ctx, []string{"usr_alice", "agt_alice"}, 2); err != nil || !slices.Equal(got, want[:2]) {
		t.Fatalf("CustomerProviders(limit 2) = %v, %v", got, err)
	}
	if got, err := s.CustomerProviders(ctx, []string{"usr_carol"}, 10); err != nil || len(got) != 0 {
		t.Fatalf("a customer with none = %v, %v", got, err)
	}
	if got, err := s.CustomerProviders(ctx, nil, 10); err != nil || len(got) != 0 {
		t.Fatalf("no customers = %v, %v", got, err)
	}
	if _, err := s.CustomerProviders(ctx, make([]string, pb.MaxListLimit+1), 10); pb.ErrorCode(err) != pb.ErrParameterInvalid {
		t.Fatalf("too many customers: %v", err)
	}
}
