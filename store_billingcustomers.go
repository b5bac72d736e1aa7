package paybound

import "context"

// BillingCustomerStore is the one read of Token Pay's storage that a
// customer's side needs and BillingStore's reads (all by provider) lack:
// with whom a customer has credit, grants, subscriptions or usage. The
// wallet's Token Pay page reads it.
type BillingCustomerStore interface {
	// CustomerProviders returns the distinct (customer, provider) pairs of
	// the Token Pay objects of customerIDs (at most MaxListLimit of them),
	// ordered by customer then provider, at most limit pairs.
	CustomerProviders(ctx context.Context, customerIDs []string, limit int) ([]CustomerProvider, error)
}

// CustomerProvider names a provider with which a customer has Token Pay
// objects.
type CustomerProvider struct {
	CustomerID string
	ProviderID string
}
