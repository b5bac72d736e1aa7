package main

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// TestWalletTabs: the person's agent opens an x402 tab with a seller; the
// Tabs page shows its payee, deposit, that what was spent is not known
// until the seller claims, and its expiry; the person closes it there (the
// tab is closing, the seller may still claim); another person sees no tab
// and cannot close it.
func TestWalletTabs(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	s := w.tabSeller(t, filepath.Join(t.TempDir(), "tabs.jsonl"))
	c, tr := w.tabClient()
	for range 3 {
		if res, body := getWith(t, c, s.srv.URL+"/tick"); res.StatusCode != 200 || body != "tock" {
			t.Fatalf("tick: %d %s", res.StatusCode, body)
		}
	}
	tabs := tr.Tabs()
	if len(tabs) != 1 {
		t.Fatalf("tabs: %+v", tabs)
	}
	id := tabs[0].ID
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	pg := b.get("/wallet/tabs")
	wantStatus(t, "tabs", pg, 200, id)
	for _, want := range []string{"Cafe", "0.10 USD", "not known until the seller claims (open)", `action="/wallet/tabs/` + id + `/close"`} {
		if !strings.Contains(pg.body, want) {
			t.Errorf("the Tabs page lacks %q", want)
		}
	}
	// Another person: nothing shown, and closing is not found.
	u2 := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bob"}))
	b2 := newBrowser(t, w.m.URL())
	b2.signIn(u2.str("api_key"))
	if p := b2.get("/wallet/tabs"); p.status != 200 || strings.Contains(p.body, id) {
		t.Fatalf("Bob's Tabs page: %d %.300s", p.status, p.body)
	}
	wantStatus(t, "Bob closes Ada's tab", b2.form("/wallet/tabs/"+id+"/close", url.Values{"idem": {"bob"}}), 404, "")
	wantStatus(t, "without the CSRF token", b.form("/wallet/tabs/"+id+"/close", url.Values{"csrf": {"x"}, "idem": {"k"}}), 403, "")
	if st := w.tab(id).str("status"); st != "open" {
		t.Fatalf("refused closes changed the tab: %s", st)
	}
	// Ada closes it.
	b.get("/wallet/tabs")
	for range 2 {
		wantStatus(t, "close", b.form("/wallet/tabs/"+id+"/close", url.Values{"idem": {"close-1"}}), 303, "")
	}
	if st := w.tab(id).str("status"); st != "closing" {
		t.Fatalf("after closing in the wallet: %s", st)
	}
	pg = b.get("/wallet/tabs?done=closed")
	wantStatus(t, "closed", pg, 200, "Tab closed")
	if !strings.Contains(pg.body, "closing: the seller may claim until") {
		t.Fatalf("the closing tab: %.2000s", pg.body)
	}
	w.verify()
}
