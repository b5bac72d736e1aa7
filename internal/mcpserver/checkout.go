package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
)

// ACPVersion is the Agentic Commerce Protocol release whose MCP binding
// (openrpc.agentic_checkout.json) the checkout tools follow.
const ACPVersion = "2026-04-17"

// The checkout tools take ACP's arguments (meta, the session's id,
// payload: ACP's REST request body) and, since ACP's methods are bound to
// one merchant's server and Paybound hosts every merchant's checkout, the
// merchant's ID. They answer ACP's CheckoutSession as structuredContent.
type checkoutCreateIn struct {
	MerchantID string         `json:"merchant_id" jsonschema:"the merchant whose checkout this is, mch_…"`
	Meta       map[string]any `json:"meta"`
	Payload    map[string]any `json:"payload" jsonschema:"ACP's CheckoutSessionCreateRequest: currency (lower case), line_items [{id: a product ID}], capabilities ({} is enough), optional buyer and fulfillment_details"`
}

type checkoutIDIn struct {
	MerchantID string         `json:"merchant_id" jsonschema:"the merchant whose checkout this is, mch_…"`
	Meta       map[string]any `json:"meta"`
	ID         string         `json:"id" jsonschema:"the checkout session's ID, cs_…"`
}

type checkoutUpdateIn struct {
	MerchantID string         `json:"merchant_id" jsonschema:"the merchant whose checkout this is, mch_…"`
	Meta       map[string]any `json:"meta"`
	ID         string         `json:"id" jsonschema:"the checkout session's ID, cs_…"`
	Payload    map[string]any `json:"payload" jsonschema:"ACP's CheckoutSessionUpdateRequest: line_items, buyer, fulfillment_details, selected_fulfillment_options"`
}

type checkoutCompleteIn struct {
	MerchantID string         `json:"merchant_id" jsonschema:"the merchant whose checkout this is, mch_…"`
	Meta       map[string]any `json:"meta"`
	ID         string         `json:"id" jsonschema:"the checkout session's ID, cs_…"`
	Payload    map[string]any `json:"payload" jsonschema:"ACP's CheckoutSessionCompleteRequest: payment_data {handler_id: paybound_agent_card, instrument: {type: card, credential: {type: spt, token: the vault token vt_… from delegate_payment}}}"`
}

type checkoutCancelIn struct {
	MerchantID string         `json:"merchant_id" jsonschema:"the merchant whose checkout this is, mch_…"`
	Meta       map[string]any `json:"meta"`
	ID         string         `json:"id" jsonschema:"the checkout session's ID, cs_…"`
	Payload    map[string]any `json:"payload,omitempty" jsonschema:"optional: {intent_trace} saying why the session is abandoned"`
}

// metaSchema is ACP's meta (openrpc.agentic_checkout.json): protocol
// metadata mapped from ACP's HTTP headers.
func metaSchema() *jsonschema.Schema {
	str := func(d string) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Description: d} }
	return &jsonschema.Schema{Type: "object", Required: []string{"api_version"},
		Description: "ACP's protocol metadata (its HTTP headers)",
		Properties: map[string]*jsonschema.Schema{
			"api_version":     str("ACP API version date: " + ACPVersion),
			"idempotency_key": str("unique key for retry safety (the Idempotency-Key header); required by every call but get"),
			"request_id":      str("correlation ID for request tracing"),
			"user_agent":      str("agent identification string"),
			"accept_language": str("locale preference, such as en-US"),
			"signature":       str("not used here: the MCP server authenticates the caller"),
			"timestamp":       str("not used here"),
		}}
}

// checkoutOp turns a tool's arguments into the backend's operation,
// checking meta as ACP's REST binding checks its headers.
func checkoutOp(kind, merchant, id string, meta, payload map[string]any) (CheckoutOp, error) {
	v, _ := meta["api_version"].(string)
	if v != ACPVersion {
		return CheckoutOp{}, pb.Errorf(pb.ErrUnsupportedVersion, "meta.api_version", "meta.api_version %.40q is not supported; this server speaks %s", v, ACPVersion)
	}
	op := CheckoutOp{Kind: kind, MerchantID: merchant, SessionID: id}
	if kind != "get" {
		key, _ := meta["idempotency_key"].(string)
		if err := CheckKey(key); err != nil {
			err.(*pb.Error).Param = "meta.idempotency_key"
			return CheckoutOp{}, err
		}
		op.Key = key
	}
	if kind != "create" && (!strings.HasPrefix(id, "cs_") || len(id) > 100) {
		return CheckoutOp{}, pb.Errorf(pb.ErrParameterInvalid, "id", "id must be a checkout session ID (cs_…)")
	}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return CheckoutOp{}, fmt.Errorf("couldn't encode the payload: %w", err)
		}
		op.Payload = b
	}
	return op, nil
}

