package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	pb "github.com/paybound/paybound"
)

// PaymentLinkParams are a new payment link's terms: Amount in the
// currency's minor units; ExpiresAt (zero: never) and MaxUses (0: no
// limit) are optional.
type PaymentLinkParams struct {
	Amount      int64
	Currency    string
	Description string
	ExpiresAt   time.Time
	MaxUses     int64
}

// PaymentLinkList is one page of a merchant's payment links, newest first.
type PaymentLinkList struct {
	Object  string       `json:"object"`
	Data    []pb.PayLink `json:"data"`
	HasMore bool         `json:"has_more"`
}

// CreatePaymentLink (merchant key) creates an active payment link; its URL
// is the link's public address.
func (c *Client) CreatePaymentLink(ctx context.Context, p PaymentLinkParams) (*pb.PayLink, error) {
	in := map[string]any{"amount": p.Amount, "currency": p.Currency, "description": p.Description}
	if !p.ExpiresAt.IsZero() {
		in["expires_at"] = p.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if p.MaxUses != 0 {
		in["max_uses"] = p.MaxUses
	}
	var out pb.PayLink
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/payment_links", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetPaymentLink (its merchant's key) returns a link with its uses.
func (c *Client) GetPaymentLink(ctx context.Context, id string) (*pb.PayLink, error) {
	path, err := linkPath(id, "")
	if err != nil {
		return nil, err
	}
	var out pb.PayLink
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPaymentLinks (merchant key) lists the merchant's links.
func (c *Client) ListPaymentLinks(ctx context.Context, p ListParams) (*PaymentLinkList, error) {
	var out PaymentLinkList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/payment_links", query: listQuery(p), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeactivatePaymentLink (its merchant's key) stops a link from taking
// payments.
func (c *Client) DeactivatePaymentLink(ctx context.Context, id string) (*pb.PayLink, error) {
	path, err := linkPath(id, "/deactivate")
	if err != nil {
		return nil, err
	}
	var out pb.PayLink
	if err := c.call(ctx, call{method: http.MethodPost, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// PayPaymentLink (user or agent key) pays a link, under mandateID when an
// agent pays under its user's mandate. As CreatePayment, a declined
// payment comes back with an error that carries its ID.
func (c *Client) PayPaymentLink(ctx context.Context, id, mandateID string) (*pb.Payment, error) {
	path, err := linkPath(id, "/payments")
	if err != nil {
		return nil, err
	}
	in := map[string]any{}
	if mandateID != "" {
		in["mandate_id"] = mandateID
	}
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// PaymentLinkOffer reads a link's public offer (no key needed): its terms,
// whether it can be paid, and the call that pays it.
func (c *Client) PaymentLinkOffer(ctx context.Context, id string) (*pb.PayLinkOffer, error) {
	if id == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "id", "a payment link ID (plink_…) is required")
	}
	var out pb.PayLinkOffer
	if err := c.call(ctx, call{method: http.MethodGet, path: "/l/" + url.PathEscape(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// SettlementReport (merchant key) returns the merchant's settlement report
// for [from, to). A period of too many movements is refused with
// pb.ErrReportTooLarge: ask for shorter periods.
func (c *Client) SettlementReport(ctx context.Context, from, to time.Time) (*pb.SettlementReport, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	var out pb.SettlementReport
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/reports/settlement", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func listQuery(p ListParams) url.Values {
	q := url.Values{}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	return q
}

func linkPath(id, suffix string) (string, error) {
	return resourcePath("payment_links", "a payment link ID (plink_…)", id, suffix)
}
