package paybound

import "context"

// CheckoutStore is the storage of the checkout: products, sessions, agent
// cards, vault tokens and completions.
type CheckoutStore interface {
	// Product returns product id.
	Product(ctx context.Context, id string) (*Product, error)
	// ListProducts lists products, newest first.
	ListProducts(ctx context.Context, f ProductFilter) (_ []Product, hasMore bool, _ error)
	// CheckoutSession returns session id.
	CheckoutSession(ctx context.Context, id string) (*CheckoutSession, error)
	// AgentCard returns card id.
	AgentCard(ctx context.Context, id string) (*AgentCard, error)
	// AgentCardByHash returns the card whose number has the keyed hash.
	AgentCardByHash(ctx context.Context, numberHash string) (*AgentCard, error)
	// CountAgentCards returns how many cards were issued under a mandate.
	CountAgentCards(ctx context.Context, mandateID string) (int, error)
	// MandateAgentCards returns the cards issued under a mandate, oldest
	// first (at most MaxCardsPerMandate are ever issued).
	MandateAgentCards(ctx context.Context, mandateID string) ([]AgentCard, error)
	// CountVaultTokens returns how many tokens were delegated for a session.
	CountVaultTokens(ctx context.Context, sessionID string) (int, error)
	// VaultToken returns token id.
	VaultToken(ctx context.Context, id string) (*VaultToken, error)
	// CheckoutCompletion returns the completion of session id.
	CheckoutCompletion(ctx context.Context, sessionID string) (*CheckoutCompletion, error)
}

// CheckoutPart is the checkout's share of a Batch (internal/checkout).
// Products, sessions and tokens are inserted or replaced whole (a session,
// in order, new at Version 1 or changed over its stored Version-1, which a
// shared store checks: see CheckoutSession.Version); cards are
// inserted (and replaced when revoked); a completion is inserted only, and one whose session or
// token already completed refuses the whole batch (ErrStoreConflict on a
// shared store), which is what makes a completion happen once.
// A card is replaced whole only to revoke it.
type CheckoutPart struct {
	Products            []Product
	CheckoutSessions    []CheckoutSession
	AgentCards          []AgentCard
	VaultTokens         []VaultToken
	CheckoutCompletions []CheckoutCompletion
}

// Empty reports whether p writes nothing.
func (p *CheckoutPart) Empty() bool {
	return len(p.Products)+len(p.CheckoutSessions)+len(p.AgentCards)+len(p.VaultTokens)+len(p.CheckoutCompletions) == 0
}