// runCheckout runs op and answers the session, and a sentence about it.
func runCheckout(ctx context.Context, b Backend, op CheckoutOp) (map[string]any, string, error) {
	raw, err := b.Checkout(ctx, op)
	if err != nil {
		return nil, "", err
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, "", fmt.Errorf("couldn't read the session: %w", err)
	}
	return s, checkoutText(s), nil
}

// checkoutText is what a model reads of a session: its status, total and
// what it still needs.
func checkoutText(s map[string]any) string {
	cur, _ := s["currency"].(string)
	total := ""
	if ts, ok := s["totals"].([]any); ok {
		for _, t := range ts {
			if m, ok := t.(map[string]any); ok && m["type"] == "total" {
				if a, ok := m["amount"].(float64); ok {
					total = money(int64(a), strings.ToUpper(cur)).Formatted
				}
			}
		}
	}
	out := fmt.Sprintf("Checkout session %v is %v", s["id"], s["status"])
	if total != "" {
		out += ", total " + total
	}
	out += "."
	if ms, ok := s["messages"].([]any); ok {
		for _, m := range ms {
			if mm, ok := m.(map[string]any); ok {
				out += fmt.Sprintf(" [%v %v] %v", mm["type"], mm["code"], mm["content"])
			}
		}
	}
	if u, ok := s["continue_url"].(string); ok && u != "" && s["status"] == "pending_approval" {
		out += " The user must approve the payment at " + u + "."
	}
	return out
}

func (s *server) checkoutTools(ms *mcp.Server) error {
	meta := patch{prop: "meta", schema: metaSchema()}
	open := &mcp.ToolAnnotations{Title: "", IdempotentHint: true, DestructiveHint: ptr(false), OpenWorldHint: ptr(true)}
	ann := func(title string, destructive bool) *mcp.ToolAnnotations {
		a := *open
		a.Title, a.DestructiveHint = title, ptr(destructive)
		return &a
	}
	return firstErr(
		addTool(s, ms, "create_checkout_session", "ACP: open a checkout session at a merchant from its catalog's products (ACP's create_checkout_session). No money moves.",
			ann("Create a checkout session", false), checkoutTool("create", func(in checkoutCreateIn) (string, string, map[string]any, map[string]any) {
				return in.MerchantID, "", in.Meta, in.Payload
			}), meta),
		addTool(s, ms, "get_checkout_session", "ACP: the checkout session's current, authoritative state.",
			readOnly("Get a checkout session"), checkoutTool("get", func(in checkoutIDIn) (string, string, map[string]any, map[string]any) {
				return in.MerchantID, in.ID, in.Meta, nil
			}), meta),
		addTool(s, ms, "update_checkout_session", "ACP: change a session's items, buyer, address or fulfillment options; answers its new state.",
			ann("Update a checkout session", false), checkoutTool("update", func(in checkoutUpdateIn) (string, string, map[string]any, map[string]any) {
				return in.MerchantID, in.ID, in.Meta, in.Payload
			}), meta),
		addTool(s, ms, "complete_checkout_session", "ACP: pay a ready session with a vault token delegated for it (delegate_payment). The payment is made under the token's mandate with every check of pay: a declined payment leaves the session ready_for_payment with a payment_declined message, one above confirm_above leaves it pending_approval until the user approves.",
			ann("Complete a checkout session", false), checkoutTool("complete", func(in checkoutCompleteIn) (string, string, map[string]any, map[string]any) {
				return in.MerchantID, in.ID, in.Meta, in.Payload
			}), meta),
		addTool(s, ms, "cancel_checkout_session", "ACP: cancel a session that is not completed or canceled.",
			ann("Cancel a checkout session", true), checkoutTool("cancel", func(in checkoutCancelIn) (string, string, map[string]any, map[string]any) {
				return in.MerchantID, in.ID, in.Meta, in.Payload
			}), meta),
	)
}

// checkoutTool is the handler of the checkout tool of kind, whose
// arguments fields reads: merchant, session ID, meta and payload.
func checkoutTool[In any](kind string, fields func(In) (merchant, id string, meta, payload map[string]any)) handler[In, map[string]any] {
	return func(ctx context.Context, b Backend, in In) (map[string]any, string, error) {
		merchant, id, meta, payload := fields(in)
		op, err := checkoutOp(kind, merchant, id, meta, payload)
		if err != nil {
			return nil, "", err
		}
		return runCheckout(ctx, b, op)
	}
}
