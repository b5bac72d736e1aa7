package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// CheckoutRaw sends one of ACP's checkout calls with a body the caller
// built, ACP's request as JSON (nil for none), and returns the session as
// the server answered it. op is create, get, update, complete or cancel;
// sessionID is required but for create. It is for callers that relay
// ACP's wire as is (the MCP server's checkout tools, whose arguments are
// ACP's request bodies); the typed calls (CreateCheckoutSession, …) are
// for everyone else. The Idempotency-Key is the context's
// (WithIdempotencyKey); refusals are *ACPError.
func (c *Client) CheckoutRaw(ctx context.Context, op, merchantID, sessionID string, body json.RawMessage) (json.RawMessage, error) {
	method, suffix := http.MethodPost, ""
	switch op {
	case "create":
		sessionID = ""
	case "get":
		method = http.MethodGet
	case "complete", "cancel":
		suffix = "/" + op
	}
	path, err := sessionPath(merchantID, sessionID, suffix)
	if err != nil {
		return nil, err
	}
	var raw []byte
	k := call{method: method, path: path, out: &raw}
	if body != nil {
		k.in = body
	}
	if err := c.acpCall(ctx, k, nil); err != nil {
		return nil, err
	}
	return raw, nil
}
