package wallet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/signin"
)

// routes registers the wallet's pages and actions.
func (h *Handler) routes() {
	h.mux.HandleFunc("GET /wallet/signin", h.signinPage)
	h.mux.HandleFunc("POST /wallet/signin", h.pre(h.signinKey))
	h.mux.HandleFunc("POST /wallet/signin/code", h.pre(h.signinCode))
	h.mux.HandleFunc("POST /wallet/signin/passkey/options", h.pre(h.passkeyLoginOptions))
	h.mux.HandleFunc("POST /wallet/signin/passkey", h.pre(h.passkeyLogin))
	h.mux.HandleFunc("POST /wallet/signout", h.auth(h.signout))
	h.mux.HandleFunc("GET /wallet/passkeys", h.auth(h.passkeysPage))
	h.mux.HandleFunc("POST /wallet/passkeys/options", h.auth(h.passkeyRegisterOptions))
	h.mux.HandleFunc("POST /wallet/passkeys", h.auth(h.passkeyRegister))
	h.pageRoutes()
	h.mux.HandleFunc("/wallet/", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, http.StatusNotFound, "notfound", page{Title: "Not found"})
	})
}

// csrfOf is the CSRF token a request carries: the X-CSRF-Token header
// (fetch) or the csrf form field.
func csrfOf(r *http.Request) string {
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		return t
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return r.PostFormValue("csrf")
	}
	return ""
}

// errCSRF refuses a state change without the right token.
var errCSRF = pb.Errorf(pb.ErrForbidden, "csrf", "this form has expired or did not come from this wallet; reload the page and try again")

// pre guards the sign-in actions, which run before there is a session:
// the token must equal the pre-session cookie's (double submit).
func (h *Handler) pre(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sameToken(cookie(r, preCookie), csrfOf(r)) {
			h.refuse(w, r, http.StatusForbidden, errCSRF)
			return
		}
		fn(w, r)
	}
}

// auth guards a page or action that needs a session: a page without one
// sends the browser to sign in; a state change needs the session's CSRF
// token.
func (h *Handler) auth(fn func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := h.session(r)
		if ss == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/wallet/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			h.refuse(w, r, http.StatusUnauthorized, pb.Errorf(pb.ErrUnauthenticated, "", "your session has ended; sign in again"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameToken(ss.csrf, csrfOf(r)) {
			h.refuse(w, r, http.StatusForbidden, errCSRF)
			return
		}
		fn(w, r, ss)
	}
}

// refuse answers a refused request: JSON to fetch, a page to a form.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, err *pb.Error) {
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"error": err})
		return
	}
	h.render(w, status, "refused", page{Title: "Refused", Error: err.Message})
}

func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// jsonError answers a fetch with err: coded errors as they are, anything
// else as an internal error (logged).
func (h *Handler) jsonError(w http.ResponseWriter, err error) {
	var e *pb.Error
	if !errors.As(err, &e) {
		h.cfg.Logger.Error("wallet: internal error", "err", err)
		e = pb.Errorf(pb.ErrInternal, "", "something went wrong on our side; try again")
	}
	writeJSON(w, rest.StatusOf(err), map[string]any{"error": e})
}

// next is where to go after signing in: a path of the wallet, never
// another site.
func next(r *http.Request) string {
	n := r.URL.Query().Get("next")
	if n == "" {
		n = r.PostFormValue("next")
	}
	if !strings.HasPrefix(n, "/wallet/") || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\\r\n") || len(n) > 500 {
		return "/wallet/"
	}
	return n
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	if h.session(r) != nil {
		http.Redirect(w, r, next(r), http.StatusSeeOther)
		return
	}
	h.renderSignin(w, r, http.StatusOK, "")
}

func (h *Handler) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := cookie(r, preCookie)
	if len(tok) != 43 {
		tok = randomToken()
	}
	setCookie(w, r, preCookie, tok, time.Hour)
	ttl, fails, lock := h.signin.Limits()
	h.render(w, status, "signin", page{Title: "Sign in", CSRF: tok, Error: msg,
		Data: map[string]any{"Next": next(r), "UserID": userIDOf(r), "CodeMinutes": int(ttl / time.Minute), "MaxFailures": fails,
			"LockMinutes": int(lock / time.Minute)}})
}

// userIDOf is the user ID a code sign-in form carried, to fill it in
// again; anything else is dropped.
func userIDOf(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	if id := strings.TrimSpace(r.PostFormValue("user_id")); pb.HasPrefix(id, pb.PrefixUser) {
		return id
	}
	return ""
}

// startSession signs p in: a fresh session (a new token, so a token fixed
// before sign-in is worthless) and the pre-session cookie dropped.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, p pb.Principal) error {
	tok, _, err := h.signin.StartSession(r.Context(), p)
	if err != nil {
		return err
	}
	setCookie(w, r, sessionCookie, tok, h.signin.SessionTTL())
	clearCookie(w, r, preCookie)
	return nil
}

