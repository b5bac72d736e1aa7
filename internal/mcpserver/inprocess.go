package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/mandatereqs"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/paylinks"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/settlement"
	"github.com/paybound/paybound/internal/strictjson"
)

// MaxKeyLength bounds an idempotency_key argument; the backend prefixes it
// with the operation, within the core's 255.
const MaxKeyLength = 200

// InProcess serves the tools from the server's own operations: the core
// and the capabilities, called as the REST API calls them, so every check
// of a payment (mandate, confirmation, risk) is the one the API applies.
// Safe for concurrent use.
type InProcess struct {
	Core       *service.Service
	Mandates   *mandates.Service
	Requests   *mandatereqs.Service
	Disputes   *disputes.Service
	Links      *paylinks.Service
	Settlement *settlement.Service
	Checkout   *checkout.Service
	// X402 fetches a paid URL for an agent (pay_x402_resource), signing as
	// that agent: the command's, over the public x402.Transport with the
	// server's delegated authorizations and the operator's allowed hosts
	// (outbound HTTP is the command's). Nil refuses the tool (forbidden).
	X402 func(ctx context.Context, agent pb.Principal, key string, r X402Request) (*X402Response, error)
	// X402Tool calls a seller's paid MCP tool for an agent
	// (call_paid_tool), as X402 fetches a URL. Nil refuses the tool.
	X402Tool func(ctx context.Context, agent pb.Principal, key string, c PaidToolCall) (*PaidToolResult, error)
	// PublicURL makes a confirmation's link absolute (the user opens it);
	// "" leaves it as the API gives it.
	PublicURL string
	Log       *slog.Logger
}

// For returns the backend acting as caller, an authenticated principal.
func (s *InProcess) For(caller pb.Principal) Backend { return &inproc{s: s, p: caller} }

type inproc struct {
	s *InProcess
	p pb.Principal
}

func (b *inproc) Caller(context.Context) (Identity, error) {
	return Identity{Role: b.p.Role, ID: b.p.ID, UserID: b.p.UserID}, nil
}

func (b *inproc) log() *slog.Logger {
	if b.s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.s.Log
}

// CheckKey refuses a missing or malformed idempotency_key argument.
func CheckKey(key string) error {
	if key == "" {
		return pb.Errorf(pb.ErrIdempotencyRequired, "idempotency_key", "idempotency_key is required: a unique string (such as a UUID) for this one intended operation; send the same key again to retry it safely")
	}
	if len(key) > MaxKeyLength {
		return pb.Errorf(pb.ErrIdempotencyKey, "idempotency_key", "idempotency_key must be 1-%d printable ASCII characters", MaxKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return pb.Errorf(pb.ErrIdempotencyKey, "idempotency_key", "idempotency_key must be 1-%d printable ASCII characters", MaxKeyLength)
		}
	}
	return nil
}

// idempotent runs call under the caller's key for op, with the request's
// hash taken over args, and returns its value: fresh, or decoded from the
// stored response of an earlier call with the same key and arguments.
func idempotent[T any](ctx context.Context, b *inproc, op, key string, args any, call func(*service.Idempotency) service.Result) (T, error) {
	return idempotentAs[T](ctx, b, op, key, args, nil, call)
}

// idempotentAs is idempotent with view turning the operation's value into
// what is answered and stored (nil: the value itself).
func idempotentAs[T any](ctx context.Context, b *inproc, op, key string, args any, view func(any) any, call func(*service.Idempotency) service.Result) (T, error) {
	if view == nil {
		view = func(v any) any { return v }
	}
	var zero T
	if err := CheckKey(key); err != nil {
		return zero, err
	}
	h, err := json.Marshal(args)
	if err != nil {
		return zero, fmt.Errorf("couldn't encode the arguments: %w", err)
	}
	idem := &service.Idempotency{Caller: b.p.ID, Key: "mcp." + op + "." + key, Hash: sha256.Sum256(append([]byte(op+"\n"), h...))}
	idem.Render = func(v any, err error) (int, []byte) {
		if err != nil {
			return rest.ErrorJSON(b.log(), err)
		}
		body, merr := json.Marshal(view(v))
		if merr != nil {
			return rest.ErrorJSON(b.log(), fmt.Errorf("couldn't encode response: %w", merr))
		}
		return 200, body
	}
	res := call(idem)
	if !res.Replayed {
		v, _ := view(res.Value).(T)
		return v, res.Err
	}
	return decodeStored[T](idem.Status, idem.Body)
}

