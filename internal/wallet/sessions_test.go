package wallet

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

// TestSecureCookies: cookies are Secure except for plain HTTP to a
// loopback host.
func TestSecureCookies(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:8080": false, "localhost:8080": false, "[::1]:80": false, "app.localhost": false,
		"pay.example.com": true, "10.0.0.5:8080": true, "pay.example.com:443": true,
	} {
		r := httptest.NewRequest("GET", "http://"+host+"/wallet/", nil)
		r.Host = host
		if got := secure(r); got != want {
			t.Errorf("secure(%s) = %v, want %v", host, got, want)
		}
	}
	r := httptest.NewRequest("GET", "https://127.0.0.1/wallet/", nil)
	r.TLS = &tls.ConnectionState{}
	if !secure(r) {
		t.Error("TLS on loopback is not Secure")
	}
}

// TestNextStaysInTheWallet: the page to return to after signing in is a
// wallet path, never another site.
func TestNextStaysInTheWallet(t *testing.T) {
	for in, want := range map[string]string{
		"/wallet/activity?status=captured": "/wallet/activity?status=captured",
		"https://evil.example/":            "/wallet/",
		"//evil.example/wallet/":           "/wallet/",
		"/wallet/\\evil":                   "/wallet/",
		"/v1/balance":                      "/wallet/",
		"":                                 "/wallet/",
	} {
		r := httptest.NewRequest("GET", "/wallet/signin", nil)
		q := r.URL.Query()
		q.Set("next", in)
		r.URL.RawQuery = q.Encode()
		if got := next(r); got != want {
			t.Errorf("next(%q) = %q, want %q", in, got, want)
		}
	}
}
