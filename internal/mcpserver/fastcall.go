package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	sjson "github.com/segmentio/encoding/json"
)

// fastVersion is the protocol whose tool calls fastCall answers: each
// request stands alone (no session), so its answer depends on the request
// only.
const fastVersion = "2026-07-28"

// fastCall answers, without the SDK, the commonest request to /mcp of
// protocol 2026-07-28: one tools/call of one of s's tools, from a client
// that declares no capability but roots. It reports whether it answered;
// when it did not, nothing was written and the SDK serves the request, as
// it serves every other one (initialize, server/discover, lists, reads,
// batches, notifications, older protocols, anything fastCall does not
// recognise to the byte, and every request the SDK refuses).
//
// Why: the SDK (v1.8.0) builds a session for each request of this
// protocol, decodes the body about eight times, each through a decoder
// that allocates a 32 KiB buffer, and re-reads the tool's input schema;
// that cost more server CPU than the payment a pay call makes. fastCall
// decodes the body once and calls the tool's handler, the one the SDK
// calls, with the request the SDK would build (without its session).
//
// Its contract is the SDK's answer, byte for byte: the same status,
// headers and body (TestFastCallAnswersAsTheSDK sends each request to
// both; it is what says, when the SDK is upgraded, whether the two still
// agree). It accepts only what it checks the SDK would accept and answer
// with the tool's result: a POST whose Content-Type is application/json,
// whose Accept takes JSON and event streams, without Last-Event-ID, not
// refused by the SDK's DNS rebinding protection, with a bearer
// Authorization header (the SDK's middleware wants one), a body that is
// one JSON-RPC 2.0 call with an integer or plain string ID, method
// tools/call, params of only _meta, name and arguments, Mcp-Method and
// Mcp-Name headers that match them, and _meta of only the protocol
// version (the header's), the client's capabilities (roots only: a client
// that can elicit goes to the SDK, whose session pay elicits through) and
// optionally its clientInfo. The tool's handler runs with a context that
// is not canceled when the client goes away, as the SDK's is not for
// this protocol: a payment, once asked for, is decided.
func fastCall(s *server, w http.ResponseWriter, r *http.Request, body []byte, token *auth.TokenInfo) bool {
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Protocol-Version") != fastVersion ||
		len(r.Header.Values("Content-Type")) != 1 || r.Header.Get("Content-Type") != "application/json" ||
		len(r.Header.Values("Last-Event-ID")) > 0 || !acceptsBoth(r.Header.Values("Accept")) ||
		!bearer(r.Header.Get("Authorization")) || rebinding(r) {
		return false
	}
	var msg fastMsg
	if rest, err := sjson.Parse(body, &msg, sjson.DisallowUnknownFields|sjson.DontMatchCaseInsensitiveStructFields); err != nil || len(rest) != 0 {
		return false
	}
	p := msg.Params
	if msg.JSONRPC == nil || *msg.JSONRPC != "2.0" || !plainID(msg.ID) || msg.Method == nil || *msg.Method != "tools/call" ||
		r.Header.Get("Mcp-Method") != "tools/call" || p == nil || p.Name == nil || *p.Name == "" || r.Header.Get("Mcp-Name") != *p.Name ||
		p.Meta == nil || p.Meta.Version == nil || *p.Meta.Version != fastVersion || p.Meta.Caps == nil {
		return false
	}
	if ci := p.Meta.Info; ci != nil && (ci.Name == nil || ci.Version == nil) {
		return false
	}
	name, id := *p.Name, msg.ID
	call, ok := s.tools[name]
	if !ok {
		return false
	}
	// The request the SDK gives a tool's handler but for its session and
	// the params' _meta, which this package's handlers do not read: a
	// session of this protocol cannot send the client requests, and only
	// pay's elicitation would, for a client that declares it can.
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: name, Arguments: p.Arguments},
		Extra: &mcp.RequestExtra{TokenInfo: token, Header: r.Header}}
	out := *call(context.WithoutCancel(r.Context()), req)
	if out.Content == nil {
		out.Content = []mcp.Content{}
	}
	rm := mcp.Meta{}
	for k, v := range out.Meta {
		rm[k] = v
	}
	if _, ok := rm[metaServerInfo]; !ok {
		rm[metaServerInfo] = s.impl
	}
	out.Meta = rm
	result, err := json.Marshal(&out)
	if err != nil {
		// The tool has run: the SDK must not run it again. No result of
		// this package's tools fails to encode.
		s.cfg.Logger.Error("mcp: couldn't encode a tool's result", "tool", name, "err", err)
		writeRPCError(w, id, -32603, "couldn't encode the result")
		return true
	}
	// The SDK writes the result with its resultType, which a handler
	// cannot set: complete, last.
	buf := make([]byte, 0, len(result)+len(id)+64)
	buf = append(buf, `{"jsonrpc":"2.0","id":`...)
	buf = append(buf, id...)
	buf = append(buf, `,"result":`...)
	buf = append(buf, result[:len(result)-1]...)
	buf = append(buf, `,"resultType":"complete"}}`...)
	w.Header().Set("Cache-Control", "no-cache, no-transform")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(buf)
	fastCalls.Add(1)
	return true
}

