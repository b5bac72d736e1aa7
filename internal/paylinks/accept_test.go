package paylinks

import (
	"strings"
	"testing"
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
