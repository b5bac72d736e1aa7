package mcpserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/mcpserver"
)

// TestFastCallAnswersAsTheSDK sends each request to /mcp twice, once
// served by the SDK alone and once by the handler that answers common
// tool calls itself (fastCall), and requires the same status, headers and
// body, byte for byte. A call that moves money goes first to one and then,
// with the same idempotency key, to the other, which answers it from the
// stored response: both must read the same. It also requires that the
// fast path took the calls it is meant to take and left every other
// request to the SDK, and that the money moved is exactly the payments
// made once each.
func TestFastCallAnswersAsTheSDK(t *testing.T) {
	w := newWorld(t)
	merch := w.merchant(t, "shop")
	user := w.user(t, 100_000)
	agent := w.agent(t, user)
	mdt := w.mandate(t, user, agent, 500, 50_000, 300)
	keys := map[string]pb.Principal{"agent-key": agent, "merchant-key": merch, "user-key": user}
	authn := func(r *http.Request, _ []byte) (pb.Principal, error) {
		if p, ok := keys[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]; ok {
			return p, nil
		}
		return pb.Principal{}, pb.Errorf(pb.ErrUnauthenticated, "", "who are you")
	}
	cfg := mcpserver.Config{Clock: w.clock}
	fast, err := mcpserver.NewHandler(authn, w.be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := mcpserver.NewHandlerSDK(authn, w.be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fastSrv, sdkSrv := httptest.NewServer(fast), httptest.NewServer(sdk)
	defer fastSrv.Close()
	defer sdkSrv.Close()

	meta := `{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`
	callBody := func(id, tool, args string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"_meta":%s,"name":%q,"arguments":%s}}`, id, meta, tool, args)
	}
	pay := func(amount any, key string) string {
		return fmt.Sprintf(`{"merchant_id":%q,"amount":%v,"currency":"USD","description":"beans","mandate_id":%q,"idempotency_key":%q}`, merch.ID, amount, mdt, key)
	}
	type req struct {
		name    string
		key     string // Authorization: Bearer key
		tool    string // Mcp-Name ("" for none)
		body    string
		header  map[string]string // replaces the usual headers
		fast    bool              // fastCall answers it
		fastFst bool              // send it to the fast handler first
	}
	reqs := []req{
		{name: "pay", tool: "pay", body: callBody("1", "pay", pay(100, "k1")), fast: true},
		{name: "pay, fast first", tool: "pay", body: callBody("2", "pay", pay(120, "k2")), fast: true, fastFst: true},
		{name: "pay that needs confirmation", tool: "pay", body: callBody("3", "pay", pay(400, "k3")), fast: true, fastFst: true},
		{name: "declined pay", tool: "pay", body: callBody("4", "pay", pay(1000, "k4")), fast: true},
		{name: "an amount of the wrong type", tool: "pay", body: callBody("5", "pay", pay(`"ten"`, "k5")), fast: true},
		{name: "an unknown argument", tool: "pay", body: callBody("6", "pay", `{"tip":1}`), fast: true},
		{name: "a key replayed with another amount", tool: "pay", body: callBody("7", "pay", pay(101, "k1")), fast: true},
		{name: "HTML and unicode in the text", tool: "pay", body: callBody("8", "pay", strings.Replace(pay(130, "k8"), "beans", `<b>&\"é\u2028 beans`, 1)), fast: true, fastFst: true},
		{name: "string ID", tool: "wallet_summary", body: callBody(`"abc-1.x:y_z"`, "wallet_summary", `{}`), fast: true},
		{name: "no arguments", tool: "wallet_summary", body: strings.Replace(callBody("9", "wallet_summary", `{}`), `,"arguments":{}`, "", 1), fast: true},
		{name: "null arguments", tool: "wallet_summary", body: callBody("10", "wallet_summary", `null`), fast: true},
		{name: "client title, no roots", tool: "list_payments", body: strings.Replace(callBody("11", "list_payments", `{"limit":3}`),
			`{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}`, `{},"io.modelcontextprotocol/clientInfo":{"name":"t","title":"T","version":"1"}`, 1), fast: true},
		{name: "merchant's list", key: "merchant-key", tool: "list_payments", body: callBody("12", "list_payments", `{}`), fast: true},
		{name: "merchant's balance", key: "merchant-key", tool: "get_balance", body: callBody("13", "get_balance", `{}`), fast: true},
		{name: "another side's tool", key: "merchant-key", tool: "pay", body: callBody("14", "pay", pay(100, "k14"))},
		{name: "unknown tool", tool: "nope", body: callBody("15", "nope", `{}`)},
		{name: "Mcp-Name differs", tool: "wallet_summary", body: callBody("16", "list_mandates", `{}`)},
		{name: "no Mcp-Name", body: callBody("17", "wallet_summary", `{}`)},
		{name: "no protocol version in _meta", tool: "wallet_summary", body: strings.Replace(callBody("18", "wallet_summary", `{}`), `,"io.modelcontextprotocol/protocolVersion":"2026-07-28"`, "", 1)},
		{name: "another protocol version in _meta", tool: "wallet_summary", body: strings.Replace(callBody("19", "wallet_summary", `{}`), `protocolVersion":"2026-07-28"`, `protocolVersion":"2025-11-25"`, 1)},
		{name: "a client that elicits", tool: "pay", body: strings.Replace(callBody("20", "pay", pay(400, "k20")), `"roots":{"listChanged":true}`, `"elicitation":{"url":{}}`, 1)},
		{name: "a log level", tool: "wallet_summary", body: strings.Replace(callBody("21", "wallet_summary", `{}`), `{"io.`, `{"io.modelcontextprotocol/logLevel":"debug","io.`, 1)},
		{name: "a field named in other case", tool: "wallet_summary", body: strings.Replace(callBody("22", "wallet_summary", `{}`), `"name":`, `"Name":`, 1)},
		{name: "a repeated field", tool: "wallet_summary", body: strings.Replace(callBody("23", "wallet_summary", `{}`), `"name":"wallet_summary"`, `"name":"list_mandates","name":"wallet_summary"`, 1), fast: true},
		{name: "a repeated version", tool: "wallet_summary", body: strings.Replace(callBody("34", "wallet_summary", `{}`), `{"io.`, `{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.`, 1), fast: true},
		{name: "an extra member", tool: "wallet_summary", body: strings.Replace(callBody("24", "wallet_summary", `{}`), `"jsonrpc":"2.0"`, `"jsonrpc":"2.0","x":1`, 1)},
		{name: "JSON-RPC 1.0", tool: "wallet_summary", body: strings.Replace(callBody("25", "wallet_summary", `{}`), `"2.0"`, `"1.0"`, 1)},
		{name: "a fractional ID", tool: "wallet_summary", body: callBody("26.5", "wallet_summary", `{}`)},
		{name: "a null ID", tool: "wallet_summary", body: callBody("null", "wallet_summary", `{}`)},
		{name: "a batch", tool: "wallet_summary", body: "[" + callBody("27", "wallet_summary", `{}`) + "]"},
		{name: "trailing data", tool: "wallet_summary", body: callBody("28", "wallet_summary", `{}`) + "{}"},
		{name: "not JSON", tool: "wallet_summary", body: `{"jsonrpc":`},
		{name: "Accept without event streams", tool: "wallet_summary", body: callBody("29", "wallet_summary", `{}`), header: map[string]string{"Accept": "application/json"}},
		{name: "a charset", tool: "wallet_summary", body: callBody("30", "wallet_summary", `{}`), header: map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{name: "protocol 2025-11-25 without a session", tool: "wallet_summary", body: callBody("31", "wallet_summary", `{}`), header: map[string]string{"Mcp-Protocol-Version": "2025-11-25"}},
		{name: "a GET", tool: "wallet_summary", header: map[string]string{"method": "GET"}},
		{name: "a user's key", key: "user-key", tool: "wallet_summary", body: callBody("32", "wallet_summary", `{}`)},
		{name: "discover", body: `{"jsonrpc":"2.0","id":33,"method":"server/discover","params":{"_meta":` + meta + `}}`,
			header: map[string]string{"Mcp-Method": "server/discover"}},
	}
	send := func(base string, q req) (int, http.Header, []byte) {
		method := http.MethodPost
		if m, ok := q.header["method"]; ok {
			method = m
		}
		r, err := http.NewRequest(method, base+"/mcp", strings.NewReader(q.body))
		if err != nil {
			t.Fatal(err)
		}
		key := q.key
		if key == "" {
			key = "agent-key"
		}
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		r.Header.Set("Mcp-Method", "tools/call")
		if q.tool != "" {
			r.Header.Set("Mcp-Name", q.tool)
		}
		for k, v := range q.header {
			r.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		res.Header.Del("Date")
		return res.StatusCode, res.Header, b
	}
	for _, q := range reqs {
		before := mcpserver.FastCalls()
		var fs, ss int
		var fh, sh http.Header
		var fb, sb []byte
		if q.fastFst {
			fs, fh, fb = send(fastSrv.URL, q)
			ss, sh, sb = send(sdkSrv.URL, q)
		} else {
			ss, sh, sb = send(sdkSrv.URL, q)
			fs, fh, fb = send(fastSrv.URL, q)
		}
		if took := mcpserver.FastCalls() - before; took != map[bool]int64{true: 1}[q.fast] {
			t.Errorf("%s: fastCall answered %d requests, want %d", q.name, took, map[bool]int64{true: 1}[q.fast])
		}
		t.Logf("%s: %d %.300s", q.name, fs, fb)
		if fs != ss || !bytes.Equal(fb, sb) {
			t.Errorf("%s: fast path answered %d %s\nthe SDK %d %s", q.name, fs, fb, ss, sb)
		}
		fj, _ := json.Marshal(fh)
		sj, _ := json.Marshal(sh)
		if !bytes.Equal(fj, sj) {
			t.Errorf("%s: fast path's headers %s\nthe SDK's %s", q.name, fj, sj)
		}
	}
	// k1, k2 and k8 paid once each; k3 waits for the user; the rest moved
	// nothing.
	if got, want := w.available(t, user), int64(100_000-100-120-130); got != want {
		t.Errorf("user's available balance = %d, want %d", got, want)
	}
	w.verify(t)
}