// fastCalls counts the calls fastCall answered (for tests).
var fastCalls atomic.Int64

// writeRPCError answers a JSON-RPC error for call id.
func writeRPCError(w http.ResponseWriter, id json.RawMessage, code int, msg string) {
	m, _ := json.Marshal(msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s}}`, id, code, m)
}

// metaServerInfo is the key of the server's implementation in a result's
// _meta.
const metaServerInfo = "io.modelcontextprotocol/serverInfo"

// fastMsg is the request fastCall answers. It is decoded as the SDK
// decodes it (segmentio's decoder, keys matched exactly, a repeated key's
// last value), refusing every member it does not name and every value of
// another type; a member it needs that is absent or null is nil.
type fastMsg struct {
	JSONRPC *string         `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  *struct {
		Meta *struct {
			Version *string `json:"io.modelcontextprotocol/protocolVersion"`
			// Roots is the only capability taken: elicitation would
			// need the SDK's session.
			Caps *struct {
				Roots *struct {
					ListChanged *bool `json:"listChanged"`
				} `json:"roots"`
			} `json:"io.modelcontextprotocol/clientCapabilities"`
			Info *struct {
				Name    *string `json:"name"`
				Title   *string `json:"title"`
				Version *string `json:"version"`
			} `json:"io.modelcontextprotocol/clientInfo"`
		} `json:"_meta"`
		Name      *string         `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"params"`
}

// plainID reports whether a JSON-RPC ID is one the SDK writes back as it
// came: an integer of at most 15 digits without a leading zero, or a
// string of letters, digits and - _ . :
func plainID(id json.RawMessage) bool {
	if len(id) == 0 || len(id) > 66 {
		return false
	}
	if id[0] == '"' {
		if len(id) < 3 || id[len(id)-1] != '"' {
			return false
		}
		for _, c := range id[1 : len(id)-1] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
				return false
			}
		}
		return true
	}
	if len(id) > 15 || (id[0] == '0' && len(id) > 1) {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// acceptsBoth reports whether Accept takes application/json and
// text/event-stream, as the SDK requires of a POST.
func acceptsBoth(values []string) bool {
	var js, sse bool
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(strings.TrimSpace(t), ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				js = true
			case "text/event-stream", "text/*":
				sse = true
			case "*/*":
				js, sse = true, true
			}
		}
	}
	return js && sse
}

// bearer reports whether an Authorization header is one the SDK's bearer
// middleware takes a token from.
func bearer(h string) bool {
	f := strings.Fields(h)
	return len(f) == 2 && strings.EqualFold(f[0], "bearer")
}

// rebinding reports whether the SDK's DNS rebinding protection could
// refuse r: it arrived on a loopback address for a Host that is not
// plainly one.
func rebinding(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || local == nil || !loopback(local.String()) {
		return false
	}
	return !loopback(r.Host)
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
