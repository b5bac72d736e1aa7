// Package gateway is Token Pay's metering gateway: a reverse proxy in
// front of an OpenAI-compatible API (/v1/chat/completions, /v1/responses,
// /v1/embeddings, streaming included) that bills every request through a
// Paybound server's Token Pay API, so a provider gets real-time token
// billing without changing its model server.
//
// For each request it authenticates the customer's Paybound API key (the
// server says whose it is), reserves max_tokens of output at the model's
// price before forwarding (a hold on the customer's credit: a customer
// without enough credit is answered 402 in OpenAI's error shape, and the
// upstream never sees the request), and settles the reservation from the
// response's usage (for a stream, its final usage chunk, which the gateway
// asks for when the request did not). A stream that goes past the tokens
// reserved is cut off there, and the tokens it streamed are billed.
package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
)

// Config is the gateway's configuration.
type Config struct {
	// Upstream is the OpenAI-compatible API's base URL, with or without
	// its /v1: a request's /v1/… path goes to the same path there.
	Upstream *url.URL
	// UpstreamKey, when set, is sent upstream as its bearer key in place
	// of the customer's.
	UpstreamKey string
	// Paybound is the Paybound server's base URL.
	Paybound string
	// Provider is the provider's merchant ID and ProviderKey its API key,
	// with which the gateway reserves and reports usage.
	Provider, ProviderKey string
	// DefaultMaxTokens is reserved for a request that names no max tokens
	// (default 4096).
	DefaultMaxTokens int64
	// KeyTTL is how long a customer's key is remembered once the server
	// vouched for it (default 30 s).
	KeyTTL time.Duration
	// Client makes the calls to Paybound and upstream (default: one with
	// a 10-minute timeout, for long generations).
	Client *http.Client
	Logger *slog.Logger
}

// MaxBody bounds a request body.
const MaxBody = 4 << 20

// Gateway is the metering reverse proxy. Safe for concurrent use.
type Gateway struct {
	cfg  Config
	mu   sync.Mutex
	keys map[[32]byte]cachedKey
}

type cachedKey struct {
	customer string
	until    time.Time
}

// New returns a gateway for cfg.
func New(cfg Config) (*Gateway, error) {
	if cfg.Upstream == nil || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") || cfg.Upstream.Host == "" {
		return nil, errors.New("gateway: --upstream must be an absolute http(s) URL such as http://127.0.0.1:8000")
	}
	if !strings.HasPrefix(cfg.Provider, "mch_") || cfg.ProviderKey == "" {
		return nil, errors.New("gateway: --provider must be the provider's merchant ID (mch_…), with its API key in PAYBOUND_KEY")
	}
	if cfg.Paybound == "" {
		return nil, errors.New("gateway: the Paybound server's URL is required (PAYBOUND_URL)")
	}
	cfg.Paybound = strings.TrimSuffix(cfg.Paybound, "/")
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = 4096
	}
	if cfg.KeyTTL <= 0 {
		cfg.KeyTTL = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{cfg: cfg, keys: map[[32]byte]cachedKey{}}, nil
}

// apiError answers in OpenAI's error shape, which its clients read.
func apiError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

