package wallet

import (
	"context"
	"net/http"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/billing"
)

// ProviderReader says with which Token Pay providers customers (the
// person and their agents) have credit, grants, subscriptions or usage:
// billing's reads all start from a provider. Main gives the store.
type ProviderReader interface {
	CustomerProviders(ctx context.Context, customerIDs []string, limit int) ([]pb.CustomerProvider, error)
}

// maxCredits bounds the (customer, provider) pairs the page shows.
const maxCredits = 50

func (h *Handler) tokenPayRoutes() {
	h.mux.HandleFunc("GET /wallet/tokenpay", h.auth(h.tokenPayPage))
}

// creditView is what the person has with one provider, as one customer
// (themselves or one of their agents): the credit per currency, the
// grants, the subscriptions and this month's usage by model.
type creditView struct {
	CustomerID    string
	ProviderID    string
	Balances      []billing.CurrencyBalance
	Grants        []pb.Grant
	Subscriptions []billing.Subscription
	Usage         []billing.UsageGroup
}

// tokenPayPage shows the person's Token Pay credit, provider by
// provider, through billing's own reads as the person (the same checks
// the API makes: a user reads their own and their agents' credit).
func (h *Handler) tokenPayPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Token Pay", "tokenpay")
	if ss.principal.Role != pb.RoleUser {
		h.fail(w, "tokenpay", p, pb.Errorf(pb.ErrForbidden, "", "Token Pay credit belongs to people and their agents"))
		return
	}
	ctx := r.Context()
	agents, err := h.listAgents(r, ss)
	if err != nil {
		h.fail(w, "tokenpay", p, err)
		return
	}
	customers := []string{ss.principal.ID}
	for _, a := range agents {
		if len(customers) >= pb.MaxListLimit {
			break
		}
		customers = append(customers, a.ID)
	}
	pairs, err := h.providers.CustomerProviders(ctx, customers, maxCredits+1)
	if err != nil {
		h.fail(w, "tokenpay", p, err)
		return
	}
	more := len(pairs) > maxCredits
	pairs = pairs[:min(len(pairs), maxCredits)]
	now := h.cfg.Clock.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	names := map[string]string{}
	var views []creditView
	for _, c := range pairs {
		v := creditView{CustomerID: c.CustomerID, ProviderID: c.ProviderID}
		bal, err := h.billing.Balance(ctx, ss.principal, c.ProviderID, c.CustomerID)
		if err == nil {
			v.Balances = bal.Balances
			v.Grants, err = h.billing.Grants(ctx, ss.principal, c.ProviderID, c.CustomerID)
		}
		if err == nil {
			v.Subscriptions, err = h.billing.Subscriptions(ctx, ss.principal, c.ProviderID, c.CustomerID)
		}
		if err == nil {
			var u *billing.Usage
			u, err = h.billing.Usage(ctx, ss.principal, billing.UsageQuery{Provider: c.ProviderID, Customer: c.CustomerID,
				From: month, To: month.AddDate(0, 1, 0), GroupBy: []string{"model"}})
			if u != nil {
				v.Usage = u.Data
			}
		}
		if err != nil {
			h.fail(w, "tokenpay", p, err)
			return
		}
		if _, ok := names[c.ProviderID]; !ok {
			names[c.ProviderID] = ""
			if m, err := h.core.Merchant(ctx, c.ProviderID); err == nil && m != nil {
				names[c.ProviderID] = m.Name
			}
		}
		views = append(views, v)
	}
	p.Names = names
	p.Data = map[string]any{"Credits": views, "More": more, "Month": month.Format("January 2006")}
	h.render(w, http.StatusOK, "tokenpay", p)
}
