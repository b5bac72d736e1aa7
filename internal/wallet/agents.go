package wallet

import (
	"net/http"
	"slices"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/agentid"
	"github.com/paybound/paybound/internal/service"
)

func (h *Handler) agentRoutes() {
	h.mux.HandleFunc("GET /wallet/agents", h.auth(h.agents))
	h.mux.HandleFunc("POST /wallet/agents/{id}/keys/{keyid}/revoke", h.auth(h.revokeKey))
	h.mux.HandleFunc("POST /wallet/agents/{id}/stop", h.auth(h.stopAgent))
	h.mux.HandleFunc("POST /wallet/agents/{id}/revoke", h.auth(h.revokeAgent))
}

// agentCard is one agent as the Agents page shows it.
type agentCard struct {
	ID        string
	Name      string
	Can       pb.Assurance // what its requests can carry now: signed or bearer
	Keys      []agentid.KeyView
	Mandates  []mandateRow
	Spent     map[string]int64 // currency → last 30 days
	Payments  int
	Assurance map[pb.Assurance]int
	Active    int // mandates in force
	RevokedAt *time.Time
}

// agents lists the person's agents (GET /v1/agents), each with its keys,
// its mandates and its last 30 days of payments.
func (h *Handler) agents(w http.ResponseWriter, r *http.Request, ss *session) {
	p := h.base(ss, "Agents", "agents")
	p.Notice = map[string]string{"key": "Key revoked: requests it signs are refused from now on.",
		"stopped": "Every mandate of the agent is revoked: it can no longer pay without asking you.",
		"revoked": "The agent is revoked: its key, its signatures and its mandates are refused from now on."}[r.URL.Query().Get("done")]
	h.showAgents(w, r, ss, p, nil)
}

func (h *Handler) showAgents(w http.ResponseWriter, r *http.Request, ss *session, p page, actErr error) {
	if ss.principal.Role != pb.RoleUser {
		h.fail(w, "agents", p, pb.Errorf(pb.ErrForbidden, "", "agents belong to people"))
		return
	}
	cards := map[string]*agentCard{}
	card := func(id string) *agentCard {
		c := cards[id]
		if c == nil {
			c = &agentCard{ID: id, Spent: map[string]int64{}, Assurance: map[pb.Assurance]int{}}
			cards[id] = c
		}
		return c
	}
	views, err := h.listAgents(r, ss)
	if err != nil {
		h.fail(w, "agents", p, err)
		return
	}
	for _, v := range views {
		c := card(v.ID)
		c.Name, c.Can, c.Keys, c.RevokedAt = v.Name, v.Assurance, v.Keys, v.RevokedAt
	}
	ms, err := h.listMandates(r, ss)
	if err != nil {
		h.fail(w, "agents", p, err)
		return
	}
	now := h.cfg.Clock.Now()
	for _, m := range ms {
		c := card(m.AgentID)
		row := rowOf(m, now)
		if row.Active {
			c.Active++
		}
		c.Mandates = append(c.Mandates, row)
	}
	since := now.Add(-30 * 24 * time.Hour)
	ps, _, err := h.scan(r.Context(), ss.principal, func(x pb.Payment) bool { return x.CreatedAt.Before(since) })
	if err != nil {
		h.fail(w, "agents", p, err)
		return
	}
	for _, x := range ps {
		if x.AgentID == "" {
			continue
		}
		c := card(string(x.AgentID))
		c.Payments++
		c.Assurance[x.Assurance]++
		c.Spent[x.Currency] += spent(x)
	}
	ids := make([]string, 0, len(cards))
	for id := range cards {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(b, a) }) // newest first
	out := make([]*agentCard, 0, len(ids))
	for _, id := range ids {
		out = append(out, cards[id])
	}
	p.Data = map[string]any{"Agents": out, "Idem": randomToken()}
	h.show(w, "agents", p, actErr)
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, ss *session) {
	agent, key := r.PathValue("id"), r.PathValue("keyid")
	idem, err := h.idem(r, ss, "revoke-key", agent, key)
	if err == nil {
		err = outcome(h.ids.RevokeKey(r.Context(), ss.principal, idem, agent, key), idem)
	}
	if err != nil {
		h.showAgents(w, r, ss, h.base(ss, "Agents", "agents"), err)
		return
	}
	http.Redirect(w, r, "/wallet/agents?done=key", http.StatusSeeOther)
}

// stopAgent revokes every mandate of the agent in force: without a
// mandate an agent can only ask (each payment waits for the person).
func (h *Handler) stopAgent(w http.ResponseWriter, r *http.Request, ss *session) {
	agent := r.PathValue("id")
	found, err := h.revokeMandatesOf(r, ss, "stop-agent", agent)
	if err == nil && !found {
		err = pb.Errorf(pb.ErrNotFound, "id", "you have no mandate for agent %s", agent)
	}
	if err != nil {
		h.showAgents(w, r, ss, h.base(ss, "Agents", "agents"), err)
		return
	}
	http.Redirect(w, r, "/wallet/agents?done=stopped", http.StatusSeeOther)
}

// revokeAgent revokes the agent itself (agentid.RevokeAgent: its API key
// and signing keys stop working), after its mandates, so that the page
// shows nothing of it still in force.
func (h *Handler) revokeAgent(w http.ResponseWriter, r *http.Request, ss *session) {
	agent := r.PathValue("id")
	_, err := h.revokeMandatesOf(r, ss, "revoke-agent", agent)
	if err == nil {
		var idem *service.Idempotency
		if idem, err = h.idem(r, ss, "revoke-agent", agent); err == nil {
			err = outcome(h.ids.RevokeAgent(r.Context(), ss.principal, idem, agent), idem)
		}
	}
	if err != nil {
		h.showAgents(w, r, ss, h.base(ss, "Agents", "agents"), err)
		return
	}
	http.Redirect(w, r, "/wallet/agents?done=revoked", http.StatusSeeOther)
}

// revokeMandatesOf revokes the person's mandates of agent still in force,
// each under its own key derived from the form's (action names what the
// form does), and reports whether the person has any mandate of it.
func (h *Handler) revokeMandatesOf(r *http.Request, ss *session, action, agent string) (found bool, err error) {
	idem, err := h.idem(r, ss, action, agent)
	if err != nil {
		return false, err
	}
	ms, err := h.listMandates(r, ss)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.AgentID != agent {
			continue
		}
		found = true
		if m.RevokedAt != nil {
			continue
		}
		one := &service.Idempotency{Caller: idem.Caller, Key: idem.Key + ":" + m.ID, Hash: idem.Hash, Render: idem.Render}
		if err := outcome(h.mdt.Revoke(r.Context(), ss.principal, one, m.ID), one); err != nil {
			return found, err
		}
	}
	return found, nil
}

// maxAgents bounds the agents the Agents page reads.
const maxAgents = 500

// listAgents reads the person's agents, newest first, up to maxAgents.
func (h *Handler) listAgents(r *http.Request, ss *session) ([]agentid.AgentView, error) {
	var out []agentid.AgentView
	after := ""
	for len(out) < maxAgents {
		page, more, err := h.ids.ListAgents(r.Context(), ss.principal, after, pb.MaxListLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}
