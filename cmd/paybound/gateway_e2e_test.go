package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paybound/paybound/internal/gateway"
)

// fakeUpstream is a small OpenAI-compatible model server: a prompt "say K"
// is answered with K tokens ("tok " each), whatever max_tokens says;
// prompts cost 10 tokens; a stream reports usage in a final chunk only
// when asked (stream_options.include_usage). It counts the requests it
// served.
func fakeUpstream(t testing.TB) (*httptest.Server, *atomic.Int64) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		var req struct {
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
			Input         any  `json:"input"`
			Stream        bool `json:"stream"`
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		prompt := ""
		if len(req.Messages) > 0 {
			prompt = req.Messages[len(req.Messages)-1].Content
		} else if s, ok := req.Input.(string); ok {
			prompt = s
		}
		k, _ := strconv.Atoi(strings.TrimPrefix(prompt, "say "))
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/embeddings":
			fmt.Fprint(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"fake-1","usage":{"prompt_tokens":7,"total_tokens":7}}`)
		case "/v1/responses":
			fmt.Fprintf(w, `{"id":"resp_1","object":"response","status":"completed","model":"fake-1","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":%q,"annotations":[]}]}],"usage":{"input_tokens":10,"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":2},"input_tokens_details":{"cached_tokens":0},"total_tokens":%d}}`,
				strings.Repeat("tok ", k), k, 10+k)
		case "/v1/chat/completions":
			if !req.Stream {
				fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fake-1","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}`,
					strings.Repeat("tok ", k), k, 10+k)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fl := w.(http.Flusher)
			for range k {
				fmt.Fprint(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake-1","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}`+"\n\n")
				fl.Flush()
			}
			fmt.Fprint(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
			if req.StreamOptions.IncludeUsage {
				fmt.Fprintf(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake-1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", k, 10+k)
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

// gatewayWorld is a world with a model provider's prices (1 cent per
// output or reasoning token, half a cent per input token), a fake
// upstream, and the gateway in front of it.
func gatewayWorld(t testing.TB) (*world, *httptest.Server, *atomic.Int64) {
	w := newWorld(t, nil)
	for _, p := range []map[string]any{{"model": "fake-*", "unit_price": "10000"}, {"model": "fake-*", "token_type": "input", "unit_price": "5000"}} {
		p["currency"] = "USD"
		w.ok(201, w.call("POST", "/v1/billing/prices", w.merchKey, "", p))
	}
	up, served := fakeUpstream(t)
	u, _ := url.Parse(up.URL)
	g, err := gateway.New(gateway.Config{Upstream: u, Paybound: w.m.URL(), Provider: w.merch, ProviderKey: w.merchKey})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g)
	t.Cleanup(gw.Close)
	return w, gw, served
}

func gwPost(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// streamChunks reads an SSE body: the content of each chunk, whether a
// usage chunk came, and any error event.
func streamChunks(body string) (contents int, usage bool, errEvent string) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage json.RawMessage `json:"usage"`
			Error json.RawMessage `json:"error"`
		}
		json.Unmarshal([]byte(data), &c)
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" {
				contents++
			}
		}
		usage = usage || len(c.Usage) > 0
		if len(c.Error) > 0 {
			errEvent = string(c.Error)
		}
	}
	return contents, usage, errEvent
}

// TestGatewayBillsEveryKindOfRequest: chat (plain and streaming, the
// usage chunk asked for), responses and embeddings go through the gateway
// to the upstream and are billed exactly from their usage; a stream past
// its reservation is cut off there and billed what it streamed; a customer
// out of credit gets a 402 in OpenAI's error shape and the upstream never
// sees the request; an unknown key is refused.
func TestGatewayBillsEveryKindOfRequest(t *testing.T) {
	t.Parallel()
	w, gw, served := gatewayWorld(t)
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 1000, "currency": "USD"}))
	credit := func() int64 {
		a, r, _ := w.creditOf(w.merchKey, "", w.user, "USD")
		if r != 0 {
			t.Fatalf("%d still reserved after the request", r)
		}
		return a
	}

	// 10 prompt tokens at 0.5 cent + 5 output tokens at 1 cent.
	st, body := gwPost(t, gw.URL+"/v1/chat/completions", w.userKey, `{"model":"fake-1","max_tokens":50,"messages":[{"role":"user","content":"say 5"}]}`)
	if st != 200 || !strings.Contains(body, `"completion_tokens":5`) {
		t.Fatalf("chat: %d %s", st, body)
	}
	if c := credit(); c != 990 {
		t.Fatalf("credit after a chat: %d, want 990", c)
	}
	// Streaming, without include_usage: the gateway asks for it.
	st, body = gwPost(t, gw.URL+"/v1/chat/completions", w.userKey, `{"model":"fake-1","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"say 6"}]}`)
	if n, usage, e := streamChunks(body); st != 200 || n != 6 || !usage || e != "" || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream: %d %d chunks, usage %v, error %q:\n%s", st, n, usage, e, body)
	}
	if c := credit(); c != 979 {
		t.Fatalf("credit after a stream: %d, want 979", c)
	}
	// Responses: 10 input (5), 1 output and 2 reasoning tokens (3).
	st, body = gwPost(t, gw.URL+"/v1/responses", w.userKey, `{"model":"fake-1","max_output_tokens":20,"input":"say 3"}`)
	if st != 200 || !strings.Contains(body, `"output_tokens":3`) {
		t.Fatalf("responses: %d %s", st, body)
	}
	if c := credit(); c != 971 {
		t.Fatalf("credit after a response: %d, want 971", c)
	}
	// Embeddings: 7 input tokens cost 3.5 cents: 3 charged, half carried.
	st, body = gwPost(t, gw.URL+"/v1/embeddings", w.userKey, `{"model":"fake-embed","input":"say 1"}`)
	if st != 200 {
		t.Fatalf("embeddings: %d %s", st, body)
	}
	if c := credit(); c != 968 {
		t.Fatalf("credit after embeddings: %d, want 968", c)
	}

	// A stream past its reservation (10 tokens; the upstream ignores
	// max_tokens) is cut off after 10 tokens, which are billed with the
	// prompt estimated at a token per 4 bytes.
	req := `{"model":"fake-1","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"say 40"}]}`
	st, body = gwPost(t, gw.URL+"/v1/chat/completions", w.userKey, req)
	if n, _, e := streamChunks(body); st != 200 || n != 10 || !strings.Contains(e, "insufficient_credit") {
		t.Fatalf("a stream past its reservation: %d, %d chunks, error %q", st, n, e)
	}
	in := int64(len(req)/4 + 1) // half a cent each, after the half carried
	if c := credit(); c != 968-10-(1+in)/2 {
		t.Fatalf("credit after the cut-off stream: %d, want %d", c, 968-10-(1+in)/2)
	}

	// Out of credit: 402, and the upstream never sees it.
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.agent, "amount": 5, "currency": "USD"}))
	before := served.Load()
	st, body = gwPost(t, gw.URL+"/v1/chat/completions", w.agentKey, `{"model":"fake-1","max_tokens":50,"messages":[{"role":"user","content":"say 5"}]}`)
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	json.Unmarshal([]byte(body), &e)
	if st != 402 || e.Error.Type != "insufficient_quota" || e.Error.Code != "insufficient_credit" || !strings.Contains(e.Error.Message, "out of credit") {
		t.Fatalf("out of credit: %d %s", st, body)
	}
	if served.Load() != before {
		t.Fatal("the upstream served a request the customer could not pay for")
	}
	if a, r, _ := w.creditOf(w.merchKey, "", w.agent, "USD"); a != 5 || r != 0 {
		t.Fatalf("the refused customer's credit: %d %d", a, r)
	}
	if st, body := gwPost(t, gw.URL+"/v1/chat/completions", "sk-not-a-key", `{"model":"fake-1","messages":[]}`); st != 401 || !strings.Contains(body, "invalid_api_key") {
		t.Fatalf("an unknown key: %d %s", st, body)
	}
	if st, _ := gwPost(t, gw.URL+"/v1/models/x", w.userKey, `{}`); st != 404 {
		t.Fatalf("an unknown path: %d", st)
	}
	w.verify()
}

