package wallet

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/service"
)

func (h *Handler) mandateRoutes() {
	h.mux.HandleFunc("GET /wallet/mandates", h.auth(h.mandates))
	h.mux.HandleFunc("GET /wallet/mandates/new", h.auth(h.mandateForm))
	h.mux.HandleFunc("POST /wallet/mandates", h.auth(h.createMandate))
	h.mux.HandleFunc("POST /wallet/mandates/{id}/revoke", h.auth(h.revokeMandate))
	h.mux.HandleFunc("POST /wallet/mandates/{id}/card", h.auth(h.issueCard))
	h.mux.HandleFunc("POST /wallet/mandates/{id}/cards/{card}/revoke", h.auth(h.revokeCard))
	h.mux.HandleFunc("POST /wallet/mandate_requests/{id}/approve", h.auth(h.decideRequest(true)))
	h.mux.HandleFunc("POST /wallet/mandate_requests/{id}/refuse", h.auth(h.decideRequest(false)))
}

// mandateRow is a mandate with its budget bar.
type mandateRow struct {
	mandates.View
	Used    int64
	Percent int // of the budget used, 0–100
	Active  bool
	Cards   []checkout.CardView // the agent cards issued under it
}

func (h *Handler) listMandates(r *http.Request, ss *session) ([]mandates.View, error) {
	return pages(func(after string) ([]mandates.View, bool, error) {
		return h.mdt.List(r.Context(), ss.principal, after, 100)
	}, func(m mandates.View) string { return m.ID })
}

// rowOf is mandate m as of now, with its budget bar.
func rowOf(m mandates.View, now time.Time) mandateRow {
	row := mandateRow{View: m, Used: m.Budget.Amount - m.RemainingBudget,
		Active: m.RevokedAt == nil && (m.ExpiresAt == nil || now.Before(*m.ExpiresAt))}
	if m.Budget.Amount > 0 {
		row.Percent = int(min(100, max(0, row.Used*100/m.Budget.Amount)))
	}
	return row
}

func (h *Handler) mandates(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Mandates", "mandates")
	p.Notice = map[string]string{"created": "Mandate granted.", "replaced": "Mandate replaced: the new one is in force and the old one revoked.",
		"revoked":  "Mandate revoked: the agent's next payment under it will be declined.",
		"card":     "Card revoked: the agent can no longer delegate it, nor pay with what it delegated; the mandate's other cards still work.",
		"approved": "Request approved: the mandate it asked for is granted.", "refused": "Request refused: no mandate was granted."}[r.URL.Query().Get("done")]
	h.showMandates(w, r, ss, p, nil)
}

func (h *Handler) showMandates(w http.ResponseWriter, r *http.Request, ss *session, p page, actErr error) {
	if ss.principal.Role != pb.RoleUser {
		h.fail(w, "mandates", p, pb.Errorf(pb.ErrForbidden, "", "mandates are a person's grants to their agents"))
		return
	}
	ms, err := h.listMandates(r, ss)
	if err != nil {
		h.fail(w, "mandates", p, err)
		return
	}
	now := h.cfg.Clock.Now()
	rows := make([]mandateRow, 0, len(ms))
	for _, m := range ms {
		row := rowOf(m, now)
		if row.Cards, err = h.co.MandateCards(r.Context(), ss.principal, m.ID); err != nil {
			h.fail(w, "mandates", p, err)
			return
		}
		rows = append(rows, row)
	}
	// The agents' requests waiting for the person: one page (an agent has
	// at most pb.MaxPendingMandateRequests waiting).
	reqs, _, err := h.reqs.List(r.Context(), ss.principal, pb.MandateRequestPending, "", pb.MaxListLimit)
	if err != nil {
		h.fail(w, "mandates", p, err)
		return
	}
	p.Data = map[string]any{"Mandates": rows, "Requests": reqs, "Idem": randomToken()}
	h.show(w, "mandates", p, actErr)
}

// mandateInput is the create form's fields, as typed (re-shown on a
// refusal).
type mandateInput struct {
	Replace, AgentID, Description, Currency, MaxAmount, Budget, Period string
	Merchants, Categories, ValidFrom, ExpiresAt, Days, Start, End      string
	TimeZone, MaxPayments, ConfirmAbove                                string
	RequireSignature                                                   bool
}

var periods = []pb.BudgetPeriod{pb.PeriodDay, pb.PeriodWeek, pb.PeriodMonth, pb.PeriodTotal}

func (h *Handler) mandateForm(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "New mandate", "mandates")
	in := mandateInput{Currency: "USD", Period: "week", TimeZone: "UTC"}
	if id := r.URL.Query().Get("replace"); id != "" {
		m, err := h.mdt.Mandate(r.Context(), ss.principal, id)
		if err != nil {
			h.fail(w, "mandate_form", h.formPage(p, in), err)
			return
		}
		in = inputOf(m.Mandate)
		p.Title = "Replace mandate " + m.ID
	}
	if a := r.URL.Query().Get("agent"); a != "" && in.AgentID == "" && len(a) < 100 {
		in.AgentID = a
	}
	h.render(w, http.StatusOK, "mandate_form", h.formPage(p, in))
}

