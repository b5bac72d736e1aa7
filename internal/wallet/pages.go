package wallet

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// maxScan bounds how many of a principal's latest payments one page reads
// (the core lists 100 at a time, newest first): the overview's 30 days,
// the activity list and its export stop there and say so.
const maxScan = 2000

// section is one entry of the navigation. A capability that adds pages to
// the wallet (x402 tabs, Token Pay subscriptions and credits, when they
// exist) adds its routes in a file of its own and one line here.
type section struct {
	Key, Label, Path string
	Roles            []pb.Role
}

var (
	person   = []pb.Role{pb.RoleUser}
	merchant = []pb.Role{pb.RoleMerchant}
	both     = []pb.Role{pb.RoleUser, pb.RoleMerchant}
)

var sections = []section{
	{"overview", "Overview", "/wallet/", both},
	{"activity", "Activity", "/wallet/activity", both},
	{"approvals", "Approvals", "/wallet/approvals", person},
	{"mandates", "Mandates", "/wallet/mandates", person},
	{"agents", "Agents", "/wallet/agents", person},
	{"tabs", "Tabs", "/wallet/tabs", person},
	{"tokenpay", "Token Pay", "/wallet/tokenpay", person},
	{"disputes", "Disputes", "/wallet/disputes", both},
	{"webhooks", "Webhooks", "/wallet/webhooks", merchant},
	{"settlement", "Settlement", "/wallet/settlement", merchant},
	{"passkeys", "Passkeys", "/wallet/passkeys", person},
}

// nav is the sections role sees.
func nav(role pb.Role) []section {
	var out []section
	for _, s := range sections {
		if slices.Contains(s.Roles, role) {
			out = append(out, s)
		}
	}
	return out
}

var funcs = template.FuncMap{
	"nav": nav,
	"merchant": func(names map[string]string, id string) string {
		if n := names[id]; n != "" {
			return n
		}
		return id
	},
	// short fits a chart's label in its 160 pixels; the table beside the
	// chart has it whole.
	"short": func(s string) string {
		if r := []rune(s); len(r) > 19 {
			return string(r[:18]) + "…"
		}
		return s
	},
	"money": func(amount int64, currency string) string { return pb.FormatAmount(amount, currency) + " " + currency },
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"opt":   func(s pb.OptString) string { return string(s) },
}

func (h *Handler) pageRoutes() {
	h.mux.HandleFunc("GET /wallet/{$}", h.auth(h.overview))
	h.activityRoutes()
	h.paymentRoutes()
	h.approvalRoutes()
	h.mandateRoutes()
	h.agentRoutes()
	h.merchantRoutes()
	h.tabRoutes()
	h.tokenPayRoutes()
}

// names returns the names of the merchants of ps (IDs whose merchant
// can't be read are left out: the page shows the ID).
func (h *Handler) names(ctx context.Context, ps ...pb.Payment) map[string]string {
	out := map[string]string{}
	for _, p := range ps {
		if _, ok := out[p.MerchantID]; ok || len(out) >= 200 {
			continue
		}
		out[p.MerchantID] = ""
		if m, err := h.core.Merchant(ctx, p.MerchantID); err == nil && m != nil {
			out[p.MerchantID] = m.Name
		}
	}
	return out
}

func (h *Handler) base(ss *session, title, nav string) page {
	return page{Title: title, Nav: nav, Principal: ss.principal, CSRF: ss.csrf}
}

// scan reads the principal's payments, newest first, until stop says so
// or maxScan are read; more reports that some were left unread.
func (h *Handler) scan(ctx context.Context, p pb.Principal, stop func(pb.Payment) bool) (out []pb.Payment, more bool, err error) {
	after := ""
	for len(out) < maxScan {
		ps, has, err := h.core.ListPayments(ctx, p, after, 100)
		if err != nil {
			return nil, false, err
		}
		for _, x := range ps {
			if stop != nil && stop(x) {
				return out, false, nil
			}
			out = append(out, x)
		}
		if !has || len(ps) == 0 {
			return out, false, nil
		}
		after = ps[len(ps)-1].ID
	}
	return out, true, nil
}

// spent is what a payment cost its payer so far: captured less refunded,
// or the amount still held.
func spent(p pb.Payment) int64 {
	switch p.Status {
	case pb.StatusAuthorized:
		return p.Amount
	case pb.StatusCaptured, pb.StatusRefunded:
		return p.AmountCaptured - p.AmountRefunded
	}
	return 0
}

