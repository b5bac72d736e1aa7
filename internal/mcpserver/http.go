package mcpserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
)

// Authenticator authenticates an HTTP request as the REST API does, from
// its bearer key or, when it is signed (RFC 9421) and sends no
// Authorization header, its signature over body
// (httpapi.Server.Authenticate).
type Authenticator func(r *http.Request, body []byte) (pb.Principal, error)

// MaxRequestBytes bounds a request to /mcp (1 MiB, as the REST API's).
const MaxRequestBytes = 1 << 20

// SessionIdle is how long a session (protocol 2025-11-25 and earlier) is
// kept without a request.
const SessionIdle = 10 * time.Minute

type principalKey struct{}

// NewHandler returns the streamable HTTP endpoint (/mcp): every request is
// authenticated by authn before the SDK reads it, an agent is served the
// agent's tools and a merchant the merchant's, each through in bound to the
// caller.
//
// Protocol versions are negotiated as the SDK does. A request of protocol
// 2026-07-28 or later (its Mcp-Protocol-Version header) is served without a
// session, as that protocol is; any other is served with the sessions of
// 2025-11-25 and earlier, each bound to the caller that opened it (the SDK
// refuses another caller's request in it with 403) and closed after
// SessionIdle without a request. A session lives in the process that
// opened it: behind a load balancer, such clients need sticky routing (a
// 2026-07-28 client does not).
//
// The SDK builds a session for every request without one, which cost the
// server more CPU than the payment of a pay call (about 1.2 ms a pay call
// against 0.9 ms in a session, TestMCPPayServerCPU): a tool call of
// 2026-07-28 in its commonest form is answered without it (fastCall),
// byte for byte as the SDK answers it, with about half the CPU; any other
// request is the SDK's.
//
// A POST is answered as one JSON body, not an event stream: no tool sends
// the client anything before its result, and the stream's framing cost a
// third of the throughput. cfg.Backend is set by NewHandler.
func NewHandler(authn Authenticator, in *InProcess, cfg Config) (http.Handler, error) {
	return newHandler(authn, in, cfg, true)
}

// newHandler is NewHandler; fast says whether fastCall answers what it
// can (tests compare its answers with the SDK's).
func newHandler(authn Authenticator, in *InProcess, cfg Config, fast bool) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Backend = func(_ context.Context, extra *mcp.RequestExtra) (Backend, error) {
		if extra != nil && extra.TokenInfo != nil {
			if p, ok := extra.TokenInfo.Extra["principal"].(pb.Principal); ok {
				return in.For(p), nil
			}
		}
		return nil, pb.Errorf(pb.ErrUnauthenticated, "", "the request carries no authenticated caller")
	}
	agent, agentTools, err := newServer(AgentSide, cfg)
	if err != nil {
		return nil, err
	}
	merchant, merchantTools, err := newServer(MerchantSide, cfg)
	if err != nil {
		return nil, err
	}
	serverOf := func(r *http.Request) *mcp.Server {
		if p, _ := r.Context().Value(principalKey{}).(pb.Principal); p.Role == pb.RoleMerchant {
			return merchant
		}
		return agent
	}
	sessionless := mcp.NewStreamableHTTPHandler(serverOf, &mcp.StreamableHTTPOptions{Logger: cfg.Logger, JSONResponse: true, Stateless: true})
	sessions := mcp.NewStreamableHTTPHandler(serverOf, &mcp.StreamableHTTPOptions{Logger: cfg.Logger, JSONResponse: true, SessionTimeout: SessionIdle})
	streams := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Versions are dates, so they compare as strings.
		if v := r.Header.Get("Mcp-Protocol-Version"); v >= "2026-07-28" {
			sessionless.ServeHTTP(w, r)
			return
		}
		sessions.ServeHTTP(w, r)
	})
	// The SDK's bearer middleware puts the caller in the request's
	// TokenInfo, which the SDK hands each tool call (RequestExtra) and
	// binds sessions to. The caller was authenticated already (a signed
	// request has no bearer token): the verifier reads it from the context.
	bound := auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		p, ok := ctx.Value(principalKey{}).(pb.Principal)
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		return tokenInfo(p), nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(streams)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					rest.WriteError(w, cfg.Logger, pb.Errorf(pb.ErrBodyTooLarge, "", "the body is larger than %d bytes", MaxRequestBytes))
					return
				}
				rest.WriteError(w, cfg.Logger, pb.Errorf(pb.ErrInvalidJSON, "", "couldn't read the body: %v", err))
				return
			}
			body = b
		}
		p, err := authn(r, body)
		if err != nil {
			rest.WriteError(w, cfg.Logger, err)
			return
		}
		if p.Role != pb.RoleAgent && p.Role != pb.RoleMerchant {
			rest.WriteError(w, cfg.Logger, pb.Errorf(pb.ErrForbidden, "", "/mcp serves agents and merchants; a %s key has no tools here", p.Role))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if r.Header.Get("Authorization") == "" {
			// A signed request: the middleware wants a bearer token, and
			// the caller is already proved.
			r.Header.Set("Authorization", "Bearer signed-request")
		}
		if fast {
			tools := agentTools
			if p.Role == pb.RoleMerchant {
				tools = merchantTools
			}
			if fastCall(tools, w, r, body, tokenInfo(p)) {
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		bound.ServeHTTP(w, r)
	}), nil
}

// tokenInfo is the caller as the SDK's bearer middleware gives it to tool
// calls (RequestExtra.TokenInfo) and binds sessions to.
func tokenInfo(p pb.Principal) *auth.TokenInfo {
	return &auth.TokenInfo{UserID: string(p.Role) + ":" + p.ID, Extra: map[string]any{"principal": p}}
}