func (h *Handler) formPage(p page, in mandateInput) page {
	p.Data = map[string]any{"In": in, "Periods": periods, "Idem": randomToken()}
	return p
}

// inputOf fills the form from mandate m, to replace it.
func inputOf(m pb.Mandate) mandateInput {
	in := mandateInput{Replace: m.ID, AgentID: m.AgentID, Description: m.Description, Currency: m.Currency,
		MaxAmount: pb.FormatAmount(m.MaxAmount, m.Currency), Budget: pb.FormatAmount(m.Budget.Amount, m.Currency),
		Period: string(m.Budget.Period), Merchants: strings.Join(m.MerchantIDs, ", "), Categories: strings.Join(m.Categories, ", "),
		RequireSignature: m.RequireSignature, TimeZone: "UTC"}
	if m.ExpiresAt != nil {
		in.ExpiresAt = m.ExpiresAt.UTC().Format(time.DateOnly)
	}
	if m.MaxPayments > 0 {
		in.MaxPayments = strconv.FormatInt(m.MaxPayments, 10)
	}
	if m.ConfirmAbove > 0 {
		in.ConfirmAbove = pb.FormatAmount(m.ConfirmAbove, m.Currency)
	}
	if s := m.Schedule; s != nil {
		in.Days, in.Start, in.End, in.TimeZone = strings.Join(s.Days, ", "), s.Start, s.End, s.TimeZone
	}
	return in
}

func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// parse turns the form into a mandate; the mandate's own validation
// (Create) checks the rest.
func (in mandateInput) parse() (pb.Mandate, error) {
	cur := strings.ToUpper(strings.TrimSpace(in.Currency))
	if err := pb.ValidateCurrency(cur, "currency"); err != nil {
		return pb.Mandate{}, err
	}
	m := pb.Mandate{AgentID: strings.TrimSpace(in.AgentID), Description: in.Description, Currency: cur,
		Budget: pb.Budget{Period: pb.BudgetPeriod(in.Period)}, MerchantIDs: list(in.Merchants), Categories: list(in.Categories)}
	if m.AgentID == "" {
		return m, pb.Errorf(pb.ErrParameterMissing, "agent_id", "say which agent the mandate is for (its agt_… ID)")
	}
	amount := func(s, param string, required bool) (int64, error) {
		s = strings.TrimSpace(s)
		if s == "" {
			if required {
				return 0, pb.Errorf(pb.ErrParameterMissing, param, "%s is required", strings.ReplaceAll(param, "_", " "))
			}
			return 0, nil
		}
		return pb.ParseAmount(s, cur)
	}
	var err error
	if m.MaxAmount, err = amount(in.MaxAmount, "max_amount", true); err != nil {
		return m, err
	}
	if m.Budget.Amount, err = amount(in.Budget, "budget", true); err != nil {
		return m, err
	}
	if m.ConfirmAbove, err = amount(in.ConfirmAbove, "confirm_above", false); err != nil {
		return m, err
	}
	if s := strings.TrimSpace(in.MaxPayments); s != "" {
		if m.MaxPayments, err = strconv.ParseInt(s, 10, 64); err != nil || m.MaxPayments < 0 {
			return m, pb.Errorf(pb.ErrParameterInvalid, "max_payments", "max payments must be a whole number")
		}
	}
	if s := strings.TrimSpace(in.ExpiresAt); s != "" {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return m, pb.Errorf(pb.ErrParameterInvalid, "expires_at", "the end date must be a date, YYYY-MM-DD")
		}
		m.ExpiresAt = &t
	}
	if s := strings.TrimSpace(in.ValidFrom); s != "" {
		if m.ValidFrom, err = time.Parse(time.DateOnly, s); err != nil {
			return m, pb.Errorf(pb.ErrParameterInvalid, "valid_from", "the start date must be a date, YYYY-MM-DD")
		}
	}
	if days := list(strings.ToLower(in.Days)); len(days) > 0 || in.Start != "" || in.End != "" {
		m.Schedule = &pb.Schedule{Days: days, Start: in.Start, End: in.End, TimeZone: cmpOr(strings.TrimSpace(in.TimeZone), "UTC")}
	}
	return m, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *Handler) createMandate(w http.ResponseWriter, r *http.Request, ss *session) {
	f := r.PostFormValue
	in := mandateInput{Replace: f("replace"), AgentID: f("agent_id"), Description: f("description"), Currency: f("currency"),
		MaxAmount: f("max_amount"), Budget: f("budget"), Period: f("period"), Merchants: f("merchant_ids"),
		Categories: f("categories"), ValidFrom: f("valid_from"), ExpiresAt: f("expires_at"), Days: f("days"), Start: f("start"),
		End: f("end"), TimeZone: f("time_zone"), MaxPayments: f("max_payments"), ConfirmAbove: f("confirm_above"),
		RequireSignature: f("require_signature") == "on"}
	p := h.base(ss, "New mandate", "mandates")
	refuse := func(err error) { h.fail(w, "mandate_form", h.formPage(p, in), err) }
	m, err := in.parse()
	if err != nil {
		refuse(err)
		return
	}
	vals := []string{in.Replace, in.AgentID, in.Description, in.Currency, in.MaxAmount, in.Budget, in.Period, in.Merchants,
		in.Categories, in.ValidFrom, in.ExpiresAt, in.Days, in.Start, in.End, in.TimeZone, in.MaxPayments, in.ConfirmAbove,
		strconv.FormatBool(in.RequireSignature)}
	idem, err := h.idem(r, ss, "mandate", vals...)
	if err != nil {
		refuse(err)
		return
	}
	if in.Replace != "" { // the old one must be the caller's, and in force
		old, err := h.mdt.Mandate(r.Context(), ss.principal, in.Replace)
		if err != nil {
			refuse(err)
			return
		}
		if old.RevokedAt != nil {
			refuse(pb.Errorf(pb.ErrParameterInvalid, "replace", "mandate %s is already revoked; create a new one instead", old.ID))
			return
		}
	}
	rs := in.RequireSignature
	if err := outcome(h.mdt.Create(r.Context(), ss.principal, idem, m, &rs), idem); err != nil {
		refuse(err)
		return
	}
	done := "created"
	if in.Replace != "" {
		// The new mandate is in force; now the old one goes. Two
		// operations: if this one fails, both are in force until the
		// person revokes the old one, which the page says.
		rev := &service.Idempotency{Caller: idem.Caller, Key: idem.Key + ":revoke", Hash: idem.Hash, Render: idem.Render}
		if err := outcome(h.mdt.Revoke(r.Context(), ss.principal, rev, in.Replace), rev); err != nil {
			h.showMandates(w, r, ss, h.base(ss, "Mandates", "mandates"), err)
			return
		}
		done = "replaced"
	}
	http.Redirect(w, r, "/wallet/mandates?done="+done, http.StatusSeeOther)
}

