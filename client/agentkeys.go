package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	pb "github.com/paybound/paybound"
)

// AgentKey is one of an agent's signing keys, as the API shows it. Active
// is whether it may sign now: not revoked and not past NotAfter.
type AgentKey struct {
	pb.AgentKey
	PublicKey json.RawMessage `json:"public_key"`
	Active    bool            `json:"active"`
}

// AddAgentKey (user key) registers another Ed25519 public key (a JWK) for
// one of the caller's agents. With rotateAfter > 0 (at most 30 days) the
// agent's other keys stop signing after that grace period, so the agent can
// switch to the new key without a gap; with 0 they all stay valid.
func (c *Client) AddAgentKey(ctx context.Context, agentID string, publicKeyJWK json.RawMessage, rotateAfter time.Duration) (*AgentKey, error) {
	path, err := agentKeysPath(agentID, "")
	if err != nil {
		return nil, err
	}
	if !json.Valid(publicKeyJWK) {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "public_key", "public_key must be a JSON object (an Ed25519 JWK)")
	}
	if rotateAfter < 0 || rotateAfter%time.Second != 0 {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "rotate_after_seconds", "rotateAfter must be a whole number of seconds, not negative")
	}
	in := struct {
		PublicKey          json.RawMessage `json:"public_key"`
		RotateAfterSeconds int64           `json:"rotate_after_seconds,omitempty"`
	}{publicKeyJWK, int64(rotateAfter / time.Second)}
	var out AgentKey
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAgentKeys (user key) returns all of an agent's keys, revoked and
// expired ones included.
func (c *Client) ListAgentKeys(ctx context.Context, agentID string) ([]AgentKey, error) {
	path, err := agentKeysPath(agentID, "")
	if err != nil {
		return nil, err
	}
	var out struct {
		Data []AgentKey `json:"data"`
	}
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// RevokeAgentKey (user key) revokes one of an agent's keys at once:
// requests it signs are refused with key_revoked from then on.
func (c *Client) RevokeAgentKey(ctx context.Context, agentID, keyID string) (*AgentKey, error) {
	if keyID == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "keyid", "a keyid is required")
	}
	path, err := agentKeysPath(agentID, "/"+url.PathEscape(keyID)+"/revoke")
	if err != nil {
		return nil, err
	}
	var out AgentKey
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func agentKeysPath(agentID, suffix string) (string, error) {
	if agentID == "" {
		return "", pb.Errorf(pb.ErrParameterMissing, "id", "an agent ID (agt_…) is required")
	}
	return "/v1/agents/" + url.PathEscape(agentID) + "/keys" + suffix, nil
}

// AgentInfo is one of a user's agents as GET /v1/agents lists it: its
// signing keys, and Assurance, the strongest proof its requests can
// carry now ("signed" while a key is in force, else "bearer").
type AgentInfo struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	UserID    string       `json:"user_id"`
	CreatedAt time.Time    `json:"created_at"`
	Keys      []AgentKey   `json:"keys"`
	Assurance pb.Assurance `json:"assurance"`
	// RevokedAt is when its user revoked it (RevokeAgent); nil while it
	// is in force.
	RevokedAt *time.Time `json:"revoked_at"`
}

// RevokeAgent (user key) revokes one of the caller's agents for good: its
// API key authenticates nothing from then on (on other servers of a
// deployment within 10 seconds) and each of its signing keys is revoked.
// Its mandates stay, unusable; revoke them too to show them ended.
// Revoking a revoked agent changes nothing.
func (c *Client) RevokeAgent(ctx context.Context, agentID string) (*AgentInfo, error) {
	if agentID == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "id", "an agent ID (agt_…) is required")
	}
	var out AgentInfo
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/agents/" + url.PathEscape(agentID) + "/revoke", in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentList is a page of agents.
type AgentList struct {
	Data    []AgentInfo `json:"data"`
	HasMore bool        `json:"has_more"`
}

// ListAgents (user key) returns a page of the caller's agents, newest
// first; with an agent key, the agent itself.
func (c *Client) ListAgents(ctx context.Context, p ListParams) (*AgentList, error) {
	var out AgentList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/agents", query: listQuery(p), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