// bar is one bar of a chart.
type bar struct {
	Label  string
	Amount string
	Y      int
	Width  int
}

// chart is a horizontal bar chart of one currency's sums, drawn on the
// server as SVG: readable without JavaScript, and with a table beside it
// for screen readers.
type chart struct {
	Title    string
	Currency string
	Bars     []bar
	Height   int
}

func makeChart(title, currency string, sums map[string]int64) chart {
	type kv struct {
		k string
		v int64
	}
	var list []kv
	var top int64
	for k, v := range sums {
		list = append(list, kv{k, v})
		top = max(top, v)
	}
	slices.SortFunc(list, func(a, b kv) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	if len(list) > 8 {
		var rest int64
		for _, x := range list[7:] {
			rest += x.v
		}
		list = append(list[:7], kv{"everything else", rest})
		top = max(top, rest)
	}
	c := chart{Title: title, Currency: currency, Height: 8 + 28*len(list)}
	for i, x := range list {
		w := 0
		if top > 0 {
			w = int(x.v * 300 / top)
		}
		c.Bars = append(c.Bars, bar{Label: x.k, Amount: pb.FormatAmount(x.v, currency) + " " + currency, Y: 4 + 28*i, Width: max(w, 2)})
	}
	return c
}

type overviewData struct {
	Balances []pb.Balance
	Pending  []pendingRow
	Charts   []chart
	Partial  bool
	Welcome  string // how the person just signed in: "key" or "code"
}

type pendingRow struct {
	ConfirmationID string
	Payment        pb.Payment
	Expires        time.Time
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Overview", "overview")
	ctx := r.Context()
	d := overviewData{Welcome: r.URL.Query().Get("welcome")}
	var err error
	if d.Balances, err = h.core.Balances(ctx, ss.principal); err != nil {
		h.fail(w, "overview", p, err)
		return
	}
	if ss.principal.Role == pb.RoleUser {
		cs, _, err := h.cfm.PendingConfirmations(ctx, ss.principal, "", 100)
		if err != nil {
			h.fail(w, "overview", p, err)
			return
		}
		for _, c := range cs {
			d.Pending = append(d.Pending, pendingRow{ConfirmationID: c.ID, Payment: *c.Payment, Expires: c.ExpiresAt})
			p.Names = h.names(ctx, *c.Payment)
		}
	}
	since := h.cfg.Clock.Now().Add(-30 * 24 * time.Hour)
	ps, more, err := h.scan(ctx, ss.principal, func(x pb.Payment) bool { return x.CreatedAt.Before(since) })
	if err != nil {
		h.fail(w, "overview", p, err)
		return
	}
	d.Partial = more
	byAgent := map[string]map[string]int64{} // currency → agent → sum
	byCat := map[string]map[string]int64{}
	cats := map[string]string{}
	for _, x := range ps {
		amt := spent(x)
		if amt == 0 {
			continue
		}
		who := string(x.AgentID)
		if ss.principal.Role == pb.RoleMerchant {
			who = x.PayerID
		} else if who == "" {
			who = "you (no agent)"
		}
		cat, ok := cats[x.MerchantID]
		if !ok {
			cat = "uncategorised"
			if m, err := h.core.Merchant(ctx, x.MerchantID); err == nil && m.Category != "" {
				cat = m.Category
			}
			cats[x.MerchantID] = cat
		}
		if byAgent[x.Currency] == nil {
			byAgent[x.Currency], byCat[x.Currency] = map[string]int64{}, map[string]int64{}
		}
		byAgent[x.Currency][who] += amt
		byCat[x.Currency][cat] += amt
	}
	curs := make([]string, 0, len(byAgent))
	for c := range byAgent {
		curs = append(curs, c)
	}
	slices.Sort(curs)
	first := "agent"
	if ss.principal.Role == pb.RoleMerchant {
		first = "payer"
	}
	for _, c := range curs {
		d.Charts = append(d.Charts, makeChart("By "+first+", "+c, c, byAgent[c]), makeChart("By category, "+c, c, byCat[c]))
	}
	p.Data = d
	h.render(w, http.StatusOK, "overview", p)
}
