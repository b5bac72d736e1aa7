package wallet

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
)

// Cookie names. The session cookie is scoped to /wallet/; the pre-session
// cookie carries the CSRF token of the sign-in forms, before there is a
// session (a double-submitted token).
const (
	sessionCookie = "pbw_session"
	preCookie     = "pbw_pre"
)

// session is one signed-in browser. Only the SHA-256 of its token is kept,
// so a leak of the table does not hand out sessions.
type session struct {
	principal pb.Principal
	csrf      string
	expires   time.Time
}

// sessions is the table of live sessions, held in memory: signing out or
// expiry ends a session at once; a restart ends them all (people sign in
// again with their passkey). Bounded by max; when full, the session
// closest to expiry is dropped. Safe for concurrent use.
type sessions struct {
	mu    sync.Mutex
	m     map[[32]byte]*session
	ttl   time.Duration
	max   int
	clock pb.Clock
}

func newSessions(ttl time.Duration, max int, clock pb.Clock) *sessions {
	return &sessions{m: map[[32]byte]*session{}, ttl: ttl, max: max, clock: clock}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for p and returns its token (the cookie value).
func (s *sessions) create(p pb.Principal) (string, *session) {
	tok := randomToken()
	ss := &session{principal: p, csrf: randomToken(), expires: s.clock.Now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if len(s.m) >= s.max {
		var oldest [32]byte
		var first time.Time
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
				continue
			}
			if first.IsZero() || v.expires.Before(first) {
				oldest, first = k, v.expires
			}
		}
		if len(s.m) >= s.max {
			delete(s.m, oldest)
		}
	}
	s.m[sha256.Sum256([]byte(tok))] = ss
	return tok, ss
}

// get returns the live session of tok, or nil; an expired one is removed.
func (s *sessions) get(tok string) *session {
	if tok == "" || len(tok) > 100 {
		return nil
	}
	h := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[h]
	if ss == nil {
		return nil
	}
	if !s.clock.Now().Before(ss.expires) {
		delete(s.m, h)
		return nil
	}
	return ss
}

// end removes tok's session.
func (s *sessions) end(tok string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(tok)))
	s.mu.Unlock()
}

// secure says whether cookies for r get the Secure attribute: always,
// except when the browser talks to a loopback host over plain HTTP (a
// developer's own machine, where browsers treat http://localhost as
// secure anyway).
func secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/wallet/", MaxAge: int(maxAge / time.Second),
		Secure: secure(r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/wallet/", MaxAge: -1,
		Secure: secure(r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func cookie(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// sameToken compares CSRF tokens in constant time; an empty one never
// matches.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
