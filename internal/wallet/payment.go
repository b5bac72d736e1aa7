package wallet

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
	tl "github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
)

func (h *Handler) paymentRoutes() {
	h.mux.HandleFunc("GET /wallet/payments/{id}", h.auth(h.paymentPage))
	h.mux.HandleFunc("POST /wallet/payments/{id}/refund", h.auth(h.refund))
	h.mux.HandleFunc("POST /wallet/payments/{id}/cancel", h.auth(h.cancel))
	h.mux.HandleFunc("POST /wallet/payments/{id}/dispute", h.auth(h.dispute))
}

// traceRow is one entry of a payment's trace as the page shows it.
type traceRow struct {
	Index    int64
	Type     string
	Entry    string
	Redacted bool
	Reason   string
	Verified bool
}

type paymentData struct {
	Payment    pb.Payment
	Role       pb.Role
	Idem       string
	Disputes   []pb.Dispute
	Reasons    []pb.DisputeReason
	CanRefund  bool
	CanCancel  bool
	CanDispute bool
	Trace      []traceRow
	Verified   bool
	TreeSize   int64
	TraceError string
}

// paymentPage shows one payment and its trace. The "verified" mark is
// proven here, on the wallet's server, in this process: the checkpoint's
// signature is checked against the log's public key (the one served at
// /v1/log/key) and each entry's inclusion proof against that checkpoint.
// The browser trusts the server for this; a person who does not can
// download the receipt and check it with the SDK or `paybound log`.
func (h *Handler) paymentPage(w http.ResponseWriter, r *http.Request, ss *session) {
	notice := map[string]string{"refund": "Refunded.", "cancel": "Canceled: the hold is released.",
		"dispute": "Dispute opened. The operator will resolve it; follow it here.", "paid": "Paid."}[r.URL.Query().Get("done")]
	h.showPayment(w, r, ss, http.StatusOK, notice, nil)
}

// showPayment renders payment {id} for ss, with notice, or with err (an
// action's refusal) at status.
func (h *Handler) showPayment(w http.ResponseWriter, r *http.Request, ss *session, status int, notice string, actErr error) {
	p := h.base(ss, "Payment", "activity")
	id := r.PathValue("id")
	pay, err := h.core.Payment(r.Context(), ss.principal, id)
	if err != nil {
		h.fail(w, "payment", p, err)
		return
	}
	d := paymentData{Payment: *pay, Role: ss.principal.Role, Idem: randomToken(), Reasons: pb.DisputeReasons}
	p.Title, p.Notice = "Payment "+pay.ID, notice
	p.Names = h.names(r.Context(), *pay)
	isUser, isMerchant := ss.principal.Role == pb.RoleUser, ss.principal.Role == pb.RoleMerchant
	d.CanRefund = isMerchant && pay.Status == pb.StatusCaptured && pay.AmountRefunded < pay.AmountCaptured
	d.CanCancel = pay.Status == pb.StatusAuthorized
	ds, err := h.paymentDisputes(r, ss, pay.ID)
	if err != nil {
		h.fail(w, "payment", p, err)
		return
	}
	d.Disputes = ds
	open := slices.ContainsFunc(ds, func(x pb.Dispute) bool { return x.Status == pb.DisputeOpen })
	d.CanDispute = isUser && pay.Status == pb.StatusCaptured && pay.AmountRefunded < pay.AmountCaptured && !open
	tr, err := h.log.PaymentTrace(r.Context(), ss.principal, id)
	if err != nil {
		d.TraceError = "The trace is not available right now; reload in a moment."
		h.cfg.Logger.Warn("wallet: trace failed", "payment", id, "err", err)
	} else {
		d.Trace, d.TreeSize, d.Verified = verifyTrace(tr, h.log.LogKey())
	}
	p.Data = d
	if actErr != nil {
		h.fail(w, "payment", p, actErr)
		return
	}
	h.render(w, status, "payment", p)
}

// paymentDisputes are the caller's disputes of payment id, newest first
// (of the caller's latest maxRows).
func (h *Handler) paymentDisputes(r *http.Request, ss *session, id string) ([]pb.Dispute, error) {
	ds, err := pages(func(after string) ([]pb.Dispute, bool, error) {
		return h.disp.List(r.Context(), ss.principal, "", after, 100)
	}, func(d pb.Dispute) string { return d.ID })
	return slices.DeleteFunc(ds, func(d pb.Dispute) bool { return d.PaymentID != id }), err
}