// decodeStored reads a response stored under an idempotency key: the
// value, or the error envelope of a refusal.
func decodeStored[T any](status int, body []byte) (T, error) {
	var v T
	if status >= 400 {
		var env struct {
			Error *pb.Error `json:"error"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
			return v, fmt.Errorf("couldn't read a stored response (status %d): %v", status, err)
		}
		return v, env.Error
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("couldn't read a stored response: %w", err)
	}
	return v, nil
}

func (b *inproc) Mandates(ctx context.Context, after string, limit int) ([]Mandate, bool, error) {
	vs, more, err := b.s.Mandates.List(ctx, b.p, after, limit)
	if err != nil {
		return nil, false, err
	}
	out := make([]Mandate, len(vs))
	for i, v := range vs {
		out[i] = Mandate{Mandate: v.Mandate, RemainingBudget: v.RemainingBudget, PaymentsCount: v.PaymentsCount}
	}
	return out, more, nil
}

func (b *inproc) RequestMandate(ctx context.Context, key string, p MandateRequestParams) (*pb.MandateRequest, error) {
	if b.s.Requests == nil {
		return nil, pb.Errorf(pb.ErrForbidden, "", "this server takes no mandate requests")
	}
	return idempotent[*pb.MandateRequest](ctx, b, "mandate_request", key, p, func(idem *service.Idempotency) service.Result {
		return b.s.Requests.Create(ctx, b.p, idem, p.Mandate(), nil, p.Reason)
	})
}

// WalletURL is the wallet's page of the user's mandates, where a request
// waits (its section's anchor).
func (b *inproc) WalletURL(id string) string { return WalletRequestURL(b.s.PublicURL, id) }

// WalletRequestURL is where mandate request id waits in the wallet of the
// server at base ("" when base is).
func WalletRequestURL(base, id string) string {
	if base == "" || id == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + "/wallet/mandates#r-" + id
}

func (b *inproc) Pay(ctx context.Context, key string, p PayParams) (*pb.Payment, error) {
	pay, err := idempotent[*pb.Payment](ctx, b, "pay", key, p, func(idem *service.Idempotency) service.Result {
		return b.s.Core.CreatePayment(ctx, b.p, idem, service.CreatePaymentParams{Amount: p.Amount, Currency: p.Currency,
			MerchantID: p.MerchantID, Description: p.Description, MandateID: p.MandateID,
			PayeeProvenance: p.PayeeProvenance, AmountProvenance: p.AmountProvenance})
	})
	return b.absolute(pay), err
}

// absolute makes a confirmation's link one the user can open.
func (b *inproc) absolute(p *pb.Payment) *pb.Payment {
	if p != nil && p.Confirmation != nil && b.s.PublicURL != "" && strings.HasPrefix(p.Confirmation.URL, "/") {
		c := *p.Confirmation
		c.URL = strings.TrimSuffix(b.s.PublicURL, "/") + c.URL
		q := *p
		q.Confirmation = &c
		return &q
	}
	return p
}

func (b *inproc) Payment(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := b.s.Core.Payment(ctx, b.p, id)
	return b.absolute(p), err
}

func (b *inproc) Payments(ctx context.Context, after string, limit int) ([]pb.Payment, bool, error) {
	ps, more, err := b.s.Core.ListPayments(ctx, b.p, after, limit)
	for i := range ps {
		ps[i] = *b.absolute(&ps[i])
	}
	return ps, more, err
}

func (b *inproc) OpenDispute(ctx context.Context, key, paymentID string, reason pb.DisputeReason, details string) (*pb.Dispute, error) {
	args := struct {
		P string           `json:"payment_id"`
		R pb.DisputeReason `json:"reason"`
		D string           `json:"details"`
	}{paymentID, reason, details}
	caller := b.p
	if caller.Role == pb.RoleAgent {
		// Disputes are the payer's: an agent opens one for its user, and
		// only on a payment it made itself.
		p, err := b.s.Core.Payment(ctx, caller, paymentID)
		if err != nil {
			return nil, err
		}
		if string(p.AgentID) != caller.ID {
			return nil, pb.Errorf(pb.ErrNotFound, "payment_id", "no such payment made by this agent: %s", paymentID)
		}
		caller = pb.Principal{Role: pb.RoleUser, ID: caller.UserID, UserID: caller.UserID}
	}
	return idempotent[*pb.Dispute](ctx, b, "dispute", key, args, func(idem *service.Idempotency) service.Result {
		return b.s.Disputes.Open(ctx, caller, idem, paymentID, reason, details)
	})
}

func (b *inproc) PayX402(ctx context.Context, key string, r X402Request) (*X402Response, error) {
	if err := service.RequireRole(b.p, pb.RoleAgent); err != nil {
		return nil, err
	}
	if b.s.X402 == nil {
		return nil, pb.Errorf(pb.ErrForbidden, "url", "this server fetches no paid URLs for agents: its operator has allowed no host (--mcp-x402-allow)")
	}
	return b.s.X402(ctx, b.p, key, r)
}

func (b *inproc) CallPaidTool(ctx context.Context, key string, c PaidToolCall) (*PaidToolResult, error) {
	if err := service.RequireRole(b.p, pb.RoleAgent); err != nil {
		return nil, err
	}
	if b.s.X402Tool == nil {
		return nil, pb.Errorf(pb.ErrForbidden, "server_url", "this server calls no paid tools for agents: its operator has allowed no host (--mcp-x402-allow)")
	}
	return b.s.X402Tool(ctx, b.p, key, c)
}

func (b *inproc) Balances(ctx context.Context) ([]pb.Balance, error) {
	return b.s.Core.Balances(ctx, b.p)
}

func (b *inproc) CreatePaymentLink(ctx context.Context, key string, p LinkParams) (*pb.PayLink, error) {
	return idempotent[*pb.PayLink](ctx, b, "link", key, p, func(idem *service.Idempotency) service.Result {
		return b.s.Links.Create(ctx, b.p, idem, paylinks.CreateParams{Amount: p.Amount, Currency: p.Currency,
			Description: p.Description, ExpiresAt: p.ExpiresAt, MaxUses: p.MaxUses})
	})
}

func (b *inproc) Capture(ctx context.Context, key, id string, amount *int64) (*pb.Payment, error) {
	args := struct {
		ID     string `json:"id"`
		Amount *int64 `json:"amount"`
	}{id, amount}
	return idempotent[*pb.Payment](ctx, b, "capture", key, args, func(idem *service.Idempotency) service.Result {
		return b.s.Core.Capture(ctx, b.p, idem, id, amount)
	})
}

func (b *inproc) Cancel(ctx context.Context, key, id string) (*pb.Payment, error) {
	return idempotent[*pb.Payment](ctx, b, "cancel", key, id, func(idem *service.Idempotency) service.Result {
		return b.s.Core.Cancel(ctx, b.p, idem, id)
	})
}

func (b *inproc) Refund(ctx context.Context, key, id string, amount *int64, reason string) (*pb.Refund, error) {
	args := struct {
		ID     string `json:"id"`
		Amount *int64 `json:"amount"`
		Reason string `json:"reason"`
	}{id, amount, reason}
	return idempotent[*pb.Refund](ctx, b, "refund", key, args, func(idem *service.Idempotency) service.Result {
		return b.s.Core.Refund(ctx, b.p, idem, id, amount, reason)
	})
}

func (b *inproc) Disputes(ctx context.Context, status, after string, limit int) ([]pb.Dispute, bool, error) {
	return b.s.Disputes.List(ctx, b.p, status, after, limit)
}

func (b *inproc) Settlement(ctx context.Context, from, to time.Time) (*pb.SettlementReport, error) {
	return b.s.Settlement.Report(ctx, b.p, from, to)
}

// Checkout runs op as ACP's REST binding does (internal/acp): the payload
// decoded strictly into ACP's request, the session answered in ACP's wire
// form, the key scoped to the caller and the operation.
func (b *inproc) Checkout(ctx context.Context, op CheckoutOp) (json.RawMessage, error) {
	co := b.s.Checkout
	if co == nil {
		return nil, pb.Errorf(pb.ErrForbidden, "", "this server offers no checkout")
	}
	if !pb.HasPrefix(op.MerchantID, pb.PrefixMerchant) || len(op.MerchantID) > 100 {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "merchant_id", "merchant_id must be a merchant ID (mch_…)")
	}
	wire := func(v any) any {
		if s, ok := v.(*pb.CheckoutSession); ok {
			return co.Wire(s, nil)
		}
		return v
	}
	decode := func(v any) error {
		if len(op.Payload) == 0 {
			op.Payload = []byte("{}")
		}
		if err := strictjson.Unmarshal(op.Payload, v); err != nil {
			return rest.DecodeError(err)
		}
		return nil
	}
	args := struct {
		M, S    string
		Payload json.RawMessage
	}{op.MerchantID, op.SessionID, op.Payload}
	var v *checkout.SessionJSON
	var err error
	switch op.Kind {
	case "get":
		v, err = co.SessionJSON(ctx, b.p, op.MerchantID, op.SessionID)
	case "create":
		v, err = acpRun(ctx, b, op, args, wire, decode, (*checkout.CreateRequest).Params, func(idem *service.Idempotency, p checkout.SessionParams) service.Result {
			return co.CreateSession(ctx, b.p, idem, op.MerchantID, p)
		})
	case "update":
		v, err = acpRun(ctx, b, op, args, wire, decode, (*checkout.UpdateRequest).Params, func(idem *service.Idempotency, p checkout.SessionParams) service.Result {
			return co.UpdateSession(ctx, b.p, idem, op.MerchantID, op.SessionID, p)
		})
	case "complete":
		v, err = acpRun(ctx, b, op, args, wire, decode, (*checkout.CompleteRequest).Params, func(idem *service.Idempotency, p checkout.CompleteParams) service.Result {
			return co.CompleteSession(ctx, b.p, idem, op.MerchantID, op.SessionID, p)
		})
	case "cancel":
		v, err = acpRun(ctx, b, op, args, wire, decode, (*cancelRequest).params, func(idem *service.Idempotency, _ struct{}) service.Result {
			return co.CancelSession(ctx, b.p, idem, op.MerchantID, op.SessionID)
		})
	default:
		return nil, fmt.Errorf("unknown checkout operation %q", op.Kind)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// cancelRequest is cancel's optional body: why the session is abandoned.
type cancelRequest struct {
	IntentTrace json.RawMessage `json:"intent_trace,omitempty"`
}

func (*cancelRequest) params() (struct{}, error) { return struct{}{}, nil }

// acpRun decodes op's payload into ACP's request Req, turns it into the
// operation's parameters and runs the operation under op's key.
func acpRun[Req, P any](ctx context.Context, b *inproc, op CheckoutOp, args any, wire func(any) any, decode func(any) error,
	params func(*Req) (P, error), run func(*service.Idempotency, P) service.Result) (*checkout.SessionJSON, error) {
	var in Req
	if err := decode(&in); err != nil {
		return nil, err
	}
	p, err := params(&in)
	if err != nil {
		return nil, err
	}
	return idempotentAs[*checkout.SessionJSON](ctx, b, "checkout."+op.Kind, op.Key, args, wire, func(idem *service.Idempotency) service.Result {
		return run(idem, p)
	})
}
