package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/whsig"
)

// WebhookEndpointList is one page of the caller's webhook endpoints.
type WebhookEndpointList struct {
	Object  string               `json:"object"`
	Data    []pb.WebhookEndpoint `json:"data"`
	HasMore bool                 `json:"has_more"`
}

// WebhookDeliveryList is one page of an endpoint's deliveries, newest
// first.
type WebhookDeliveryList struct {
	Object  string               `json:"object"`
	Data    []pb.WebhookDelivery `json:"data"`
	HasMore bool                 `json:"has_more"`
}

// CreateWebhookEndpointParams is a new endpoint: its URL, the event types
// it receives ("*" for all), its format ("standard" or "acp"; "" is
// standard) and a description.
type CreateWebhookEndpointParams struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Format      string   `json:"format,omitempty"`
	Description string   `json:"description,omitempty"`
}

// UpdateWebhookEndpointParams changes an endpoint; nil fields are kept.
type UpdateWebhookEndpointParams struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	Disabled    *bool    `json:"disabled,omitempty"`
}

// CreateWebhookEndpoint (user, merchant or agent key) registers an
// endpoint; the answer's Secret is shown this once.
func (c *Client) CreateWebhookEndpoint(ctx context.Context, p CreateWebhookEndpointParams) (*pb.WebhookEndpoint, error) {
	var out pb.WebhookEndpoint
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/webhook_endpoints", in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWebhookEndpoints lists the caller's endpoints, newest first.
func (c *Client) ListWebhookEndpoints(ctx context.Context, p ListParams) (*WebhookEndpointList, error) {
	var out WebhookEndpointList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/webhook_endpoints", query: listQuery(p), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWebhookEndpoint returns one of the caller's endpoints.
func (c *Client) GetWebhookEndpoint(ctx context.Context, id string) (*pb.WebhookEndpoint, error) {
	return c.endpointCall(ctx, http.MethodGet, id, "", nil)
}

// UpdateWebhookEndpoint changes one of the caller's endpoints.
func (c *Client) UpdateWebhookEndpoint(ctx context.Context, id string, p UpdateWebhookEndpointParams) (*pb.WebhookEndpoint, error) {
	return c.endpointCall(ctx, http.MethodPost, id, "", p)
}

// RotateWebhookSecret gives an endpoint a new secret, returned this once;
// the old one keeps signing beside it for 24 hours.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (*pb.WebhookEndpoint, error) {
	return c.endpointCall(ctx, http.MethodPost, id, "/rotate_secret", nil)
}

// DeleteWebhookEndpoint deletes an endpoint and cancels its pending
// deliveries.
func (c *Client) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	path, err := endpointPath(id, "")
	if err != nil {
		return err
	}
	return c.call(ctx, call{method: http.MethodDelete, path: path})
}

// WebhookTestEvent is the event a test sends.
type WebhookTestEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	CreatedAt  time.Time `json:"created_at"`
	EndpointID string    `json:"endpoint_id"`
}

// TestWebhookEndpoint sends a webhook_endpoint.test event to the endpoint.
func (c *Client) TestWebhookEndpoint(ctx context.Context, id string) (*WebhookTestEvent, error) {
	path, err := endpointPath(id, "/test")
	if err != nil {
		return nil, err
	}
	var out WebhookTestEvent
	if err := c.call(ctx, call{method: http.MethodPost, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWebhookDeliveries lists an endpoint's deliveries, newest first.
func (c *Client) ListWebhookDeliveries(ctx context.Context, endpointID string, p ListParams) (*WebhookDeliveryList, error) {
	path, err := endpointPath(endpointID, "/deliveries")
	if err != nil {
		return nil, err
	}
	var out WebhookDeliveryList
	if err := c.call(ctx, call{method: http.MethodGet, path: path, query: listQuery(p), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// RedeliverWebhook attempts a delivery again now.
func (c *Client) RedeliverWebhook(ctx context.Context, deliveryID string) (*pb.WebhookDelivery, error) {
	if deliveryID == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "id", "a delivery ID (whd_…) is required")
	}
	var out pb.WebhookDelivery
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/webhook_deliveries/" + url.PathEscape(deliveryID) + "/redeliver", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// WebhookPublicKey returns the server's whpk_ key, which verifies every
// delivery's v1a signature.
func (c *Client) WebhookPublicKey(ctx context.Context) (string, error) {
	var out struct {
		PublicKey string `json:"public_key"`
	}
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/webhooks/key", out: &out}); err != nil {
		return "", err
	}
	return out.PublicKey, nil
}

func (c *Client) endpointCall(ctx context.Context, method, id, suffix string, in any) (*pb.WebhookEndpoint, error) {
	path, err := endpointPath(id, suffix)
	if err != nil {
		return nil, err
	}
	var out pb.WebhookEndpoint
	if err := c.call(ctx, call{method: method, path: path, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func endpointPath(id, suffix string) (string, error) {
	return resourcePath("webhook_endpoints", "a webhook endpoint ID (we_…)", id, suffix)
}

// WebhookEvent is a delivered event as a receiver reads it.
type WebhookEvent = pb.WebhookEventBody

// VerifyWebhook is a receiver's check of one delivery: its webhook-id,
// webhook-timestamp (within 5 minutes of now) and webhook-signature
// headers against body, with the endpoint's secret (whsec_…) or, when
// secret is empty, the server's public key (whpk_…, from
// WebhookPublicKey). It returns the event, whose ID is the delivery's
// webhook-id (deduplicate by it: a delivery may arrive more than once).
func VerifyWebhook(h http.Header, body []byte, secret, publicKey string, now time.Time) (*WebhookEvent, error) {
	var keys [][]byte
	var pub ed25519.PublicKey
	if secret != "" {
		k, err := whsig.SecretKey(secret)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if publicKey != "" {
		var err error
		if pub, err = whsig.ParsePublicKey(publicKey); err != nil {
			return nil, err
		}
	}
	if keys == nil && pub == nil {
		return nil, fmt.Errorf("client: VerifyWebhook needs the endpoint's secret or the server's public key")
	}
	id := h.Get("webhook-id")
	if err := whsig.Verify(id, h.Get("webhook-timestamp"), h.Get("webhook-signature"), body, now, pub, keys...); err != nil {
		return nil, err
	}
	var ev WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("client: a verified webhook's body is not an event: %w", err)
	}
	if ev.ID != id {
		return nil, fmt.Errorf("client: the event's id %q is not its webhook-id %q", ev.ID, id)
	}
	return &ev, nil
}
