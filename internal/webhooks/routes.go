package webhooks

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are the webhooks' part of the REST API, which the server mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/webhook_endpoints", Idempotent: true, Secret: true, Handler: s.createEndpoint},
		{Method: "GET", Pattern: "/v1/webhook_endpoints", Handler: s.listEndpoints},
		{Method: "GET", Pattern: "/v1/webhook_endpoints/{id}", Handler: s.getEndpoint},
		{Method: "POST", Pattern: "/v1/webhook_endpoints/{id}", Idempotent: true, Handler: s.updateEndpoint},
		{Method: "DELETE", Pattern: "/v1/webhook_endpoints/{id}", Handler: s.deleteEndpoint},
		{Method: "POST", Pattern: "/v1/webhook_endpoints/{id}/rotate_secret", Idempotent: true, Secret: true, Handler: s.rotateSecret},
		{Method: "POST", Pattern: "/v1/webhook_endpoints/{id}/test", Idempotent: true, Handler: s.testEndpoint},
		{Method: "GET", Pattern: "/v1/webhook_endpoints/{id}/deliveries", Handler: s.listDeliveries},
		{Method: "GET", Pattern: "/v1/webhook_deliveries/{id}", Handler: s.getDelivery},
		{Method: "POST", Pattern: "/v1/webhook_deliveries/{id}/redeliver", Handler: s.redeliver},
		{Method: "GET", Pattern: "/v1/webhooks/key", Public: true, Handler: s.key},
	}
}

func (s *Service) createEndpoint(q *rest.Request) (int, any, error) {
	var in struct {
		URL         string   `json:"url"`
		Events      []string `json:"events"`
		Format      string   `json:"format"`
		Description string   `json:"description"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.Create(q.Ctx, q.Caller, q.Idem, CreateParams{URL: in.URL, Events: in.Events, Format: in.Format, Description: in.Description})
	})
}

func (s *Service) updateEndpoint(q *rest.Request) (int, any, error) {
	var in struct {
		URL         *string  `json:"url"`
		Events      []string `json:"events"`
		Description *string  `json:"description"`
		Disabled    *bool    `json:"disabled"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Events != nil && len(in.Events) == 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "events", "events must list at least one event type, or [\"*\"]")
	}
	id := q.PathValue("id")
	return q.Run(200, func() service.Result {
		return s.Update(q.Ctx, q.Caller, q.Idem, id, UpdateParams{URL: in.URL, Events: in.Events, Description: in.Description, Disabled: in.Disabled})
	})
}

func (s *Service) getEndpoint(q *rest.Request) (int, any, error) {
	e, err := s.Endpoint(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, e, err
}

func (s *Service) listEndpoints(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixWebhookEndpoint)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.List(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

// deleteEndpoint answers {id, object, deleted: true}; deleting again is
// not found. DELETE carries no Idempotency-Key: it is idempotent itself.
func (s *Service) deleteEndpoint(q *rest.Request) (int, any, error) {
	res := s.Delete(q.Ctx, q.Caller, nil, q.PathValue("id"))
	return 200, res.Value, res.Err
}

func (s *Service) rotateSecret(q *rest.Request) (int, any, error) {
	return q.Act(s.Rotate)
}

func (s *Service) testEndpoint(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.PathValue("id")
	return q.Run(201, func() service.Result { return s.Test(q.Ctx, q.Caller, q.Idem, id) })
}

func (s *Service) listDeliveries(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixWebhookDelivery)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.Deliveries(q.Ctx, q.Caller, q.PathValue("id"), after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Service) getDelivery(q *rest.Request) (int, any, error) {
	d, err := s.Delivery(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, d, err
}

// redeliver needs no Idempotency-Key: asking twice asks for one attempt
// more, which a receiver deduplicates by webhook-id anyway.
func (s *Service) redeliver(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	d, err := s.Redeliver(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, d, err
}

func (s *Service) key(q *rest.Request) (int, any, error) {
	return 200, map[string]any{"object": "webhook_key", "algorithm": "ed25519", "public_key": s.PublicKey(),
		"signature_version": "v1a"}, nil
}
