package client

import (
	"context"
	"net/http"

	pb "github.com/paybound/paybound"
)

// MandateRequest is an agent's request for a mandate (pending, approved,
// refused or expired).
type MandateRequest = pb.MandateRequest

// MandateRequestList is one page of ListMandateRequests.
type MandateRequestList struct {
	Object  string           `json:"object"`
	Data    []MandateRequest `json:"data"`
	HasMore bool             `json:"has_more"`
}

// CreateMandateRequestParams is what an agent asks its user for: a
// mandate's terms (AgentID empty or the agent itself; a nil ValidFrom
// means from the approval) and why, in the agent's words.
type CreateMandateRequestParams struct {
	CreateMandateParams
	Reason string `json:"reason"`
}

// RequestMandate (agent key or signed client) asks the agent's user for
// a mandate. The user approves or refuses it (ApproveMandateRequest,
// RefuseMandateRequest, or the wallet); undecided, it expires in 7 days.
func (c *Client) RequestMandate(ctx context.Context, p CreateMandateRequestParams) (*MandateRequest, error) {
	var out MandateRequest
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/mandate_requests", in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetMandateRequest (its user or its agent) returns a mandate request.
func (c *Client) GetMandateRequest(ctx context.Context, id string) (*MandateRequest, error) {
	return c.mandateRequestCall(ctx, http.MethodGet, id, "")
}

// ListMandateRequests (user or agent key) lists the caller's mandate
// requests, newest first, only those with status when it is not empty
// (pending, approved, refused, expired); without a status each page lists
// its pending requests first.
func (c *Client) ListMandateRequests(ctx context.Context, status string, p ListParams) (*MandateRequestList, error) {
	q := listQuery(p)
	if status != "" {
		q.Set("status", status)
	}
	var out MandateRequestList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/mandate_requests", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveMandateRequest (user key) grants the mandate the request asks
// for, with exactly its terms; the answer's MandateID names it.
func (c *Client) ApproveMandateRequest(ctx context.Context, id string) (*MandateRequest, error) {
	return c.mandateRequestCall(ctx, http.MethodPost, id, "/approve")
}

// RefuseMandateRequest (user key) refuses a mandate request.
func (c *Client) RefuseMandateRequest(ctx context.Context, id string) (*MandateRequest, error) {
	return c.mandateRequestCall(ctx, http.MethodPost, id, "/refuse")
}

func (c *Client) mandateRequestCall(ctx context.Context, method, id, suffix string) (*MandateRequest, error) {
	path, err := resourcePath("mandate_requests", "a mandate request ID (mreq_…)", id, suffix)
	if err != nil {
		return nil, err
	}
	cl := call{method: method, path: path}
	if method == http.MethodPost {
		cl.in = struct{}{}
	}
	var out MandateRequest
	cl.out = &out
	if err := c.call(ctx, cl); err != nil {
		return nil, err
	}
	return &out, nil
}
