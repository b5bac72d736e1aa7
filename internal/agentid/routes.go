package agentid

import (
	"context"
	"encoding/json"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are agent identity's part of the REST API, which the server
// mounts. Signed requests are authenticated by the server's request
// wrapper, through Authenticate.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "GET", Pattern: "/v1/agents", Handler: s.listAgents},
		{Method: "POST", Pattern: "/v1/agents/{id}/keys", Idempotent: true, Handler: s.addKey},
		{Method: "GET", Pattern: "/v1/agents/{id}/keys", Handler: s.listKeys},
		{Method: "POST", Pattern: "/v1/agents/{id}/keys/{keyid}/revoke", Idempotent: true, Handler: s.revokeKey},
		{Method: "POST", Pattern: "/v1/agents/{id}/revoke", Idempotent: true, Handler: s.revokeAgent},
	}
}

func (s *Service) addKey(q *rest.Request) (int, any, error) {
	var in struct {
		PublicKey          json.RawMessage `json:"public_key"`
		RotateAfterSeconds int64           `json:"rotate_after_seconds"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if len(in.PublicKey) == 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "public_key", "public_key is required: an Ed25519 JWK")
	}
	if err := rest.CheckJWK(in.PublicKey); err != nil {
		return 0, nil, err
	}
	if in.RotateAfterSeconds < 0 || in.RotateAfterSeconds > 30*24*3600 {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "rotate_after_seconds", "rotate_after_seconds must be between 0 and 2592000 (30 days)")
	}
	id := q.PathValue("id")
	rotate := time.Duration(in.RotateAfterSeconds) * time.Second
	return q.Run(201, func() service.Result { return s.AddKey(q.Ctx, q.Caller, q.Idem, id, in.PublicKey, rotate) })
}

func (s *Service) listAgents(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixAgent)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.ListAgents(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Service) listKeys(q *rest.Request) (int, any, error) {
	keys, err := s.Keys(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, map[string]any{"object": "list", "data": keys, "has_more": false}, err
}

func (s *Service) revokeKey(q *rest.Request) (int, any, error) {
	keyid := q.PathValue("keyid")
	return q.Act(func(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
		return s.RevokeKey(ctx, caller, idem, id, keyid)
	})
}

func (s *Service) revokeAgent(q *rest.Request) (int, any, error) {
	return q.Act(s.RevokeAgent)
}
