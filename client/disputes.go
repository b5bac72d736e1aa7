package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	pb "github.com/paybound/paybound"
)

// DisputeList is one page of ListDisputes, newest first.
type DisputeList struct {
	Object  string       `json:"object"`
	Data    []pb.Dispute `json:"data"`
	HasMore bool         `json:"has_more"`
}

// OpenDispute (the payer's user key) disputes a captured payment. The
// dispute comes back with the server's proposal: who the log says is at
// fault, and why.
func (c *Client) OpenDispute(ctx context.Context, paymentID string, reason pb.DisputeReason, details string) (*pb.Dispute, error) {
	path, err := paymentPath(paymentID, "/disputes")
	if err != nil {
		return nil, err
	}
	in := map[string]any{"reason": reason}
	if details != "" {
		in["details"] = details
	}
	var out pb.Dispute
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResolveParams is an operator's decision on a dispute: Outcome is
// refund_full, refund_partial (with Amount in minor units) or reject;
// LiableParty is merchant, agent_operator, platform or user.
type ResolveParams struct {
	Outcome     string `json:"outcome"`
	Amount      *int64 `json:"amount,omitempty"`
	LiableParty string `json:"liable_party"`
}

// ResolveDispute (operator key) decides an open dispute.
func (c *Client) ResolveDispute(ctx context.Context, id string, p ResolveParams) (*pb.Dispute, error) {
	path, err := disputePath(id, "/resolve")
	if err != nil {
		return nil, err
	}
	var out pb.Dispute
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDispute (payer, merchant or operator key) returns a dispute.
func (c *Client) GetDispute(ctx context.Context, id string) (*pb.Dispute, error) {
	path, err := disputePath(id, "")
	if err != nil {
		return nil, err
	}
	var out pb.Dispute
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDisputes lists the caller's disputes, optionally of one status
// ("open" or "resolved").
func (c *Client) ListDisputes(ctx context.Context, status string, p ListParams) (*DisputeList, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	var out DisputeList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/disputes", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func disputePath(id, suffix string) (string, error) {
	return resourcePath("disputes", "a dispute ID (dsp_…)", id, suffix)
}
