// Package wallet is the AI Wallet: the web pages where a person sees what
// their agents spent, signs in with a passkey and approves, under
// /wallet/. It is a protocol adapter, like the REST API: every page and
// action calls the same operations the API calls, as the signed-in
// principal, so a page shows exactly what that principal may read through
// the API and nothing else. Templates and assets are embedded (go:embed);
// pages need no JavaScript except for the WebAuthn ceremonies.
//
// Security: sessions are server-side (a random token in an HttpOnly,
// SameSite=Lax cookie, Secure except on loopback, expiring), every state
// change needs the session's CSRF token and passes net/http's
// cross-origin protection, and every answer carries a strict
// Content-Security-Policy that allows nothing but this origin's own
// scripts, styles and images.
package wallet

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/go-webauthn/webauthn/webauthn"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/agentid"
	"github.com/paybound/paybound/internal/billing"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/mandatereqs"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/paylinks"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/settlement"
	"github.com/paybound/paybound/internal/signin"
	"github.com/paybound/paybound/internal/translog"
	"github.com/paybound/paybound/internal/webhooks"
	"github.com/paybound/paybound/internal/x402pay"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the Content-Security-Policy of every answer: only this origin's
// scripts, styles, images and fetches; no inline script or style, no
// frames, forms posting only here.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Limits.
const (
	// maxFormBytes bounds a form or JSON body the wallet reads.
	maxFormBytes = 64 << 10
)

// PasskeyReader reads a user's passkeys, revoked ones included: passkey
// sign-in verifies an assertion against them. Main gives the store.
type PasskeyReader interface {
	Passkeys(ctx context.Context, userID string) ([]pb.Passkey, error)
}

// Log is what the wallet needs of the transparency log: a payment's trace
// as the caller may read it, and the log's public key to check it with.
type Log interface {
	PaymentTrace(ctx context.Context, caller pb.Principal, id string) (*translog.Trace, error)
	LogKey() string
}

// Config configures the wallet.
type Config struct {
	// RPID and Origins are the WebAuthn relying party, as step-up's (the
	// same passkeys sign in and approve).
	RPID    string
	Origins []string
	Clock   pb.Clock
	Logger  *slog.Logger
}

// Parts are the operations the wallet calls: the same ones the REST API
// calls, as the signed-in principal.
type Parts struct {
	Core     *service.Service
	Confirm  *confirm.Service
	Disputes *disputes.Service
	Mandates *mandates.Service
	Requests *mandatereqs.Service // agents' mandate requests
	Tabs     *x402pay.Service     // agents' x402 tabs
	Agents   *agentid.Service
	Links    *paylinks.Service
	Checkout *checkout.Service
	Webhooks *webhooks.Service
	Reports  *settlement.Service
	Log      Log
	Passkeys PasskeyReader
	SignIn   *signin.Service  // sessions and one-time sign-in codes
	Billing  *billing.Service // Token Pay
	// Providers says with which Token Pay providers a person has credit.
	Providers ProviderReader
}

// Handler serves the wallet under /wallet/. Safe for concurrent use.
type Handler struct {
	core      *service.Service
	cfm       *confirm.Service
	disp      *disputes.Service
	mdt       *mandates.Service
	reqs      *mandatereqs.Service
	tabs      *x402pay.Service
	ids       *agentid.Service
	links     *paylinks.Service
	co        *checkout.Service
	hooks     *webhooks.Service
	settle    *settlement.Service
	log       Log
	passkeys  PasskeyReader
	signin    *signin.Service
	billing   *billing.Service
	providers ProviderReader
	webauthn  *webauthn.WebAuthn
	cfg       Config
	pages     map[string]*template.Template
	mux       *http.ServeMux
	handler   http.Handler

	keyGuesses *addrLimiter // wrong API keys per client address
}

// New returns the wallet over parts, every one of which is required.
func New(parts Parts, cfg Config) (*Handler, error) {
	if parts.Core == nil || parts.Confirm == nil || parts.Disputes == nil || parts.Mandates == nil || parts.Requests == nil || parts.Tabs == nil || parts.Agents == nil ||
		parts.Links == nil || parts.Checkout == nil || parts.Webhooks == nil || parts.Reports == nil || parts.Log == nil || parts.Passkeys == nil || parts.SignIn == nil ||
		parts.Billing == nil || parts.Providers == nil {
		return nil, errors.New("wallet: every one of Parts is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RPID == "" || len(cfg.Origins) == 0 {
		return nil, errors.New("wallet: Config.RPID and Config.Origins are required (the passkey relying party)")
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: cfg.RPID, RPDisplayName: "Paybound", RPOrigins: cfg.Origins})
	if err != nil {
		return nil, fmt.Errorf("wallet: passkeys: %w", err)
	}
	h := &Handler{core: parts.Core, cfm: parts.Confirm, disp: parts.Disputes, mdt: parts.Mandates, reqs: parts.Requests, tabs: parts.Tabs, ids: parts.Agents,
		links: parts.Links, co: parts.Checkout, hooks: parts.Webhooks, settle: parts.Reports, log: parts.Log, passkeys: parts.Passkeys, signin: parts.SignIn, billing: parts.Billing, providers: parts.Providers, webauthn: wa, cfg: cfg,
		keyGuesses: newAddrLimiter(MaxKeyFailures, KeyFailureWindow),
		mux:        http.NewServeMux(),
	}
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /wallet/static/", http.StripPrefix("/wallet/static/", http.FileServerFS(static)))
	h.routes()
	cop := http.NewCrossOriginProtection()
	h.handler = cop.Handler(h.mux)
	return h, nil
}

// Pattern is where Main mounts the handler.
const Pattern = "/wallet/"

// ServeHTTP serves the wallet with its security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	h.handler.ServeHTTP(w, r)
}

// page is the data every template gets.
type page struct {
	Title     string
	Nav       string
	Principal pb.Principal
	CSRF      string
	Error     string
	Notice    string
	Data      any
	// Names are the merchants' names by ID, for the payments shown.
	Names map[string]string
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("wallet: template %s: %w", n, err)
		}
		out[n[len("templates/"):len(n)-len(".html")]] = t
	}
	return out, nil
}

// render writes page name with status; a template error is logged and
// answered 500 without details.
func (h *Handler) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.cfg.Logger.Error("wallet: template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// show renders page name, or, after an action that failed, the page
// with the action's refusal.
func (h *Handler) show(w http.ResponseWriter, name string, p page, actErr error) {
	if actErr != nil {
		h.fail(w, name, p, actErr)
		return
	}
	h.render(w, http.StatusOK, name, p)
}

// readBody reads a fetch's body (bounded by ServeHTTP's MaxBytesReader).
func readBody(r *http.Request, param string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return nil, pb.Errorf(pb.ErrBodyTooLarge, param, "the request body is too large")
	}
	return buf.Bytes(), nil
}

// fail renders err on page name: a coded error with its message and
// status, anything else as an internal error (logged, never shown).
func (h *Handler) fail(w http.ResponseWriter, name string, p page, err error) {
	status := rest.StatusOf(err)
	var e *pb.Error
	if errors.As(err, &e) {
		p.Error = e.Message
	} else {
		h.cfg.Logger.Error("wallet: internal error", "err", err)
		p.Error = "Something went wrong on our side; try again."
	}
	h.render(w, status, name, p)
}
