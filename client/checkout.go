package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	pb "github.com/paybound/paybound"
)

// ProductParams is a new product (all fields but SKU required), or the
// fields of one to change (nil: unchanged; Currency never changes).
type ProductParams struct {
	Name        *string         `json:"name,omitempty"`
	SKU         *string         `json:"sku,omitempty"`
	Price       *int64          `json:"price,omitempty"`
	Currency    string          `json:"currency,omitempty"`
	Fulfillment *pb.Fulfillment `json:"fulfillment,omitempty"`
}

// ProductList is a page of products.
type ProductList struct {
	Object  string       `json:"object"`
	Data    []pb.Product `json:"data"`
	HasMore bool         `json:"has_more"`
}

// AgentCard is a newly issued agent card, its number shown once.
type AgentCard struct {
	pb.AgentCard
	Number   string `json:"number"`
	ExpMonth string `json:"exp_month"`
	ExpYear  string `json:"exp_year"`
}

// CreateProduct (a merchant key) adds a product to the merchant's catalog.
func (c *Client) CreateProduct(ctx context.Context, p ProductParams) (*pb.Product, error) {
	var out pb.Product
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/products", in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateProduct (its merchant's key) changes the fields p sets.
func (c *Client) UpdateProduct(ctx context.Context, id string, p ProductParams) (*pb.Product, error) {
	return c.productCall(ctx, id, "", p)
}

// ArchiveProduct (its merchant's key) takes a product out of the catalog.
func (c *Client) ArchiveProduct(ctx context.Context, id string) (*pb.Product, error) {
	return c.productCall(ctx, id, "/archive", struct{}{})
}

func (c *Client) productCall(ctx context.Context, id, suffix string, in any) (*pb.Product, error) {
	if id == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "id", "a product ID (prod_…) is required")
	}
	var out pb.Product
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/products/" + url.PathEscape(id) + suffix, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListProducts lists a catalog, newest first: the merchant's own (with
// archived ones when asked), or, for users and agents, merchantID's.
func (c *Client) ListProducts(ctx context.Context, merchantID string, archived bool, p ListParams) (*ProductList, error) {
	q := url.Values{}
	if merchantID != "" {
		q.Set("merchant_id", merchantID)
	}
	if archived {
		q.Set("archived", "true")
	}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	var out ProductList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/products", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// IssueAgentCard (the user key that granted the mandate) issues an agent
// card bound to the mandate and its agent, for ACP's delegate_payment.
func (c *Client) IssueAgentCard(ctx context.Context, mandateID string) (*AgentCard, error) {
	path, err := mandatePath(mandateID, "/card")
	if err != nil {
		return nil, err
	}
	var out AgentCard
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentCardView is an agent card as its mandate's list shows it: never the
// number, and its state now ("active", "expired", "revoked", or the
// mandate's state such as "mandate_revoked", since a card dies with it).
type AgentCardView struct {
	pb.AgentCard
	State string `json:"state"`
}

// ListAgentCards (the user key that granted the mandate) lists the agent
// cards issued under it, oldest first.
func (c *Client) ListAgentCards(ctx context.Context, mandateID string) ([]AgentCardView, error) {
	path, err := mandatePath(mandateID, "/cards")
	if err != nil {
		return nil, err
	}
	var out struct {
		Data []AgentCardView `json:"data"`
	}
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// RevokeAgentCard (the user key that granted the mandate) revokes one of
// its agent cards; the mandate and its other cards stay. Revoking a
// revoked card answers it as it is.
func (c *Client) RevokeAgentCard(ctx context.Context, mandateID, cardID string) (*AgentCardView, error) {
	if cardID == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "card_id", "an agent card ID (card_…) is required")
	}
	path, err := mandatePath(mandateID, "/cards/"+url.PathEscape(cardID)+"/revoke")
	if err != nil {
		return nil, err
	}
	var out AgentCardView
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetProduct returns a product: any of the merchant's own, or, for users
// and agents, one in a catalog (archived products are not found).
func (c *Client) GetProduct(ctx context.Context, id string) (*pb.Product, error) {
	if id == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "id", "a product ID (prod_…) is required")
	}
	var out pb.Product
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/products/" + url.PathEscape(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