// act runs a payment action and answers: back to the payment page with a
// notice, or the page again with the refusal.
func (h *Handler) act(w http.ResponseWriter, r *http.Request, ss *session, done string, run func(*service.Idempotency) service.Result, values ...string) {
	idem, err := h.idem(r, ss, done, append([]string{r.PathValue("id")}, values...)...)
	if err == nil {
		err = outcome(run(idem), idem)
	}
	if err != nil {
		h.showPayment(w, r, ss, 0, "", err)
		return
	}
	http.Redirect(w, r, "/wallet/payments/"+url.PathEscape(r.PathValue("id"))+"?done="+done, http.StatusSeeOther)
}

// refund (merchant) refunds an amount of a captured payment.
func (h *Handler) refund(w http.ResponseWriter, r *http.Request, ss *session) {
	pay, err := h.core.Payment(r.Context(), ss.principal, r.PathValue("id"))
	if err != nil {
		h.fail(w, "payment", h.base(ss, "Payment", "activity"), err)
		return
	}
	in, reason := strings.TrimSpace(r.PostFormValue("amount")), r.PostFormValue("reason")
	var amount *int64
	if in != "" {
		a, err := pb.ParseAmount(in, pay.Currency)
		if err != nil {
			h.showPayment(w, r, ss, 0, "", err)
			return
		}
		amount = &a
	}
	h.act(w, r, ss, "refund", func(idem *service.Idempotency) service.Result {
		return h.core.Refund(r.Context(), ss.principal, idem, pay.ID, amount, reason)
	}, in, reason)
}

// cancel (payer or merchant) voids an authorized payment's hold.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, ss *session) {
	h.act(w, r, ss, "cancel", func(idem *service.Idempotency) service.Result {
		return h.core.Cancel(r.Context(), ss.principal, idem, r.PathValue("id"))
	})
}

// dispute (payer) opens a dispute of a captured payment.
func (h *Handler) dispute(w http.ResponseWriter, r *http.Request, ss *session) {
	reason, details := pb.DisputeReason(r.PostFormValue("reason")), r.PostFormValue("details")
	if reason == "" {
		h.showPayment(w, r, ss, 0, "", pb.Errorf(pb.ErrParameterMissing, "reason", "choose what went wrong"))
		return
	}
	h.act(w, r, ss, "dispute", func(idem *service.Idempotency) service.Result {
		return h.disp.Open(r.Context(), ss.principal, idem, r.PathValue("id"), reason, details)
	}, string(reason), details)
}

// verifyTrace checks tr's checkpoint against vkey and each readable
// entry's inclusion proof against it; all is true when the checkpoint and
// every entry shown verified.
func verifyTrace(tr *translog.Trace, vkey string) (rows []traceRow, size int64, all bool) {
	c, err := tl.Open([]byte(tr.Checkpoint), vkey)
	all = err == nil && len(tr.Entries) > 0
	if err == nil {
		size = c.Size
	}
	for _, e := range tr.Entries {
		row := traceRow{Index: e.Index, Type: e.Type, Entry: e.Entry, Redacted: e.Redacted, Reason: e.Reason}
		if !e.Redacted && err == nil {
			row.Verified = tl.VerifyInclusion([]byte(e.Entry), e.Index, decodeProof(e.InclusionProof), c) == nil
			if row.Type == "" {
				row.Type = entryType(e.Entry)
			}
		}
		if !e.Redacted && !row.Verified {
			all = false
		}
		rows = append(rows, row)
	}
	return rows, size, all
}

func decodeProof(hs []string) []tl.Hash {
	out := make([]tl.Hash, 0, len(hs))
	for _, s := range hs {
		b, err := base64.StdEncoding.DecodeString(s)
		var hh tl.Hash
		if err != nil || len(b) != len(hh) {
			return nil
		}
		copy(hh[:], b)
		out = append(out, hh)
	}
	return out
}

// entryType reads the "type" of a log entry's JSON without decoding it
// all.
func entryType(entry string) string {
	const k = `"type":"`
	i := strings.Index(entry, k)
	if i < 0 {
		return "entry"
	}
	rest := entry[i+len(k):]
	if j := strings.IndexByte(rest, '"'); j >= 0 && j < 64 {
		return rest[:j]
	}
	return "entry"
}
