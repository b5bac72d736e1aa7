package paylinks

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
)

func TestWantsJSON(t *testing.T) {
	for _, c := range []struct {
		accept string
		want   bool
	}{
		{"application/json", true},
		{"application/problem+json", true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"*/*", false},
		{"", false},
		{"application/json;q=0.5, text/html", false},
		{"text/html;q=0.5, application/json", true},
		{"application/json;q=0", false},
		{"application/json;q=abc", false},
	} {
		var in []string
		if c.accept != "" {
			in = []string{c.accept}
		}
		if got := wantsJSON(in); got != c.want {
			t.Errorf("wantsJSON(%q) = %v, want %v", c.accept, got, c.want)
		}
	}
}

// FuzzWantsJSON: any Accept header is answered, without panic.
func FuzzWantsJSON(f *testing.F) {
	f.Add("text/html;q=0.5, application/json")
	f.Add("application/json;q=1e400")
	f.Fuzz(func(t *testing.T, accept string) {
		got := wantsJSON(strings.Split(accept, "\n"))
		if got && !strings.Contains(accept, "json") {
			t.Fatalf("JSON for %q", accept)
		}
	})
}

// TestPageStyleHash: the page's one style is the one its CSP allows, by
// hash, and the page has nothing else to load or run.
func TestPageStyleHash(t *testing.T) {
	left := int64(2)
	b, err := Page(&pb.PayLinkOffer{ID: "plink_x", MerchantName: "Café <Ü>", Description: "soup & bread", AmountDisplay: "4.20",
		Currency: "EUR", Status: "open", UsesLeft: &left, Pay: pb.PayLinkCall{URL: "https://pay.example.com/v1/payment_links/plink_x/payments"}})
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	i, j := strings.Index(page, "<style>"), strings.Index(page, "</style>")
	if i < 0 || j < i {
		t.Fatalf("no style:\n%s", page)
	}
	h := sha256.Sum256([]byte(page[i+len("<style>") : j]))
	if want := "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"; !strings.Contains(PageCSP, want) {
		t.Fatalf("the CSP %q does not allow the page's style (%s)", PageCSP, want)
	}
	for _, bad := range []string{"<script", "src=", "href=", "Café <Ü>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q:\n%s", bad, page)
		}
	}
	if !strings.Contains(page, "2 payment(s) left") || !strings.Contains(page, "Café &lt;Ü&gt;") {
		t.Errorf("the page:\n%s", page)
	}
}