// canSignIn: people (users) and merchants use the wallet; agents pay
// through the API and the operator runs the server.
func canSignIn(p pb.Principal) error {
	if p.Role != pb.RoleUser && p.Role != pb.RoleMerchant {
		return pb.Errorf(pb.ErrForbidden, "api_key", "this is an %s key; the wallet is for people and merchants: sign in with a user's or a merchant's key", p.Role)
	}
	return nil
}

// signinKey signs in with an API key (a user's first sign-in, before a
// passkey; or a merchant's).
func (h *Handler) signinKey(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" {
		h.renderSignin(w, r, http.StatusBadRequest, "Enter your API key (it starts with pbk_).")
		return
	}
	addr := clientAddr(r)
	if d := h.keyGuesses.wait(addr, h.cfg.Clock.Now()); d > 0 {
		h.cfg.Logger.Warn("security event: wallet key sign-ins rate-limited", "event", "wallet_key_rate_limited", "addr", addr)
		w.Header().Set("Retry-After", fmt.Sprint(int64((d+time.Second-1)/time.Second)))
		h.renderSignin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many keys were refused from your address; try again in %d minutes, or sign in with a passkey.",
			int64((d+time.Minute-1)/time.Minute)))
		return
	}
	p, err := h.core.Authenticate(r.Context(), key)
	if err == nil {
		err = canSignIn(p)
	}
	if pb.ErrorCode(err) == pb.ErrUnauthenticated {
		h.keyGuesses.fail(addr, h.cfg.Clock.Now())
	}
	if err != nil {
		var e *pb.Error
		msg := "That key was not accepted."
		if errors.As(err, &e) && e.Code != pb.ErrUnauthenticated {
			msg = e.Message
		} else if !errors.As(err, &e) {
			h.cfg.Logger.Error("wallet: sign-in failed", "err", err)
		}
		h.renderSignin(w, r, rest.StatusOf(err), msg)
		return
	}
	h.formSignedIn(w, r, p, "key")
}

// formSignedIn starts p's session after a sign-in form and sends the
// browser on; a person landing on the overview is offered a passkey
// there, told how they signed in (how: "key" or "code").
func (h *Handler) formSignedIn(w http.ResponseWriter, r *http.Request, p pb.Principal, how string) {
	if err := h.startSession(w, r, p); err != nil {
		h.cfg.Logger.Error("wallet: couldn't start a session", "err", err)
		h.renderSignin(w, r, http.StatusInternalServerError, "Something went wrong on our side; try again.")
		return
	}
	dest := next(r)
	if p.Role == pb.RoleUser && dest == "/wallet/" {
		dest = "/wallet/?welcome=" + how
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// signinCode signs a user in with a one-time code asked for with their
// API key (signin.Service.SignIn: single use, expiring, the user's wrong
// codes counted in the store); then offers to register a passkey.
func (h *Handler) signinCode(w http.ResponseWriter, r *http.Request) {
	p, err := h.signin.SignIn(r.Context(), r.PostFormValue("user_id"), r.PostFormValue("code"))
	if err != nil {
		var e *pb.Error
		msg := "Something went wrong on our side; try again."
		if errors.As(err, &e) {
			msg = e.Message
		} else {
			h.cfg.Logger.Error("wallet: code sign-in failed", "err", err)
		}
		if e != nil && e.RetryAfter > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(int64(e.RetryAfter/time.Second)))
		}
		h.renderSignin(w, r, rest.StatusOf(err), msg)
		return
	}
	h.formSignedIn(w, r, p, "code")
}

// signout ends this browser's session; with everywhere=1, every session
// of the signed-in party, in every browser and process.
func (h *Handler) signout(w http.ResponseWriter, r *http.Request, ss *session) {
	var err error
	if r.PostFormValue("everywhere") == "1" {
		_, err = h.signin.EndSessions(r.Context(), ss.principal)
	} else {
		err = h.signin.EndSession(r.Context(), cookie(r, sessionCookie))
	}
	if err != nil {
		h.fail(w, "refused", h.base(ss, "Sign out", ""), err)
		return
	}
	clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, "/wallet/signin", http.StatusSeeOther)
}

// passkeyLoginOptions begins a passkey sign-in: options for
// navigator.credentials.get() with no user named (a discoverable
// credential picks the user), user verification required. The challenge
// is sign-in's (signin.NewPasskeyChallenge): it carries its expiry and a
// MAC, so the assertion may reach any process, and nothing is stored
// until a sign-in succeeds.
func (h *Handler) passkeyLoginOptions(w http.ResponseWriter, r *http.Request) {
	opts, _, err := h.webauthn.BeginDiscoverableLogin(webauthn.WithChallenge(h.signin.NewPasskeyChallenge()),
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		h.jsonError(w, err)
		return
	}
	opts.Response.Timeout = int(signin.ChallengeTTL / time.Millisecond)
	writeJSON(w, http.StatusOK, opts)
}

