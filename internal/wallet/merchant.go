package wallet

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/settlement"
)

// maxRows bounds the disputes, endpoints and deliveries one page reads.
const maxRows = 500

func (h *Handler) merchantRoutes() {
	h.mux.HandleFunc("GET /wallet/disputes", h.auth(h.disputes))
	h.mux.HandleFunc("GET /wallet/webhooks", h.auth(h.webhooks))
	h.mux.HandleFunc("GET /wallet/webhooks/{id}", h.auth(h.webhook))
	h.mux.HandleFunc("POST /wallet/webhooks/{id}/test", h.auth(h.testWebhook))
	h.mux.HandleFunc("GET /wallet/settlement", h.auth(h.settlementPage))
	h.mux.HandleFunc("GET /wallet/settlement.csv", h.auth(h.settlementCSV))
	h.mux.HandleFunc("GET /wallet/pay/{id}", h.payLink)
	h.mux.HandleFunc("POST /wallet/pay/{id}", h.auth(h.payLinkPay))
}

// pages reads up to maxRows items of a list the API pages through.
func pages[T any](read func(after string) ([]T, bool, error), id func(T) string) ([]T, error) {
	var out []T
	after := ""
	for len(out) < maxRows {
		xs, more, err := read(after)
		if err != nil {
			return nil, err
		}
		out = append(out, xs...)
		if !more || len(xs) == 0 {
			break
		}
		after = id(xs[len(xs)-1])
	}
	return out, nil
}

// disputes lists the person's disputes, or those against the merchant,
// newest first.
func (h *Handler) disputes(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Disputes", "disputes")
	ds, err := pages(func(after string) ([]pb.Dispute, bool, error) {
		return h.disp.List(r.Context(), ss.principal, "", after, 100)
	}, func(d pb.Dispute) string { return d.ID })
	if err != nil {
		h.fail(w, "disputes", p, err)
		return
	}
	p.Data = ds
	h.render(w, http.StatusOK, "disputes", p)
}

func (h *Handler) merchantOnly(w http.ResponseWriter, ss *session, name string, p page) bool {
	if ss.principal.Role != pb.RoleMerchant {
		h.fail(w, name, p, pb.Errorf(pb.ErrForbidden, "", "this page is a merchant's; sign in with the merchant's key"))
		return false
	}
	return true
}

func (h *Handler) webhooks(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Webhooks", "webhooks")
	if !h.merchantOnly(w, ss, "webhooks", p) {
		return
	}
	es, err := pages(func(after string) ([]pb.WebhookEndpoint, bool, error) {
		return h.hooks.List(r.Context(), ss.principal, after, 100)
	}, func(e pb.WebhookEndpoint) string { return e.ID })
	if err != nil {
		h.fail(w, "webhooks", p, err)
		return
	}
	p.Data = es
	h.render(w, http.StatusOK, "webhooks", p)
}

// webhook shows one endpoint and its latest deliveries.
func (h *Handler) webhook(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Webhook endpoint", "webhooks")
	if r.URL.Query().Get("done") == "test" {
		p.Notice = "A test event is on its way; its delivery appears below."
	}
	h.showWebhook(w, r, ss, p, nil)
}

func (h *Handler) showWebhook(w http.ResponseWriter, r *http.Request, ss *session, p page, actErr error) {
	if !h.merchantOnly(w, ss, "webhook", p) {
		return
	}
	e, err := h.hooks.Endpoint(r.Context(), ss.principal, r.PathValue("id"))
	if err != nil {
		h.fail(w, "webhook", p, err)
		return
	}
	ds, _, err := h.hooks.Deliveries(r.Context(), ss.principal, e.ID, "", 100)
	if err != nil {
		h.fail(w, "webhook", p, err)
		return
	}
	p.Data = map[string]any{"Endpoint": e, "Deliveries": ds, "Idem": randomToken()}
	h.show(w, "webhook", p, actErr)
}

func (h *Handler) testWebhook(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	idem, err := h.idem(r, ss, "webhook-test", id)
	if err == nil {
		err = outcome(h.hooks.Test(r.Context(), ss.principal, idem, id), idem)
	}
	if err != nil {
		h.showWebhook(w, r, ss, h.base(ss, "Webhook endpoint", "webhooks"), err)
		return
	}
	http.Redirect(w, r, "/wallet/webhooks/"+url.PathEscape(id)+"?done=test", http.StatusSeeOther)
}

// settlementRange reads the from/to dates (UTC days, to inclusive); by
// default the last 30 days, today included.
func (h *Handler) settlementRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	today := h.cfg.Clock.Now().UTC().Truncate(24 * time.Hour)
	from, to = today.Add(-29*24*time.Hour), today.Add(24*time.Hour)
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			return from, to, pb.Errorf(pb.ErrParameterInvalid, "from", "from must be a date, YYYY-MM-DD")
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			return from, to, pb.Errorf(pb.ErrParameterInvalid, "to", "to must be a date, YYYY-MM-DD")
		}
		to = to.Add(24 * time.Hour)
	}
	return from, to, nil
}

