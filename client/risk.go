package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	pb "github.com/paybound/paybound"
)

// RiskRuleList is the operator's risk rules, in the order they run.
type RiskRuleList struct {
	Object string        `json:"object"`
	Data   []pb.RiskRule `json:"data"`
}

// PutRiskRule (operator key) creates the rule r.Name, or replaces it. The
// server type-checks the expression and bounds its cost; a rule it refuses
// comes back as a *paybound.Error naming the parameter. CreatedAt is
// ignored.
func (c *Client) PutRiskRule(ctx context.Context, r pb.RiskRule) (*pb.RiskRule, error) {
	in := map[string]any{"name": r.Name, "expression": r.Expression, "action": r.Action, "priority": r.Priority}
	var out pb.RiskRule
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/risk/rules", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// RiskRules (operator key) lists the risk rules in the order they run.
func (c *Client) RiskRules(ctx context.Context) ([]pb.RiskRule, error) {
	var out RiskRuleList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/risk/rules", out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// DeleteRiskRule (operator key) removes the rule name.
func (c *Client) DeleteRiskRule(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("client: a risk rule name is required")
	}
	return c.call(ctx, call{method: http.MethodDelete, path: "/v1/risk/rules/" + url.PathEscape(name)})
}

// SetMerchantFlags (operator key) replaces a merchant's risk flags; none
// clears them.
func (c *Client) SetMerchantFlags(ctx context.Context, merchantID string, flags []string) (*pb.MerchantFlags, error) {
	if !pb.HasPrefix(merchantID, pb.PrefixMerchant) {
		return nil, fmt.Errorf("client: %q is not a merchant ID (mch_…)", merchantID)
	}
	if flags == nil {
		flags = []string{}
	}
	var out pb.MerchantFlags
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/merchants/" + merchantID + "/risk_flags",
		in: map[string]any{"flags": flags}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// RiskAttemptList is one page of recorded attempts, newest first; the next
// page starts after NextStartingAfter (a payment ID) when HasMore.
type RiskAttemptList struct {
	Object            string           `json:"object"`
	Data              []pb.RiskAttempt `json:"data"`
	HasMore           bool             `json:"has_more"`
	NextStartingAfter string           `json:"next_starting_after"`
}

// RiskAttempts (operator key) lists recorded attempts.
func (c *Client) RiskAttempts(ctx context.Context, p ListParams) (*RiskAttemptList, error) {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	var out RiskAttemptList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/risk/attempts", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
