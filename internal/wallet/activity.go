package wallet

import (
	"encoding/csv"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

func (h *Handler) activityRoutes() {
	h.mux.HandleFunc("GET /wallet/activity", h.auth(h.activity))
	h.mux.HandleFunc("GET /wallet/activity.csv", h.auth(h.activityCSV))
}

// activityFilter is the activity page's query: agent, status, date range
// (inclusive days, UTC) and a search in the ID, description and merchant.
type activityFilter struct {
	Agent, Status, From, To, Q string
	from, to                   time.Time
}

func parseFilter(r *http.Request) (activityFilter, error) {
	q := r.URL.Query()
	f := activityFilter{Agent: q.Get("agent"), Status: q.Get("status"), From: q.Get("from"), To: q.Get("to"), Q: strings.TrimSpace(q.Get("q"))}
	for _, v := range []string{f.Agent, f.Status, f.From, f.To, f.Q} {
		if len(v) > 200 {
			return f, pb.Errorf(pb.ErrParameterInvalid, "q", "a filter is at most 200 characters")
		}
	}
	if f.Status != "" && !slices.Contains(statuses, pb.PaymentStatus(f.Status)) {
		return f, pb.Errorf(pb.ErrParameterInvalid, "status", "status must be one of %v", statuses)
	}
	var err error
	if f.From != "" {
		if f.from, err = time.Parse(time.DateOnly, f.From); err != nil {
			return f, pb.Errorf(pb.ErrParameterInvalid, "from", "from must be a date, YYYY-MM-DD")
		}
	}
	if f.To != "" {
		if f.to, err = time.Parse(time.DateOnly, f.To); err != nil {
			return f, pb.Errorf(pb.ErrParameterInvalid, "to", "to must be a date, YYYY-MM-DD")
		}
		f.to = f.to.Add(24 * time.Hour)
	}
	return f, nil
}

var statuses = []pb.PaymentStatus{pb.StatusRequiresConfirmation, pb.StatusAuthorized, pb.StatusCaptured,
	pb.StatusRefunded, pb.StatusCanceled, pb.StatusExpired, pb.StatusDeclined}

// query is f as the activity's query string.
func (f activityFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"agent": f.Agent, "status": f.Status, "from": f.From, "to": f.To, "q": f.Q} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (f activityFilter) match(p pb.Payment) bool {
	if f.Agent != "" && string(p.AgentID) != f.Agent {
		return false
	}
	if f.Status != "" && string(p.Status) != f.Status {
		return false
	}
	if !f.from.IsZero() && p.CreatedAt.Before(f.from) {
		return false
	}
	if !f.to.IsZero() && !p.CreatedAt.Before(f.to) {
		return false
	}
	if f.Q != "" {
		q := strings.ToLower(f.Q)
		if !strings.Contains(strings.ToLower(p.Description), q) && !strings.Contains(p.ID, f.Q) && !strings.Contains(strings.ToLower(p.MerchantID), q) {
			return false
		}
	}
	return true
}

// rowsPerPage bounds the activity page's table (a page stays far under
// 100 KB); the CSV export has every matching payment.
const rowsPerPage = 100

type activityData struct {
	Filter   activityFilter
	Rows     []pb.Payment
	Page     int
	Older    template.URL // the next page, "" on the last
	Newer    template.URL // the previous page, "" on the first
	Agents   []string
	Statuses []pb.PaymentStatus
	Partial  bool
	Export   template.URL // the CSV of the same filter
}

func (h *Handler) filtered(r *http.Request, ss *session) (activityFilter, []pb.Payment, []string, bool, error) {
	f, err := parseFilter(r)
	if err != nil {
		return f, nil, nil, false, err
	}
	ps, more, err := h.scan(r.Context(), ss.principal, func(x pb.Payment) bool { return !f.from.IsZero() && x.CreatedAt.Before(f.from) })
	if err != nil {
		return f, nil, nil, false, err
	}
	var rows []pb.Payment
	seen := map[string]bool{}
	var agents []string
	for _, x := range ps {
		if a := string(x.AgentID); a != "" && !seen[a] {
			seen[a] = true
			agents = append(agents, a)
		}
		if f.match(x) {
			rows = append(rows, x)
		}
	}
	slices.Sort(agents)
	return f, rows, agents, more, nil
}

func (h *Handler) activity(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Activity", "activity")
	f, rows, agents, more, err := h.filtered(r, ss)
	p.Data = activityData{Filter: f, Statuses: statuses}
	if err != nil {
		h.fail(w, "activity", p, err)
		return
	}
	n := 1
	if v := r.URL.Query().Get("page"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > maxScan/rowsPerPage {
			h.fail(w, "activity", p, pb.Errorf(pb.ErrParameterInvalid, "page", "page must be a number from 1 to %d", maxScan/rowsPerPage))
			return
		}
	}
	d := activityData{Filter: f, Agents: agents, Statuses: statuses, Partial: more, Page: n,
		Export: template.URL("/wallet/activity.csv?" + f.query().Encode())}
	q := r.URL.Query()
	if from := (n - 1) * rowsPerPage; from < len(rows) {
		d.Rows = rows[from:min(len(rows), from+rowsPerPage)]
		if from+rowsPerPage < len(rows) {
			q.Set("page", strconv.Itoa(n+1))
			d.Older = template.URL("/wallet/activity?" + q.Encode())
		}
	}
	if n > 1 {
		q.Set("page", strconv.Itoa(n-1))
		d.Newer = template.URL("/wallet/activity?" + q.Encode())
	}
	p.Data = d
	p.Names = h.names(r.Context(), d.Rows...)
	h.render(w, http.StatusOK, "activity", p)
}

// activityCSV exports the filtered activity. Cells that a spreadsheet
// would run as a formula are prefixed with a quote.
func (h *Handler) activityCSV(w http.ResponseWriter, r *http.Request, ss *session) {
	_, rows, _, _, err := h.filtered(r, ss)
	if err != nil {
		h.fail(w, "refused", h.base(ss, "Refused", ""), err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="paybound-activity.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "created_at", "status", "amount", "currency", "agent_id", "mandate_id", "merchant_id", "payer_id", "description", "risk_decision", "decline_code"})
	for _, x := range rows {
		risk := ""
		if x.Risk != nil {
			risk = string(x.Risk.Decision)
		}
		cw.Write([]string{x.ID, x.CreatedAt.UTC().Format(time.RFC3339), string(x.Status), pb.FormatAmount(x.Amount, x.Currency), x.Currency,
			string(x.AgentID), string(x.MandateID), x.MerchantID, x.PayerID, cell(x.Description), risk, string(x.DeclineCode)})
	}
	cw.Flush()
}

func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