// TestGatewayOpenAINPM: the official openai npm client (7.55.0) calls the
// fake upstream through the gateway, plain and streaming, responses and
// embeddings, and is billed exactly from the usage; a customer out of
// credit sees the 402 as an APIError it can read.
func TestGatewayOpenAINPM(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("interop/node_modules is missing; ./test.sh runs npm ci in interop/")
		}
		t.Skip("interop/node_modules is missing; run ./test.sh")
	}
	w, gw, _ := gatewayWorld(t)
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 1000, "currency": "USD"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.agent, "amount": 5, "currency": "USD"}))
	cmd := exec.Command("node", "openai.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+gw.URL, "OPENAI_API_KEY="+w.userKey, "BROKE_KEY="+w.agentKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node openai.mjs: %v: %s", err, out)
	}
	var res struct {
		Chat struct {
			Content          string
			CompletionTokens int64 `json:"completion_tokens"`
		}
		Stream struct {
			Chunks int
			Text   string
		}
		Responses struct {
			OutputText   string `json:"output_text"`
			OutputTokens int64  `json:"output_tokens"`
		}
		Embeddings struct {
			Dims         int
			PromptTokens int64 `json:"prompt_tokens"`
		}
		Broke struct {
			APIError            bool `json:"api_error"`
			Status              int
			Code, Type, Message string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %s: %v", out, err)
	}
	if res.Chat.CompletionTokens != 5 || res.Chat.Content != strings.Repeat("tok ", 5) || res.Stream.Chunks != 6 ||
		res.Stream.Text != strings.Repeat("tok ", 6) || res.Responses.OutputTokens != 3 || res.Responses.OutputText != strings.Repeat("tok ", 3) ||
		res.Embeddings.Dims != 2 || res.Embeddings.PromptTokens != 7 {
		t.Fatalf("what the client read: %s", out)
	}
	if !res.Broke.APIError || res.Broke.Status != 402 || res.Broke.Code != "insufficient_credit" || res.Broke.Type != "insufficient_quota" ||
		!strings.Contains(res.Broke.Message, "out of credit") {
		t.Fatalf("the client out of credit saw: %+v", res.Broke)
	}
	// 10 + 11 + 8 + 3 (half a cent carried) cents, as TestGatewayBillsEveryKindOfRequest.
	if a, r, _ := w.creditOf(w.merchKey, "", w.user, "USD"); a != 968 || r != 0 {
		t.Fatalf("credit after the client's calls: available %d, reserved %d; want 968, 0", a, r)
	}
	if a, r, _ := w.creditOf(w.merchKey, "", w.agent, "USD"); a != 5 || r != 0 {
		t.Fatalf("the refused customer's credit: %d %d", a, r)
	}
	w.verify()
}
