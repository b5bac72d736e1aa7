package x402pay

import (
	"encoding/json"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/x402/wire"
)

// Routes are x402's facilitator API, which the server mounts. They are
// public, as x402 facilitators are: what authorizes a settlement is the
// agent's signature in the payload, which pays only its named payee.
// Answers are x402's bodies (not Paybound's error envelope): a payment that
// can't be verified or settled is a 200 with isValid or success false and
// x402's reason; only a body that is not a facilitator request is a 400.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/x402/verify", Public: true, Handler: s.verify},
		{Method: "POST", Pattern: "/x402/settle", Public: true, Handler: s.settleRoute},
		{Method: "GET", Pattern: "/x402/supported", Public: true, Handler: s.supported},
		{Method: "GET", Pattern: "/x402/tabs/{id}", Handler: s.getTab},
		{Method: "POST", Pattern: "/x402/tabs/{id}/claim", Idempotent: true, Handler: s.claim},
		{Method: "POST", Pattern: "/x402/tabs/{id}/close", Idempotent: true, Handler: s.closeTab},
	}
}

// decode reads a facilitator request: unknown fields are allowed (x402's
// documents grow), a body that is not one is invalid_json.
func decode(q *rest.Request) (*wire.FacilitatorRequest, error) {
	var req wire.FacilitatorRequest
	if err := json.Unmarshal(q.Body, &req); err != nil {
		return nil, pb.Errorf(pb.ErrInvalidJSON, "", "the body must be an x402 facilitator request {x402Version, paymentPayload, paymentRequirements}: %v", err)
	}
	return &req, nil
}

func (s *Service) verify(q *rest.Request) (int, any, error) {
	req, err := decode(q)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.Verify(q.Ctx, req)
	return 200, v, err
}

func (s *Service) settleRoute(q *rest.Request) (int, any, error) {
	req, err := decode(q)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.Settle(q.Ctx, req)
	return 200, v, err
}

func (s *Service) supported(q *rest.Request) (int, any, error) {
	return 200, s.Supported(), nil
}

func (s *Service) getTab(q *rest.Request) (int, any, error) {
	t, err := s.Tab(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, t, err
}

// claim's and close's outcomes are naturally idempotent (a claimed tab
// answers the same claim as it is), so their Idempotency-Key is required
// but their answer is not stored under it.
func (s *Service) claim(q *rest.Request) (int, any, error) {
	var in struct {
		AmountAtomic *int64       `json:"amount_atomic"`
		Voucher      wire.Voucher `json:"voucher"`
		Vouchers     int64        `json:"vouchers"`
		ChainHead    string       `json:"chain_head"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.AmountAtomic == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "amount_atomic", "amount_atomic is required: what the tab's vouchers charged in all, in atomic units")
	}
	t, err := s.Claim(q.Ctx, q.Caller, q.PathValue("id"), ClaimParams{Amount: *in.AmountAtomic, Voucher: in.Voucher, Vouchers: in.Vouchers, ChainHead: in.ChainHead})
	q.Idem = nil
	return 200, t, err
}

func (s *Service) closeTab(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	t, err := s.Close(q.Ctx, q.Caller, q.PathValue("id"))
	q.Idem = nil
	return 200, t, err
}