// report reads the merchant's settlement report for the request's dates;
// on a refusal it has answered, and returns nil.
func (h *Handler) report(w http.ResponseWriter, r *http.Request, ss *session, p page) *pb.SettlementReport {
	if !h.merchantOnly(w, ss, "settlement", p) {
		return nil
	}
	from, to, err := h.settlementRange(r)
	if err == nil {
		var rep *pb.SettlementReport
		if rep, err = h.settle.Report(r.Context(), ss.principal, from, to); err == nil {
			return rep
		}
	}
	h.fail(w, "settlement", p, err)
	return nil
}

func (h *Handler) settlementPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Settlement", "settlement")
	p.Data = map[string]any{"From": r.URL.Query().Get("from"), "To": r.URL.Query().Get("to")}
	rep := h.report(w, r, ss, p)
	if rep == nil {
		return
	}
	last := rep.To.Add(-24 * time.Hour).Format(time.DateOnly)
	p.Data = map[string]any{"From": rep.From.Format(time.DateOnly), "To": last, "Report": rep,
		"CSV": template.URL("/wallet/settlement.csv?" + url.Values{"from": {rep.From.Format(time.DateOnly)}, "to": {last}}.Encode())}
	h.render(w, http.StatusOK, "settlement", p)
}

// settlementCSV downloads the report as the API's CSV.
func (h *Handler) settlementCSV(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Settlement", "settlement")
	rep := h.report(w, r, ss, p)
	if rep == nil {
		return
	}
	b, err := settlement.CSV(rep)
	if err != nil {
		h.fail(w, "settlement", p, err)
		return
	}
	name := "settlement_" + rep.MerchantID + "_" + rep.From.Format("20060102") + "_" + rep.To.Format("20060102") + ".csv"
	w.Header().Set("Content-Type", "text/csv; charset=utf-8; header=present")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Write(b)
}

// payLink is the page a person lands on from a payment link: the offer
// (public, as the link's own page), and a button that pays it from the
// signed-in person's wallet; signed out, the button signs in first.
func (h *Handler) payLink(w http.ResponseWriter, r *http.Request) {
	ss := h.session(r)
	p := page{Title: "Pay"}
	if ss != nil {
		p = h.base(ss, "Pay", "")
	}
	h.showPayLink(w, r, ss, p, nil)
}

func (h *Handler) showPayLink(w http.ResponseWriter, r *http.Request, ss *session, p page, actErr error) {
	o, err := h.links.Offer(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, "paylink", p, err)
		return
	}
	p.Title = "Pay " + o.MerchantName
	d := map[string]any{"Offer": o, "Idem": randomToken(), "SignedIn": ss != nil,
		"Next": "/wallet/pay/" + url.PathEscape(o.ID)}
	if ss != nil {
		d["CanPay"] = ss.principal.Role == pb.RoleUser
		if bs, err := h.core.Balances(r.Context(), ss.principal); err == nil {
			for _, b := range bs {
				if b.Currency == o.Currency {
					d["Available"] = b.Available
				}
			}
		}
	}
	p.Data = d
	h.show(w, "paylink", p, actErr)
}

// payLinkPay pays the link from the person's wallet, once per form (its
// idempotency key), and opens the payment.
func (h *Handler) payLinkPay(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	idem, err := h.idem(r, ss, "pay-link", id)
	var res service.Result
	if err == nil {
		res = h.links.Pay(r.Context(), ss.principal, idem, id, "")
		err = outcome(res, idem)
	}
	if err != nil {
		if e := (*pb.Error)(nil); errors.As(err, &e) && e.PaymentID != "" {
			// A decline is a payment too: show it.
			http.Redirect(w, r, "/wallet/payments/"+url.PathEscape(e.PaymentID), http.StatusSeeOther)
			return
		}
		h.showPayLink(w, r, ss, h.base(ss, "Pay", ""), err)
		return
	}
	pid := ""
	if p, ok := res.Value.(*pb.Payment); ok {
		pid = p.ID
	} else if res.Replayed {
		pid = replayedID(idem.Body)
	}
	if pid == "" {
		http.Redirect(w, r, "/wallet/activity", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/wallet/payments/"+url.PathEscape(pid)+"?done=paid", http.StatusSeeOther)
}

// replayedID reads the "id" of a stored JSON answer.
func replayedID(body []byte) string {
	const k = `"id":"`
	s := string(body)
	i := strings.Index(s, k)
	if i < 0 {
		return ""
	}
	s = s[i+len(k):]
	if j := strings.IndexByte(s, '"'); j > 0 && j < 64 {
		return s[:j]
	}
	return ""
}