func (h *Handler) revokeMandate(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	idem, err := h.idem(r, ss, "revoke-mandate", id)
	if err == nil {
		err = outcome(h.mdt.Revoke(r.Context(), ss.principal, idem, id), idem)
	}
	if err != nil {
		h.showMandates(w, r, ss, h.base(ss, "Mandates", "mandates"), err)
		return
	}
	http.Redirect(w, r, "/wallet/mandates?done=revoked", http.StatusSeeOther)
}

// revokeCard revokes one agent card of the mandate (checkout's
// RevokeCard); the mandate and its other cards stay.
func (h *Handler) revokeCard(w http.ResponseWriter, r *http.Request, ss *session) {
	id, card := r.PathValue("id"), r.PathValue("card")
	idem, err := h.idem(r, ss, "revoke-card", id, card)
	if err == nil {
		err = outcome(h.co.RevokeCard(r.Context(), ss.principal, idem, id, card), idem)
	}
	if err != nil {
		h.showMandates(w, r, ss, h.base(ss, "Mandates", "mandates"), err)
		return
	}
	http.Redirect(w, r, "/wallet/mandates?done=card", http.StatusSeeOther)
}

// issueCard issues an agent card bound to the mandate (checkout's
// IssueCard): the number is shown on this answer only, and the answer
// stored under the form's key is sealed, as the API's. Submitted again,
// the form finds the card issued and says the number was shown once.
func (h *Handler) issueCard(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	idem, err := h.idem(r, ss, "issue-card", id)
	var res service.Result
	if err == nil {
		idem.Seal = h.core.Seal
		res = h.co.IssueCard(r.Context(), ss.principal, idem, id)
		err = outcome(res, idem)
	}
	if err == nil && res.Replayed {
		err = pb.Errorf(pb.ErrIdempotencyConflict, "", "this card was issued already; its number was shown once, when it was issued")
	}
	if err != nil {
		h.showMandates(w, r, ss, h.base(ss, "Mandates", "mandates"), err)
		return
	}
	p := h.base(ss, "Agent card", "mandates")
	p.Data = res.Value
	h.render(w, http.StatusCreated, "card", p)
}

// decideRequest approves or refuses an agent's mandate request, as POST
// /v1/mandate_requests/{id}/approve or /refuse does.
func (h *Handler) decideRequest(approve bool) func(http.ResponseWriter, *http.Request, *session) {
	action, decide, done := "refuse-request", h.reqs.Refuse, "refused"
	if approve {
		action, decide, done = "approve-request", h.reqs.Approve, "approved"
	}
	return func(w http.ResponseWriter, r *http.Request, ss *session) {
		id := r.PathValue("id")
		idem, err := h.idem(r, ss, action, id)
		if err == nil {
			err = outcome(decide(r.Context(), ss.principal, idem, id), idem)
		}
		if err != nil {
			h.showMandates(w, r, ss, h.base(ss, "Mandates", "mandates"), err)
			return
		}
		http.Redirect(w, r, "/wallet/mandates?done="+done, http.StatusSeeOther)
	}
}
