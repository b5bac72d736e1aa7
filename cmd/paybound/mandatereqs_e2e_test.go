package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMandateRequestsOverHTTP drives mandate requests through the real
// server: an agent asks, its user sees the request (pending first) and
// approves it, which grants exactly those terms once, and the agent pays
// under the new mandate; refusals, expiry, the cap per agent, every bad
// input (each changes nothing) and another user's request (not found).
func TestMandateRequestsOverHTTP(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	terms := func(reason string) map[string]any {
		return map[string]any{"description": "coffee on weekdays, at most 5 dollars", "currency": "USD", "max_amount": 500,
			"budget": map[string]any{"amount": 1000, "period": "week"}, "merchant_ids": []string{w.merch}, "reason": reason}
	}
	ask := func(body map[string]any) resp {
		clock.Advance(time.Second) // IDs, and so lists, follow time
		return w.call("POST", "/v1/mandate_requests", w.agentKey, "", body)
	}
	requests := func(key, query string) []map[string]any {
		t.Helper()
		l := w.ok(200, w.call("GET", "/v1/mandate_requests"+query, key, "", nil))
		var out []map[string]any
		for _, d := range l.body["data"].([]any) {
			out = append(out, d.(map[string]any))
		}
		return out
	}
	mandates := func() int {
		t.Helper()
		return len(w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil)).body["data"].([]any))
	}

	r1 := w.ok(201, ask(terms("I need to buy your morning coffee")))
	id := r1.str("id")
	if !strings.HasPrefix(id, "mreq_") || r1.str("status") != "pending" || r1.str("agent_id") != w.agent || r1.str("user_id") != w.user ||
		r1.str("reason") != "I need to buy your morning coffee" || r1.str("mandate_id") != "" {
		t.Fatalf("request: %s", r1.raw)
	}
	if exp, _ := time.Parse(time.RFC3339, r1.str("expires_at")); !exp.Equal(clock.Now().Add(7 * 24 * time.Hour).Truncate(time.Second)) {
		t.Fatalf("expires_at %s; want 7 days from now", r1.str("expires_at"))
	}

	// Bad requests: each a clear coded error, and nothing is made.
	long := strings.Repeat("x", 1001)
	other := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Other"}))
	for _, c := range []struct {
		name        string
		key         string
		edit        func(map[string]any)
		status      int
		code, param string
	}{
		{"no reason", w.agentKey, func(b map[string]any) { delete(b, "reason") }, 400, "parameter_missing", "reason"},
		{"a blank reason", w.agentKey, func(b map[string]any) { b["reason"] = "  " }, 400, "parameter_missing", "reason"},
		{"a reason too long", w.agentKey, func(b map[string]any) { b["reason"] = long }, 400, "parameter_invalid", "reason"},
		{"for another agent", w.agentKey, func(b map[string]any) { b["agent_id"] = other.str("id") }, 400, "parameter_invalid", "agent_id"},
		{"no max_amount", w.agentKey, func(b map[string]any) { delete(b, "max_amount") }, 400, "parameter_missing", "max_amount"},
		{"no budget", w.agentKey, func(b map[string]any) { delete(b, "budget") }, 400, "parameter_missing", "budget.amount"},
		{"no currency", w.agentKey, func(b map[string]any) { delete(b, "currency") }, 400, "parameter_missing", "currency"},
		{"no description", w.agentKey, func(b map[string]any) { b["description"] = "" }, 400, "parameter_missing", "description"},
		{"a bad expiry", w.agentKey, func(b map[string]any) { b["expires_at"] = "soon" }, 400, "parameter_invalid", "expires_at"},
		{"a bad condition", w.agentKey, func(b map[string]any) { b["condition"] = "payment.amont > 1" }, 400, "parameter_invalid", "condition"},
		{"an unknown field", w.agentKey, func(b map[string]any) { b["please"] = true }, 400, "unknown_field", "please"},
		{"max above budget", w.agentKey, func(b map[string]any) { b["max_amount"] = 5000 }, 400, "parameter_invalid", "max_amount"},
		{"a user asking", w.userKey, func(map[string]any) {}, 403, "forbidden", ""},
		{"a merchant asking", w.merchKey, func(map[string]any) {}, 403, "forbidden", ""},
	} {
		b := terms("why")
		c.edit(b)
		r := w.call("POST", "/v1/mandate_requests", c.key, "", b)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("%s: %d %s; want %d %s %s", c.name, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	if rs := requests(w.userKey, ""); len(rs) != 1 {
		t.Fatalf("bad requests were stored: %v", rs)
	}

	// Another user neither sees nor decides it.
	u2 := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bob"}))
	u2Key := u2.str("api_key")
	for _, path := range []string{"/v1/mandate_requests/" + id, "/v1/mandate_requests/mreq_00000000000000000000000000", "/v1/mandate_requests/mdt_x"} {
		if r := w.call("GET", path, u2Key, "", nil); r.status != 404 || r.errField("code") != "resource_missing" {
			t.Errorf("another user reads %s: %d %s", path, r.status, r.raw)
		}
	}
	for _, verb := range []string{"approve", "refuse"} {
		if r := w.call("POST", "/v1/mandate_requests/"+id+"/"+verb, u2Key, "", nil); r.status != 404 {
			t.Errorf("another user's %s: %d %s", verb, r.status, r.raw)
		}
		if r := w.call("POST", "/v1/mandate_requests/"+id+"/"+verb, w.agentKey, "", nil); r.status != 403 {
			t.Errorf("the agent's %s: %d %s", verb, r.status, r.raw)
		}
	}
	if rs := requests(u2Key, ""); len(rs) != 0 {
		t.Fatalf("another user lists %v", rs)
	}
	if r := w.call("GET", "/v1/mandate_requests?status=maybe", w.userKey, "", nil); r.status != 400 || r.errField("param") != "status" {
		t.Fatalf("a bad status filter: %d %s", r.status, r.raw)
	}
	if r := w.call("GET", "/v1/mandate_requests", w.merchKey, "", nil); r.status != 403 {
		t.Fatalf("a merchant lists requests: %d %s", r.status, r.raw)
	}

	// Approved: the mandate has exactly the terms, once.
	a := w.ok(200, w.call("POST", "/v1/mandate_requests/"+id+"/approve", w.userKey, "approve-1", nil))
	mid := a.str("mandate_id")
	if again := w.ok(200, w.call("POST", "/v1/mandate_requests/"+id+"/approve", w.userKey, "approve-1", nil)); again.str("mandate_id") != mid {
		t.Fatalf("a retried approval: %s; want the first answer %s", again.raw, a.raw)
	}
	if a.str("status") != "approved" || !strings.HasPrefix(mid, "mdt_") || a.str("decided_at") == "" {
		t.Fatalf("approved: %s", a.raw)
	}
	m := w.ok(200, w.call("GET", "/v1/mandates/"+mid, w.agentKey, "", nil))
	if m.str("agent_id") != w.agent || m.num("max_amount") != 500 || m.num("remaining_budget") != 1000 ||
		m.str("description") != "coffee on weekdays, at most 5 dollars" || m.str("revoked_at") != "" {
		t.Fatalf("the mandate granted: %s", m.raw)
	}
	if r := w.call("POST", "/v1/mandate_requests/"+id+"/approve", w.userKey, "", nil); r.status != 409 || r.errField("code") != "mandate_request_unexpected_state" {
		t.Fatalf("approved twice: %d %s", r.status, r.raw)
	}
	if r := w.call("POST", "/v1/mandate_requests/"+id+"/refuse", w.userKey, "", nil); r.status != 409 {
		t.Fatalf("refused once approved: %d %s", r.status, r.raw)
	}
	if n := mandates(); n != 1 {
		t.Fatalf("%d mandates after approving twice; want 1", n)
	}
	p := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 450, "currency": "USD",
		"merchant_id": w.merch, "mandate_id": mid}))
	if p.str("status") != "captured" {
		t.Fatalf("a payment under the granted mandate: %s", p.raw)
	}
	if r := w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 450, "currency": "USD",
		"merchant_id": w.merch2, "mandate_id": mid}); r.errField("code") != "mandate_merchant_not_allowed" {
		t.Fatalf("the granted mandate's merchants: %d %s", r.status, r.raw)
	}

	// Refused: no mandate. Pending ones list first.
	r2 := w.ok(201, ask(terms("second")))
	w.ok(200, w.call("POST", "/v1/mandate_requests/"+r2.str("id")+"/refuse", w.userKey, "", nil))
	if r := w.call("POST", "/v1/mandate_requests/"+r2.str("id")+"/approve", w.userKey, "", nil); r.status != 409 {
		t.Fatalf("approved once refused: %d %s", r.status, r.raw)
	}
	r3 := w.ok(201, ask(terms("third")))
	r4 := w.ok(201, ask(terms("fourth")))
	w.ok(200, w.call("POST", "/v1/mandate_requests/"+r4.str("id")+"/refuse", w.userKey, "", nil))
	got := []string{}
	for _, r := range requests(w.userKey, "") {
		got = append(got, r["reason"].(string)+":"+r["status"].(string))
	}
	if strings.Join(got, ",") != "third:pending,fourth:refused,second:refused,I need to buy your morning coffee:approved" {
		t.Fatalf("the user's list: %v", got)
	}
	if rs := requests(w.agentKey, "?status=pending"); len(rs) != 1 || rs[0]["id"] != r3.str("id") {
		t.Fatalf("the agent's pending: %v", rs)
	}
	if n := mandates(); n != 1 {
		t.Fatalf("%d mandates after refusals; want 1", n)
	}

	// The cap: 20 waiting per agent.
	for range 19 {
		w.ok(201, ask(terms("more")))
	}
	if r := ask(terms("one too many")); r.status != 409 || r.errField("code") != "too_many_mandate_requests" {
		t.Fatalf("the 21st waiting request: %d %s", r.status, r.raw)
	}

	// Expiry: a week later they are expired, and cannot be approved.
	clock.Advance(7*24*time.Hour + time.Second)
	if g := w.ok(200, w.call("GET", "/v1/mandate_requests/"+r3.str("id"), w.userKey, "", nil)); g.str("status") != "expired" {
		t.Fatalf("a week later: %s", g.raw)
	}
	if r := w.call("POST", "/v1/mandate_requests/"+r3.str("id")+"/approve", w.userKey, "", nil); r.status != 409 || r.errField("code") != "mandate_request_unexpected_state" {
		t.Fatalf("approving an expired request: %d %s", r.status, r.raw)
	}
	if rs := requests(w.userKey, "?status=expired&limit=100"); len(rs) != 20 {
		t.Fatalf("%d expired; want 20", len(rs))
	}
	if rs := requests(w.userKey, "?status=pending"); len(rs) != 0 {
		t.Fatalf("pending after a week: %v", rs)
	}
	w.ok(201, ask(terms("after the week"))) // expired ones no longer count
	if n := mandates(); n != 1 {
		t.Fatalf("%d mandates at the end; want 1", n)
	}
	w.verify()
}

