package wallet

import (
	"net/http"

	pb "github.com/paybound/paybound"
)

// metadataTab is the metadata key of an x402 tab's deposit payment that
// names its tab (x402pay's). The payer writes a payment's metadata, so the
// tab it names is read through x402pay's party check, never trusted.
const metadataTab = "x402_tab"

func (h *Handler) tabRoutes() {
	h.mux.HandleFunc("GET /wallet/tabs", h.auth(h.tabsPage))
	h.mux.HandleFunc("POST /wallet/tabs/{id}/close", h.auth(h.closeTab))
}

// tabsPage lists the person's agents' x402 tabs still open or closing:
// each one's payee, deposit, what the seller claimed (known only once it
// claims: the vouchers stay with the seller until then) and expiry. The
// tabs are found through their deposits, which are the person's held
// payments (the facilitator has no list of a payer's tabs).
func (h *Handler) tabsPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Tabs", "tabs")
	p.Notice = map[string]string{"closed": "Tab closed: the seller may still claim what your agent used for a short while, then the rest of the deposit comes back."}[r.URL.Query().Get("done")]
	h.showTabs(w, r, ss, p, nil)
}

func (h *Handler) showTabs(w http.ResponseWriter, r *http.Request, ss *session, p page, actErr error) {
	if ss.principal.Role != pb.RoleUser {
		h.fail(w, "tabs", p, pb.Errorf(pb.ErrForbidden, "", "tabs are a person's agents' deposits with sellers"))
		return
	}
	ps, more, err := h.scan(r.Context(), ss.principal, nil)
	if err != nil {
		h.fail(w, "tabs", p, err)
		return
	}
	var deposits []pb.Payment
	var tabs []*pb.Tab
	for _, x := range ps {
		id := x.Metadata[metadataTab]
		if id == "" || x.Status != pb.StatusAuthorized {
			continue
		}
		t, err := h.tabs.Tab(r.Context(), ss.principal, id)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && t.PaymentID != x.ID) {
			continue // metadata naming a tab that is not this payment's
		}
		if err != nil {
			h.fail(w, "tabs", p, err)
			return
		}
		if t.Status == pb.TabOpen || t.Status == pb.TabClosing {
			tabs, deposits = append(tabs, t), append(deposits, x)
		}
	}
	p.Names = h.names(r.Context(), deposits...)
	p.Data = map[string]any{"Tabs": tabs, "More": more, "Idem": randomToken()}
	h.show(w, "tabs", p, actErr)
}

// closeTab closes a tab from the payer's side, as POST
// /x402/tabs/{id}/close does (closing a closing tab answers it as it is).
func (h *Handler) closeTab(w http.ResponseWriter, r *http.Request, ss *session) {
	if _, err := h.idem(r, ss, "close-tab", r.PathValue("id")); err != nil {
		h.showTabs(w, r, ss, h.base(ss, "Tabs", "tabs"), err)
		return
	}
	if _, err := h.tabs.Close(r.Context(), ss.principal, r.PathValue("id")); err != nil {
		h.showTabs(w, r, ss, h.base(ss, "Tabs", "tabs"), err)
		return
	}
	http.Redirect(w, r, "/wallet/tabs?done=closed", http.StatusSeeOther)
}