// ServeHTTP proxies one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := ""
	switch r.URL.Path {
	case "/v1/chat/completions":
		kind = "chat"
	case "/v1/responses":
		kind = "responses"
	case "/v1/embeddings":
		kind = "embeddings"
	default:
		apiError(w, 404, "invalid_request_error", "unknown_url", "the gateway serves POST /v1/chat/completions, /v1/responses and /v1/embeddings")
		return
	}
	if r.Method != "POST" {
		apiError(w, 405, "invalid_request_error", "method_not_allowed", "use POST")
		return
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		apiError(w, 401, "invalid_request_error", "invalid_api_key", "send your Paybound API key as Authorization: Bearer <key>")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil || len(body) > MaxBody {
		apiError(w, 413, "invalid_request_error", "body_too_large", fmt.Sprintf("the request body must be at most %d bytes", MaxBody))
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, 400, "invalid_request_error", "invalid_json", "the body must be a JSON object")
		return
	}
	model, _ := req["model"].(string)
	if model == "" || len(model) > 128 {
		apiError(w, 400, "invalid_request_error", "model_missing", "model is required")
		return
	}
	ctx := r.Context()
	customer, status, err := g.customer(ctx, key)
	if err != nil {
		if status == 0 {
			g.cfg.Logger.Error("gateway: couldn't authenticate", "err", err)
			apiError(w, 502, "api_error", "billing_unavailable", "the billing server could not be reached")
			return
		}
		apiError(w, 401, "invalid_request_error", "invalid_api_key", "the API key is not a Paybound user's or agent's key")
		return
	}
	stream, _ := req["stream"].(bool)
	maxTokens := g.maxTokens(kind, req, body)
	inEstimate := int64(len(body)/4) + 1 // the prompt, should a stream end without usage
	tokenType := "output"
	if kind == "embeddings" {
		tokenType = "input"
	}
	rsv, err := g.reserve(ctx, customer, model, tokenType, maxTokens)
	if err != nil {
		g.cfg.Logger.Error("gateway: couldn't reserve", "err", err)
		apiError(w, 502, "api_error", "billing_unavailable", "the billing server could not reserve credit: "+err.Error())
		return
	}
	if !rsv.Allowed {
		apiError(w, 402, "insufficient_quota", rsv.Reason, fmt.Sprintf("out of credit: %s (available %d minor units of %s, %d needed for %d tokens). Recharge, then retry.",
			rsv.Message, rsv.Available, rsv.Currency, rsv.Amount, maxTokens))
		return
	}
	if stream && kind == "chat" {
		// Ask for the final usage chunk the settlement needs.
		opts, _ := req["stream_options"].(map[string]any)
		if opts == nil {
			opts = map[string]any{}
		}
		if v, _ := opts["include_usage"].(bool); !v {
			opts["include_usage"] = true
			req["stream_options"] = opts
			body, _ = json.Marshal(req)
		}
	}
	up, err := g.forward(ctx, r, body, key)
	if err != nil {
		g.release(rsv.ReservationID)
		apiError(w, 502, "api_error", "upstream_unavailable", "the model server could not be reached")
		return
	}
	defer up.Body.Close()
	for k, vs := range up.Header {
		if k == "Content-Length" && stream {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if up.StatusCode/100 != 2 {
		w.WriteHeader(up.StatusCode)
		io.Copy(w, io.LimitReader(up.Body, MaxBody))
		g.release(rsv.ReservationID)
		return
	}
	var u usage
	if stream {
		u = g.relayStream(w, up.Body, maxTokens, inEstimate)
	} else {
		b, err := io.ReadAll(io.LimitReader(up.Body, 64<<20))
		w.WriteHeader(up.StatusCode)
		// Not flushed: the response completes once the usage is settled
		// below, so a client that has its answer sees its balance current.
		w.Write(b)
		if err == nil {
			u = usageOf(b)
		}
	}
	g.settle(customer, model, rsv.ReservationID, u)
}

// maxTokens is what a request may generate: its own bound, else the
// default; for embeddings, its input's size in tokens, estimated at one
// per 4 bytes of the body.
func (g *Gateway) maxTokens(kind string, req map[string]any, body []byte) int64 {
	if kind == "embeddings" {
		return int64(len(body)/4) + 1
	}
	for _, k := range []string{"max_completion_tokens", "max_tokens", "max_output_tokens"} {
		if v, ok := req[k].(float64); ok && v >= 1 && v <= 1e9 {
			return int64(v)
		}
	}
	return g.cfg.DefaultMaxTokens
}

// customer returns whose Paybound key key is, from the cache or the
// server (GET /v1/billing/customers/me/balance answers with the caller's
// ID). status is the server's answer when it refused the key.
func (g *Gateway) customer(ctx context.Context, key string) (string, int, error) {
	h := sha256.Sum256([]byte(key))
	g.mu.Lock()
	c, ok := g.keys[h]
	g.mu.Unlock()
	if ok && time.Now().Before(c.until) {
		return c.customer, 0, nil
	}
	var out struct {
		CustomerID string `json:"customer_id"`
	}
	status, err := g.call(ctx, "GET", "/v1/billing/customers/me/balance?provider="+url.QueryEscape(g.cfg.Provider), key, nil, &out)
	if err != nil {
		return "", status, err
	}
	g.mu.Lock()
	if len(g.keys) > 100_000 {
		clear(g.keys) // bounded: a flood of keys forgets them all
	}
	g.keys[h] = cachedKey{customer: out.CustomerID, until: time.Now().Add(g.cfg.KeyTTL)}
	g.mu.Unlock()
	return out.CustomerID, 0, nil
}

type reservation struct {
	Allowed       bool   `json:"allowed"`
	ReservationID string `json:"reservation_id"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	Available     int64  `json:"available"`
	Reason        string `json:"reason"`
	Message       string `json:"message"`
}

func (g *Gateway) reserve(ctx context.Context, customer, model, tokenType string, tokens int64) (*reservation, error) {
	var out reservation
	_, err := g.call(ctx, "POST", "/v1/billing/reservations", g.cfg.ProviderKey,
		map[string]any{"customer": customer, "estimate": tokens, "model": model, "token_type": tokenType}, &out)
	return &out, err
}

// settleTimeout bounds the calls made after the response was sent.
const settleTimeout = 30 * time.Second

func (g *Gateway) release(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if _, err := g.call(ctx, "POST", "/v1/billing/reservations/"+id+"/release", g.cfg.ProviderKey, map[string]any{}, nil); err != nil {
		g.cfg.Logger.Warn("gateway: couldn't release a reservation; it expires on its own", "reservation", id, "err", err)
	}
}

// settle reports the request's usage, which settles its reservation.
func (g *Gateway) settle(customer, model, rsv string, u usage) {
	tokens := map[string]int64{}
	for k, v := range map[string]int64{"input": u.Input - u.Cached, "cached_input": u.Cached, "output": u.Output - u.Reasoning, "reasoning": u.Reasoning} {
		if v > 0 {
			tokens[k] = v
		}
	}
	if len(tokens) == 0 {
		tokens["output"] = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	// The event's id begins with the time, as the Idempotency-Keys below:
	// new ids land together in the server's index of them.
	ev := map[string]any{"id": pb.NewID("gw_", time.Now()), "customer": customer, "model": model, "reservation": rsv, "usage": tokens}
	var out struct {
		Data []struct {
			Status string `json:"status"`
		} `json:"data"`
	}
	if _, err := g.call(ctx, "POST", "/v1/billing/events", g.cfg.ProviderKey, map[string]any{"events": []any{ev}}, &out); err != nil || len(out.Data) != 1 || out.Data[0].Status != "accepted" {
		g.cfg.Logger.Error("gateway: couldn't report usage", "customer", customer, "reservation", rsv, "usage", tokens, "err", err, "answer", out)
	}
}

// call makes a call to the Paybound server; status is its status when it
// answered with an error.
func (g *Gateway) call(ctx context.Context, method, path, key string, in, out any) (int, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.cfg.Paybound+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == "POST" && path != "/v1/billing/events" {
		// Time first, so the keys land together in the server's index
		// (migration 0021).
		req.Header.Set("Idempotency-Key", pb.NewID("gw-", time.Now()))
	}
	res, err := g.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if res.StatusCode/100 != 2 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return 0, json.Unmarshal(b, out)
	}
	return 0, nil
}

// forward sends the request upstream.
func (g *Gateway) forward(ctx context.Context, r *http.Request, body []byte, key string) (*http.Response, error) {
	u := *g.cfg.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + strings.TrimPrefix(r.URL.Path, "/v1")
	if !strings.HasSuffix(strings.TrimSuffix(g.cfg.Upstream.Path, "/"), "/v1") {
		u.Path = strings.TrimSuffix(g.cfg.Upstream.Path, "/") + r.URL.Path
	}
	req, err := http.NewRequestWithContext(ctx, "POST", u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a := r.Header.Get("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	if g.cfg.UpstreamKey != "" {
		req.Header.Set("Authorization", "Bearer "+g.cfg.UpstreamKey)
	}
	return g.cfg.Client.Do(req)
}

// usage is a response's token counts.
type usage struct {
	Input, Cached, Output, Reasoning int64
}

// usageOf reads the usage object of a response (chat, responses,
// embeddings) or of a stream's chunk.
func usageOf(b []byte) usage {
	var v struct {
		Usage *struct {
			PromptTokens        int64 `json:"prompt_tokens"`
			CompletionTokens    int64 `json:"completion_tokens"`
			InputTokens         int64 `json:"input_tokens"`
			OutputTokens        int64 `json:"output_tokens"`
			PromptTokensDetails struct {
				CachedTokens int64 `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
			InputTokensDetails struct {
				CachedTokens int64 `json:"cached_tokens"`
			} `json:"input_tokens_details"`
			CompletionTokensDetails struct {
				ReasoningTokens int64 `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
			OutputTokensDetails struct {
				ReasoningTokens int64 `json:"reasoning_tokens"`
			} `json:"output_tokens_details"`
		} `json:"usage"`
		Response *struct {
			Usage json.RawMessage `json:"usage"`
		} `json:"response"` // responses API stream: response.completed
	}
	if json.Unmarshal(b, &v) != nil {
		return usage{}
	}
	if v.Usage == nil {
		if v.Response != nil && len(v.Response.Usage) > 0 {
			return usageOf([]byte(`{"usage":` + string(v.Response.Usage) + `}`))
		}
		return usage{}
	}
	x := v.Usage
	return usage{Input: x.PromptTokens + x.InputTokens, Cached: x.PromptTokensDetails.CachedTokens + x.InputTokensDetails.CachedTokens,
		Output: x.CompletionTokens + x.OutputTokens, Reasoning: x.CompletionTokensDetails.ReasoningTokens + x.OutputTokensDetails.ReasoningTokens}
}

// relayStream copies a server-sent event stream to w, flushing each event
// but the final [DONE], which reaches the client when the handler returns,
// after the settlement (so a client at the end of its stream sees its
// balance current), and returns its usage: the final usage chunk's, or, when the stream is
// cut off at the reservation or ends without one, the tokens counted as
// they streamed (one per 4 bytes of content, at least one per chunk) and
// inEstimate, the request's input (one token per 4 bytes of its body).
func (g *Gateway) relayStream(w http.ResponseWriter, body io.Reader, maxTokens, inEstimate int64) usage {
	w.Header().Del("Content-Length")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var final usage
	var streamed int64 // tokens sent to the client
	done := false      // [DONE] was seen: what follows is sent once the usage is settled
	for sc.Scan() {
		line := sc.Bytes()
		if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok && !bytes.Equal(data, []byte("[DONE]")) {
			if u := usageOf(data); u != (usage{}) {
				final = u
			}
			t := contentTokens(data)
			if final == (usage{}) && streamed+t > maxTokens {
				// Past what was reserved: cut off, and bill what streamed.
				// Not flushed: the stream ends once its usage is settled.
				fmt.Fprintf(w, "\ndata: %s\n\ndata: [DONE]\n\n", `{"error":{"message":"out of credit: the stream reached the tokens reserved for it","type":"insufficient_quota","code":"insufficient_credit"}}`)
				return usage{Input: inEstimate, Output: streamed}
			}
			streamed += t
		}
		done = done || bytes.Equal(line, []byte("data: [DONE]"))
		w.Write(line)
		w.Write([]byte{'\n'})
		if len(line) == 0 && fl != nil && !done {
			fl.Flush() // each event as it comes, but the last: see ServeHTTP
		}
	}
	if final == (usage{}) {
		return usage{Input: inEstimate, Output: streamed}
	}
	return final
}

// contentTokens estimates the tokens of a stream chunk's generated text.
func contentTokens(data []byte) int64 {
	var v struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
		Type  string `json:"type"`
		Delta string `json:"delta"` // responses API: response.output_text.delta
	}
	if json.Unmarshal(data, &v) != nil {
		return 0
	}
	n := 0
	for _, c := range v.Choices {
		n += len(c.Delta.Content)
	}
	n += len(v.Delta)
	if n == 0 {
		return 0
	}
	return int64(max(1, n/4))
}