// passkeyLogin finishes a passkey sign-in with the browser's assertion:
// the challenge must be one this wallet issued, unexpired, and unused (in
// the store, across processes); the credential must be a passkey of the
// user it names, not revoked.
func (h *Handler) passkeyLogin(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, "credential")
	if err != nil {
		h.jsonError(w, err)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		h.jsonError(w, pb.Errorf(pb.ErrPasskeyInvalid, "credential", "the passkey response could not be read"))
		return
	}
	chal, err := base64.RawURLEncoding.DecodeString(parsed.Response.CollectedClientData.Challenge)
	if err == nil {
		err = h.signin.CheckPasskeyChallenge(chal)
	}
	if err != nil {
		h.jsonError(w, pb.Errorf(pb.ErrPasskeyInvalid, "credential", "this sign-in has expired or was already used; try again"))
		return
	}
	data := webauthn.SessionData{Challenge: parsed.Response.CollectedClientData.Challenge, RelyingPartyID: h.cfg.RPID,
		UserVerification: protocol.VerificationRequired}
	var userID string
	cred, err := h.webauthn.ValidateDiscoverableLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		userID = string(userHandle)
		if !pb.HasPrefix(userID, pb.PrefixUser) {
			return nil, errors.New("the passkey names no user of this server")
		}
		return h.passkeyUser(r, userID)
	}, data, parsed)
	if err != nil {
		h.cfg.Logger.Warn("security event: wallet passkey sign-in refused", "event", "wallet_passkey_refused", "err", err)
		h.jsonError(w, pb.Errorf(pb.ErrPasskeyInvalid, "credential", "that passkey was not accepted"))
		return
	}
	// Verified: the challenge is used up now, once across every process,
	// and the passkey's counter moves (a clone's does not).
	if err := h.signin.UsePasskeyChallenge(r.Context(), chal); err != nil {
		h.jsonError(w, err)
		return
	}
	if err := h.cfm.NotePasskeySignIn(r.Context(), userID, cred); err != nil {
		h.cfg.Logger.Warn("security event: wallet passkey sign-in refused", "event", "wallet_passkey_refused", "user", userID, "err", err)
		h.jsonError(w, err)
		return
	}
	if err := h.startSession(w, r, pb.Principal{Role: pb.RoleUser, ID: userID, UserID: userID}); err != nil {
		h.jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": next(r)})
}

// passkeyUser is a user with their passkeys not revoked, as the verifier
// sees them.
type passkeyUser struct {
	id    string
	creds []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return []byte(u.id) }
func (u *passkeyUser) WebAuthnName() string                       { return u.id }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.id }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func (h *Handler) passkeyUser(r *http.Request, userID string) (*passkeyUser, error) {
	keys, err := h.passkeys.Passkeys(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	u := &passkeyUser{id: userID}
	for _, k := range keys {
		if k.RevokedAt != nil {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			return nil, err
		}
		u.creds = append(u.creds, c)
	}
	if len(u.creds) == 0 {
		return nil, errors.New("the user has no passkey")
	}
	return u, nil
}

func (h *Handler) passkeysPage(w http.ResponseWriter, r *http.Request, ss *session) {
	p := page{Title: "Passkeys", Nav: "passkeys", Principal: ss.principal, CSRF: ss.csrf}
	if ss.principal.Role != pb.RoleUser {
		h.fail(w, "passkeys", p, pb.Errorf(pb.ErrForbidden, "", "passkeys belong to people; a merchant signs in with its key"))
		return
	}
	keys, err := h.cfm.Passkeys(r.Context(), ss.principal)
	if err != nil {
		h.fail(w, "passkeys", p, err)
		return
	}
	views := make([]passkeyRow, 0, len(keys))
	for _, k := range keys {
		views = append(views, passkeyRow{ID: k.ID, CreatedAt: k.CreatedAt, Revoked: k.RevokedAt != nil})
	}
	p.Data = views
	h.render(w, http.StatusOK, "passkeys", p)
}

type passkeyRow struct {
	ID        string
	CreatedAt time.Time
	Revoked   bool
}

func (h *Handler) passkeyRegisterOptions(w http.ResponseWriter, r *http.Request, ss *session) {
	opts, err := h.cfm.BeginPasskeyRegistration(r.Context(), ss.principal)
	if err != nil {
		h.jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, opts)
}

// passkeyRegister finishes a registration through step-up's own
// operation, so the new passkey both signs in and approves payments.
func (h *Handler) passkeyRegister(w http.ResponseWriter, r *http.Request, ss *session) {
	body, err := readBody(r, "credential")
	if err != nil {
		h.jsonError(w, err)
		return
	}
	res := h.cfm.RegisterPasskey(r.Context(), ss.principal, nil, body)
	if res.Err != nil {
		h.jsonError(w, res.Err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"redirect": "/wallet/passkeys?added=1"})
}
