package httpsig

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestMessageIsTheRequest: a Message filled in by hand, as a transport
// other than net/http would, has the signature base of the request it
// describes, for every derived component, and verifies its signature.
func TestMessageIsTheRequest(t *testing.T) {
	key := rfcKey(t)
	all := []string{"@method", "@authority", "@scheme", "@path", "@query", "@request-target", "@target-uri", "content-digest"}
	for _, c := range []struct {
		target string
		m      Message
	}{
		{"https://API.Paybound.test:443/v1/pay%20ments?b=2&a=1",
			Message{Method: "POST", Scheme: "https", Authority: "API.Paybound.test:443", Path: "/v1/pay%20ments", Query: "?b=2&a=1"}},
		{"http://paybound.test:8080/v1/x?",
			Message{Method: "POST", Scheme: "http", Authority: "paybound.test:8080", Path: "/v1/x", Query: "?"}},
		{"http://paybound.test",
			Message{Method: "POST", Scheme: "http", Authority: "paybound.test"}},
	} {
		body := []byte(`{"amount":100}`)
		r := httptest.NewRequest("POST", c.target, strings.NewReader(string(body)))
		r.Header.Set("Content-Digest", ContentDigest(body))
		now := time.Unix(1_700_000_000, 0)
		if err := Sign(r, c.m.Scheme, "sig1", Params{Components: all, Created: now, Expires: now.Add(time.Minute), KeyID: "k", Nonce: "n"}, key); err != nil {
			t.Fatal(err)
		}
		sigs, err := Parse(r.Header)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Base(r, c.m.Scheme, &sigs[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := RequestMessage(r, c.m.Scheme, body); got.Authority != c.m.Authority || got.Path != c.m.Path || got.Query != c.m.Query {
			t.Errorf("%s: RequestMessage gives %+v; want %+v", c.target, got, c.m)
		}
		m := c.m
		m.Header = http.Header{}
		for k, vs := range r.Header {
			m.Header[k] = vs
		}
		got, err := m.Base(&sigs[0])
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: base\n%s (%v)\nwant\n%s", c.target, got, err, want)
		}
		if !strings.Contains(string(want), `"@request-target": `+r.URL.RequestURI()+"\n") {
			t.Errorf("%s: @request-target is not the request URI %s:\n%s", c.target, r.URL.RequestURI(), want)
		}
		if err := m.Verify(&sigs[0], key.Public()); err != nil {
			t.Errorf("%s: %v", c.target, err)
		}
	}
}
