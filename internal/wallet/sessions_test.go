package wallet

import (
	"crypto/tls"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestSessions: a session lives its TTL and not a second more; ending it
// ends it; the table never holds more than its bound, dropping the
// session closest to expiry.
func TestSessions(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := newSessions(time.Hour, 2, c)
	a, _ := s.create(pb.Principal{Role: pb.RoleUser, ID: "usr_a"})
	if got := s.get(a); got == nil || got.principal.ID != "usr_a" {
		t.Fatalf("fresh session: %+v", got)
	}
	if s.get("") != nil || s.get(a+"x") != nil {
		t.Fatal("a wrong token found a session")
	}
	c.add(time.Hour)
	if s.get(a) != nil {
		t.Fatal("a session outlived its TTL")
	}
	b, _ := s.create(pb.Principal{ID: "usr_b"})
	c.add(time.Minute)
	d, _ := s.create(pb.Principal{ID: "usr_d"})
	e, _ := s.create(pb.Principal{ID: "usr_e"}) // full: b, the oldest, goes
	if s.get(b) != nil || s.get(d) == nil || s.get(e) == nil || len(s.m) != 2 {
		t.Fatalf("bound: b=%v d=%v e=%v n=%d", s.get(b), s.get(d), s.get(e), len(s.m))
	}
	s.end(d)
	if s.get(d) != nil {
		t.Fatal("an ended session lives on")
	}
}

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