// TestMandateRequestApprovedOnce approves one request from many clients
// at once: one approval, one mandate.
func TestMandateRequestApprovedOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	r := w.ok(201, w.call("POST", "/v1/mandate_requests", w.agentKey, "", map[string]any{"description": "books", "currency": "USD",
		"max_amount": 500, "budget": map[string]any{"amount": 1000}, "reason": "for the course", "expires_at": "2099-01-01T00:00:00Z"}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[int]int{}
	for range 20 {
		wg.Go(func() {
			s := w.call("POST", "/v1/mandate_requests/"+r.str("id")+"/approve", w.userKey, "", nil).status
			mu.Lock()
			out[s]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if out[200] != 1 || out[409] != 19 {
		t.Fatalf("statuses %v; want one 200 and nineteen 409", out)
	}
	l := w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil))
	if ms := l.body["data"].([]any); len(ms) != 1 || ms[0].(map[string]any)["expires_at"] != "2099-01-01T00:00:00Z" {
		t.Fatalf("mandates: %s", l.raw)
	}
}

// TestCLIMandateRequests: an agent asks with `paybound mandates request`,
// its user lists, approves and refuses with `mandates requests|approve|
// refuse`, and the SDK's calls underneath answer as the API does.
func TestCLIMandateRequests(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ask := func(reason string) string {
		t.Helper()
		out, errOut, err := w.cli(w.agentKey, "mandates", "request", "--reason", reason, "--description", "lunch on weekdays",
			"--currency", "usd", "--max", "12.50", "--budget", "60.00", "--period", "week", "--merchants", w.merch)
		id := strings.Fields(out + " ")[0]
		if err != nil || !strings.HasPrefix(id, "mreq_") || !strings.Contains(out, "pending until") {
			t.Fatalf("mandates request: %q %q %v", out, errOut, err)
		}
		return id
	}
	first, second := ask("to order your lunch"), ask("a second try")
	if _, _, err := w.cli(w.agentKey, "mandates", "request", "--description", "x", "--currency", "usd", "--max", "1", "--budget", "1"); err == nil ||
		!strings.Contains(err.Error(), "--reason is required") {
		t.Fatalf("a request without a reason: %v", err)
	}
	out, _, err := w.cli(w.userKey, "mandates", "requests")
	if err != nil || !strings.Contains(out, first) || !strings.Contains(out, "up to 12.50 USD per payment, 60.00 USD per week") ||
		!strings.Contains(out, `"to order your lunch"`) {
		t.Fatalf("mandates requests: %q %v", out, err)
	}
	out, _, err = w.cli(w.userKey, "mandates", "approve", first)
	if err != nil || !regexp.MustCompile(`approved: mandate mdt_\w+ granted to `+w.agent).MatchString(out) {
		t.Fatalf("mandates approve: %q %v", out, err)
	}
	if out, _, err = w.cli(w.userKey, "mandates", "refuse", second); err != nil || !strings.Contains(out, second+" refused") {
		t.Fatalf("mandates refuse: %q %v", out, err)
	}
	if _, _, err = w.cli(w.userKey, "mandates", "approve", second); err == nil || !strings.Contains(err.Error(), "refused already") {
		t.Fatalf("approving a refused request: %v", err)
	}
	if out, _, err = w.cli(w.agentKey, "mandates", "requests", "--status", "approved"); err != nil || !strings.Contains(out, first) || strings.Contains(out, second) {
		t.Fatalf("the agent's approved requests: %q %v", out, err)
	}
	if out, _, err = w.cli(w.userKey, "mandates", "list"); err != nil || strings.Count(out, "mdt_") != 1 || !strings.Contains(out, "12.50 USD  60.00  60.00/week") {
		t.Fatalf("mandates list: %q %v", out, err)
	}
}

// TestSignedMandateRequest: an agent that signs its requests (RFC 9421)
// asks for a mandate; its user approves it.
func TestSignedMandateRequest(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	sg, jwk := newSigner(t)
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "signer", "public_key": json.RawMessage(jwk)}))
	body := []byte(`{"description":"train tickets","currency":"USD","max_amount":900,"budget":{"amount":900},"reason":"your trip on Friday","require_signature":true}`)
	r := send(t, sg.signed(t, "POST", w.m.URL()+"/v1/mandate_requests", body, "sreq-1", time.Now(), nil))
	if r.status != 201 || r.str("agent_id") != ag.str("id") || r.str("user_id") != w.user {
		t.Fatalf("a signed mandate request: %d %s", r.status, r.raw)
	}
	a := w.ok(200, w.call("POST", "/v1/mandate_requests/"+r.str("id")+"/approve", w.userKey, "", nil))
	m := w.ok(200, w.call("GET", "/v1/mandates/"+a.str("mandate_id"), w.userKey, "", nil))
	if m.str("agent_id") != ag.str("id") || m.body["require_signature"] != true {
		t.Fatalf("the mandate granted to the signing agent: %s", m.raw)
	}
}

// BenchmarkMandateRequest: an agent asks and its user approves, over
// HTTP against the real server (two requests, two commits, one mandate
// an iteration).
func BenchmarkMandateRequest(b *testing.B) {
	w := newWorld(b, nil)
	body := map[string]any{"description": "books", "currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000}, "reason": "the course"}
	for b.Loop() {
		r := w.ok(201, w.call("POST", "/v1/mandate_requests", w.agentKey, "", body))
		w.ok(200, w.call("POST", "/v1/mandate_requests/"+r.str("id")+"/approve", w.userKey, "", nil))
	}
}
