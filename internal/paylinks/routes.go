package paylinks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are the payment links' part of the REST API, which the server
// mounts; GET /l/{id} is the link's public address.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/payment_links", Idempotent: true, Handler: s.create},
		{Method: "GET", Pattern: "/v1/payment_links", Handler: s.list},
		{Method: "GET", Pattern: "/v1/payment_links/{id}", Handler: s.get},
		{Method: "POST", Pattern: "/v1/payment_links/{id}/deactivate", Idempotent: true, Handler: s.deactivate},
		{Method: "POST", Pattern: "/v1/payment_links/{id}/payments", Idempotent: true, Handler: s.pay},
		{Method: "GET", Pattern: "/v1/payment_links/{id}/payments", Handler: s.payments},
		{Method: "GET", Pattern: "/l/{id}", Public: true, Handler: s.offer},
	}
}

func (s *Service) create(q *rest.Request) (int, any, error) {
	var in struct {
		Amount      *int64  `json:"amount"`
		Currency    string  `json:"currency"`
		Description string  `json:"description"`
		ExpiresAt   *string `json:"expires_at"`
		MaxUses     *int64  `json:"max_uses"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Amount == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "amount", "amount is required: an integer number of the currency's minor units")
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	p := CreateParams{Amount: *in.Amount, Currency: in.Currency, Description: in.Description}
	if in.MaxUses != nil {
		if *in.MaxUses < 1 {
			return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "max_uses", "max_uses must be from 1 to %d (or omitted: no limit)", pb.MaxPayLinkUses)
		}
		p.MaxUses = *in.MaxUses
	}
	var err error
	if p.ExpiresAt, err = rest.ParseTime(in.ExpiresAt, "expires_at"); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.Create(q.Ctx, q.Caller, q.Idem, p) })
}

func (s *Service) list(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixPayLink)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.List(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Service) get(q *rest.Request) (int, any, error) {
	l, err := s.Link(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, l, err
}

func (s *Service) deactivate(q *rest.Request) (int, any, error) {
	return q.Act(s.Deactivate)
}

func (s *Service) pay(q *rest.Request) (int, any, error) {
	var in struct {
		MandateID string `json:"mandate_id"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.MandateID != "" && !pb.HasPrefix(in.MandateID, pb.PrefixMandate) {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "mandate_id", "mandate_id must be a mandate ID (mdt_…)")
	}
	id := q.PathValue("id")
	return q.Run(201, func() service.Result { return s.Pay(q.Ctx, q.Caller, q.Idem, id, in.MandateID) })
}

func (s *Service) payments(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixPayment)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.Payments(q.Ctx, q.Caller, q.PathValue("id"), after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

// offer answers a link's public address: the JSON offer to a client that
// asks for JSON (Accept: application/json), the page to anything else.
func (s *Service) offer(q *rest.Request) (int, any, error) {
	o, err := s.Offer(q.Ctx, q.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	vary := map[string]string{"Vary": "Accept", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
	if wantsJSON(q.HTTP.Header.Values("Accept")) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // an agent reads "<mdt_…>", not "\u003cmdt_…\u003e"
		if err := enc.Encode(o); err != nil {
			return 0, nil, fmt.Errorf("couldn't encode the offer: %w", err)
		}
		return 200, rest.Raw{ContentType: "application/json", Body: b.Bytes(), Header: vary}, nil
	}
	b, err := Page(o)
	if err != nil {
		return 0, nil, fmt.Errorf("couldn't render the link's page: %w", err)
	}
	vary["Content-Security-Policy"] = PageCSP
	vary["Referrer-Policy"] = "no-referrer"
	vary["X-Frame-Options"] = "DENY"
	return 200, rest.Raw{ContentType: "text/html; charset=utf-8", Body: b, Header: vary}, nil
}

// wantsJSON reports whether an Accept header prefers JSON to HTML: it names
// application/json (or a +json type) with a quality above zero and above
// that of text/html.
func wantsJSON(accept []string) bool {
	jsonQ, htmlQ := -1.0, -1.0
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			qv := 1.0
			if qs, ok := params["q"]; ok {
				if _, err := fmt.Sscanf(qs, "%g", &qv); err != nil {
					continue
				}
			}
			switch {
			case mt == "application/json" || strings.HasSuffix(mt, "+json"):
				jsonQ = max(jsonQ, qv)
			case mt == "text/html":
				htmlQ = max(htmlQ, qv)
			}
		}
	}
	return jsonQ > 0 && jsonQ > htmlQ
}
