package wallet

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
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

// session is one signed-in browser, as the store keeps it (through
// signin.Service: only a hash of the cookie's token is stored, and the
// CSRF token is derived from the token), so a restart signs no one out
// and every process sharing the store knows every session.
type session struct {
	principal pb.Principal
	csrf      string
	expires   time.Time
}

// session returns r's live session, or nil; a failure to read it is
// logged and counts as none (the person is asked to sign in).
func (h *Handler) session(r *http.Request) *session {
	ss, err := h.signin.Session(r.Context(), cookie(r, sessionCookie))
	if err != nil {
		h.cfg.Logger.Error("wallet: couldn't read a session", "err", err)
		return nil
	}
	if ss == nil {
		return nil
	}
	return &session{principal: ss.Principal, csrf: ss.CSRF, expires: ss.ExpiresAt}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
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
