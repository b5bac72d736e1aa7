package wallet

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
)

func (h *Handler) approvalRoutes() {
	h.mux.HandleFunc("GET /wallet/approvals", h.auth(h.approvals))
	h.mux.HandleFunc("POST /wallet/approvals/{id}/options", h.auth(h.approvalOptions))
	h.mux.HandleFunc("POST /wallet/approvals/{id}/passkey", h.auth(h.approvePasskey))
	h.mux.HandleFunc("POST /wallet/approvals/{id}/code", h.auth(h.approveCode))
	h.mux.HandleFunc("POST /wallet/approvals/{id}/deny", h.auth(h.deny))
}

// approval is a payment waiting for the person, as the page explains it.
type approval struct {
	ConfirmationID string
	Payment        pb.Payment
	Expires        time.Time
	Why            []string
}

// why says, in plain words, why payment p needs the person: no mandate
// covers it, it is above the mandate's confirm-above amount, or risk
// control asked for a review (with its signals).
func why(p pb.Payment) []string {
	var out []string
	switch {
	case p.Risk != nil && p.Risk.Decision == pb.RiskReview:
		out = append(out, "Risk control asked you to look at it first.")
		for _, s := range p.Risk.Signals {
			line := "Signal: " + strings.ReplaceAll(s.Name, "_", " ")
			if s.Reason != "" {
				line += " — " + s.Reason
			}
			out = append(out, line+".")
		}
	case p.MandateID == "":
		out = append(out, "The agent has no mandate for this payment, so only you can allow it.")
	default:
		out = append(out, fmt.Sprintf("It is above the amount its mandate %s lets the agent pay without asking you.", p.MandateID))
	}
	return out
}

func (h *Handler) approvals(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Approvals", "approvals")
	p.Notice = map[string]string{"approved": "Approved: the payment went through.", "denied": "Denied: the payment will not be made."}[r.URL.Query().Get("done")]
	h.showApprovals(w, r, ss, p, nil)
}

func (h *Handler) showApprovals(w http.ResponseWriter, r *http.Request, ss *session, p page, actErr error) {
	if ss.principal.Role != pb.RoleUser {
		h.fail(w, "approvals", p, pb.Errorf(pb.ErrForbidden, "", "approvals are a person's; merchants have none"))
		return
	}
	cs, _, err := h.cfm.PendingConfirmations(r.Context(), ss.principal, "", 100)
	if err != nil {
		h.fail(w, "approvals", p, err)
		return
	}
	var list []approval
	for _, c := range cs {
		list = append(list, approval{ConfirmationID: c.ID, Payment: *c.Payment, Expires: c.ExpiresAt, Why: why(*c.Payment)})
	}
	ps := make([]pb.Payment, len(list))
	for i, a := range list {
		ps[i] = a.Payment
	}
	p.Names = h.names(r.Context(), ps...)
	p.Data = map[string]any{"Approvals": list, "Idem": randomToken()}
	h.show(w, "approvals", p, actErr)
}

// approvalOptions: the options for navigator.credentials.get() bound to
// this one payment (step-up's challenge commits to its ID, amount,
// currency and merchant).
func (h *Handler) approvalOptions(w http.ResponseWriter, r *http.Request, ss *session) {
	opts, err := h.cfm.PasskeyApprovalOptions(r.Context(), ss.principal, r.PathValue("id"))
	if err != nil {
		h.jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, opts)
}

func (h *Handler) approvePasskey(w http.ResponseWriter, r *http.Request, ss *session) {
	body, err := readBody(r, "passkey")
	if err != nil {
		h.jsonError(w, err)
		return
	}
	// No idempotency key: an assertion answers one challenge of one
	// payment, and a replay finds the payment no longer waiting.
	res := h.cfm.ApproveWithPasskey(r.Context(), ss.principal, nil, r.PathValue("id"), body)
	if res.Err != nil {
		h.jsonError(w, res.Err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/wallet/approvals?done=approved"})
}

func (h *Handler) approveCode(w http.ResponseWriter, r *http.Request, ss *session) {
	code := strings.TrimSpace(r.PostFormValue("code"))
	if code == "" {
		h.showApprovals(w, r, ss, h.base(ss, "Approvals", "approvals"), pb.Errorf(pb.ErrParameterMissing, "code", "enter the 6 digits your authenticator app shows"))
		return
	}
	h.approvalAct(w, r, ss, "approved", func(idem *service.Idempotency) service.Result {
		return h.cfm.ApproveWithTOTP(r.Context(), ss.principal, idem, r.PathValue("id"), code)
	}, code)
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request, ss *session) {
	h.approvalAct(w, r, ss, "denied", func(idem *service.Idempotency) service.Result {
		return h.cfm.Deny(r.Context(), ss.principal, idem, r.PathValue("id"))
	})
}

func (h *Handler) approvalAct(w http.ResponseWriter, r *http.Request, ss *session, done string, run func(*service.Idempotency) service.Result, values ...string) {
	idem, err := h.idem(r, ss, "approval-"+done, append([]string{r.PathValue("id")}, values...)...)
	if err == nil {
		err = outcome(run(idem), idem)
	}
	if err != nil {
		h.showApprovals(w, r, ss, h.base(ss, "Approvals", "approvals"), err)
		return
	}
	http.Redirect(w, r, "/wallet/approvals?done="+url.QueryEscape(done), http.StatusSeeOther)
}
