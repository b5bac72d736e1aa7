package client

import (
	"context"
	"net/http"
	"time"
)

// SignInCode is a one-time code that signs its user in to the wallet
// (/wallet/signin), entered there with the user's ID: good once, until
// ExpiresAt.
type SignInCode struct {
	Object    string    `json:"object"`
	UserID    string    `json:"user_id"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateSignInCode (user key) asks for a new wallet sign-in code, voiding
// the one asked for before. A retry makes another code.
func (c *Client) CreateSignInCode(ctx context.Context) (*SignInCode, error) {
	var out SignInCode
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/signin_codes", in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
