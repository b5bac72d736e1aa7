package confirm

import (
	"encoding/json"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are step-up's part of the REST API, which the server mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/totp", Idempotent: true, Secret: true, Handler: s.enrollTOTP},
		{Method: "POST", Pattern: "/v1/passkeys/registration", Handler: s.passkeyRegistration},
		{Method: "POST", Pattern: "/v1/passkeys", Idempotent: true, Handler: s.registerPasskey},
		{Method: "GET", Pattern: "/v1/passkeys", Handler: s.passkeys},
		{Method: "POST", Pattern: "/v1/passkeys/{id}/revoke", Idempotent: true, Handler: s.revokePasskey},
		{Method: "POST", Pattern: "/v1/passkeys/assertion", Handler: s.passkeyAssertion},
		{Method: "POST", Pattern: "/v1/totp/verify", Idempotent: true, Handler: s.verifyTOTP},
		{Method: "GET", Pattern: "/v1/confirmations", Handler: s.listConfirmations},
		{Method: "POST", Pattern: "/v1/confirmations/{id}/approve", Idempotent: true, Handler: s.approveRoute},
		{Method: "POST", Pattern: "/v1/confirmations/{id}/deny", Idempotent: true, Handler: s.deny},
	}
}

func (s *Service) enrollTOTP(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.EnrollTOTP(q.Ctx, q.Caller, q.Idem) })
}

func (s *Service) verifyTOTP(q *rest.Request) (int, any, error) {
	var in struct {
		Code string `json:"code"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Code == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "code", "code is required: the 6 digits the authenticator app shows")
	}
	return q.Run(200, func() service.Result { return s.VerifyTOTP(q.Ctx, q.Caller, q.Idem, in.Code) })
}

func (s *Service) listConfirmations(q *rest.Request) (int, any, error) {
	if st := q.Query("status"); st != "" && st != "pending" {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "status", "status must be pending: only waiting confirmations are listed")
	}
	limit, after, err := q.ListParams(pb.PrefixConfirmation)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.PendingConfirmations(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

// approveRoute approves a confirmation with one factor: a passkey
// assertion or a one-time code.
func (s *Service) approveRoute(q *rest.Request) (int, any, error) {
	var in struct {
		TOTP    string          `json:"totp"`
		Passkey json.RawMessage `json:"passkey"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.PathValue("id")
	switch {
	case in.TOTP != "" && len(in.Passkey) > 0:
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "passkey", "give one factor: totp or passkey, not both")
	case len(in.Passkey) > 0:
		return q.Run(200, func() service.Result { return s.ApproveWithPasskey(q.Ctx, q.Caller, q.Idem, id, in.Passkey) })
	case in.TOTP == "":
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "passkey", "a factor is required: passkey (an assertion from POST /v1/passkeys/assertion) or totp (the 6 digits your authenticator app shows)")
	}
	return q.Run(200, func() service.Result { return s.ApproveWithTOTP(q.Ctx, q.Caller, q.Idem, id, in.TOTP) })
}

func (s *Service) deny(q *rest.Request) (int, any, error) {
	return q.Act(s.Deny)
}

// passkeyRegistration begins a passkey registration: the options for
// navigator.credentials.create().
func (s *Service) passkeyRegistration(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	opts, err := s.BeginPasskeyRegistration(q.Ctx, q.Caller)
	return 200, opts, err
}

func (s *Service) registerPasskey(q *rest.Request) (int, any, error) {
	var in struct {
		Credential json.RawMessage `json:"credential"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if len(in.Credential) == 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "credential", "credential is required: the PublicKeyCredential navigator.credentials.create() returned, as JSON")
	}
	return q.Run(201, func() service.Result { return s.RegisterPasskey(q.Ctx, q.Caller, q.Idem, in.Credential) })
}

func (s *Service) passkeys(q *rest.Request) (int, any, error) {
	keys, err := s.Passkeys(q.Ctx, q.Caller)
	return 200, map[string]any{"object": "list", "data": keys, "has_more": false}, err
}

func (s *Service) revokePasskey(q *rest.Request) (int, any, error) {
	return q.Act(s.RevokePasskey)
}

// passkeyAssertion returns the options for navigator.credentials.get()
// that approve one confirmation's payment.
func (s *Service) passkeyAssertion(q *rest.Request) (int, any, error) {
	var in struct {
		ConfirmationID string `json:"confirmation_id"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.ConfirmationID == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "confirmation_id", "confirmation_id is required: the cfm_… of the payment to approve")
	}
	opts, err := s.PasskeyApprovalOptions(q.Ctx, q.Caller, in.ConfirmationID)
	return 200, opts, err
}
