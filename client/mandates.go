package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	pb "github.com/paybound/paybound"
)

// Mandate is a mandate with its usage, as the API shows it.
type Mandate struct {
	pb.Mandate
	RemainingBudget int64 `json:"remaining_budget"`
	PaymentsCount   int64 `json:"payments_count"`
}

// MandateList is one page of ListMandates.
type MandateList struct {
	Object  string    `json:"object"`
	Data    []Mandate `json:"data"`
	HasMore bool      `json:"has_more"`
}

// CreateMandateParams is a mandate to grant (see POST /v1/mandates).
// Amounts are minor units; zero optional fields are left out.
type CreateMandateParams struct {
	AgentID      string       `json:"agent_id"`
	Description  string       `json:"description"`
	Currency     string       `json:"currency"`
	MaxAmount    int64        `json:"max_amount"`
	Budget       pb.Budget    `json:"budget"`
	MerchantIDs  []string     `json:"merchant_ids,omitempty"`
	Categories   []string     `json:"merchant_categories,omitempty"`
	ValidFrom    *time.Time   `json:"valid_from,omitempty"`
	ExpiresAt    *time.Time   `json:"expires_at,omitempty"`
	Schedule     *pb.Schedule `json:"schedule,omitempty"`
	MaxPayments  int64        `json:"max_payments,omitempty"`
	ConfirmAbove int64        `json:"confirm_above,omitempty"`
	Condition    string       `json:"condition,omitempty"`
	// RequireSignature, when not nil, says whether the agent must sign its
	// requests under this mandate; nil takes the server's default.
	RequireSignature *bool `json:"require_signature,omitempty"`
}

// CreateMandate (user key) grants one of the caller's agents a mandate.
func (c *Client) CreateMandate(ctx context.Context, p CreateMandateParams) (*Mandate, error) {
	var out Mandate
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/mandates", in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetMandate (user or agent key) returns a mandate with its usage.
func (c *Client) GetMandate(ctx context.Context, id string) (*Mandate, error) {
	path, err := mandatePath(id, "")
	if err != nil {
		return nil, err
	}
	var out Mandate
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListMandates (user or agent key) lists the caller's mandates, newest first.
func (c *Client) ListMandates(ctx context.Context, p ListParams) (*MandateList, error) {
	q := url.Values{}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	var out MandateList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/mandates", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeMandate (user key) revokes a mandate at once.
func (c *Client) RevokeMandate(ctx context.Context, id string) (*pb.Mandate, error) {
	path, err := mandatePath(id, "/revoke")
	if err != nil {
		return nil, err
	}
	var out pb.Mandate
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func mandatePath(id, suffix string) (string, error) {
	return resourcePath("mandates", "a mandate ID (mdt_…)", id, suffix)
}

// TOTPEnrolment is the answer to EnrollTOTP and VerifyTOTP.
type TOTPEnrolment struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
	Active     bool   `json:"active"`
}

// EnrollTOTP (user key) starts enrolling a one-time-code factor and returns
// its secret, shown once.
func (c *Client) EnrollTOTP(ctx context.Context) (*TOTPEnrolment, error) {
	var out TOTPEnrolment
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/totp", in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyTOTP (user key) activates the factor with a current code.
func (c *Client) VerifyTOTP(ctx context.Context, code string) (*TOTPEnrolment, error) {
	var out TOTPEnrolment
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/totp/verify", in: map[string]string{"code": code}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Approve (user key) approves a payment waiting for confirmation with a
// current one-time code, and returns it authorized (or captured).
func (c *Client) Approve(ctx context.Context, confirmationID, totp string) (*pb.Payment, error) {
	path, err := confirmationPath(confirmationID, "/approve")
	if err != nil {
		return nil, err
	}
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: map[string]string{"totp": totp}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deny (user key) refuses a payment waiting for confirmation.
func (c *Client) Deny(ctx context.Context, confirmationID string) (*pb.Payment, error) {
	path, err := confirmationPath(confirmationID, "/deny")
	if err != nil {
		return nil, err
	}
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func confirmationPath(id, suffix string) (string, error) {
	return resourcePath("confirmations", "a confirmation ID (cfm_…)", id, suffix)
}
