package checkout

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are the checkout's part of the REST API: the catalog and agent
// cards. The checkout sessions and delegate_payment are ACP's own API,
// served by internal/acp.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/products", Idempotent: true, Handler: s.createProduct},
		{Method: "GET", Pattern: "/v1/products", Handler: s.listProducts},
		{Method: "GET", Pattern: "/v1/products/{id}", Handler: s.getProduct},
		{Method: "POST", Pattern: "/v1/products/{id}", Idempotent: true, Handler: s.updateProduct},
		{Method: "POST", Pattern: "/v1/products/{id}/archive", Idempotent: true, Handler: s.archiveProduct},
		{Method: "POST", Pattern: "/v1/mandates/{id}/card", Idempotent: true, Secret: true, Handler: s.issueCard},
		{Method: "GET", Pattern: "/v1/mandates/{id}/cards", Handler: s.listCards},
		{Method: "POST", Pattern: "/v1/mandates/{id}/cards/{card_id}/revoke", Idempotent: true, Handler: s.revokeCard},
	}
}

// productIn is a product's fields as the REST API takes them.
type productIn struct {
	Name        *string         `json:"name"`
	SKU         *string         `json:"sku"`
	Price       *int64          `json:"price"`
	Currency    string          `json:"currency"`
	Fulfillment *pb.Fulfillment `json:"fulfillment"`
}

func (in productIn) params() ProductParams {
	return ProductParams(in)
}

func (s *Service) createProduct(q *rest.Request) (int, any, error) {
	var in productIn
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.CreateProduct(q.Ctx, q.Caller, q.Idem, in.params()) })
}

func (s *Service) updateProduct(q *rest.Request) (int, any, error) {
	var in productIn
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.PathValue("id")
	return q.Run(200, func() service.Result { return s.UpdateProduct(q.Ctx, q.Caller, q.Idem, id, in.params()) })
}

func (s *Service) archiveProduct(q *rest.Request) (int, any, error) {
	return q.Act(s.ArchiveProduct)
}

func (s *Service) getProduct(q *rest.Request) (int, any, error) {
	p, err := s.Product(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, p, err
}

func (s *Service) listProducts(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixProduct)
	if err != nil {
		return 0, nil, err
	}
	archived := false
	switch q.Query("archived") {
	case "", "false":
	case "true":
		archived = true
	default:
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "archived", "archived must be true or false")
	}
	data, more, err := s.ListProducts(q.Ctx, q.Caller, q.Query("merchant_id"), archived, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Service) issueCard(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.PathValue("id")
	return q.Run(201, func() service.Result { return s.IssueCard(q.Ctx, q.Caller, q.Idem, id) })
}

func (s *Service) listCards(q *rest.Request) (int, any, error) {
	cards, err := s.MandateCards(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, map[string]any{"object": "list", "data": cards, "has_more": false}, err
}

func (s *Service) revokeCard(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	mandate, card := q.PathValue("id"), q.PathValue("card_id")
	return q.Run(200, func() service.Result { return s.RevokeCard(q.Ctx, q.Caller, q.Idem, mandate, card) })
}
