// Package mcpserver is Paybound's Model Context Protocol server: the tools
// an agent pays with and a merchant gets paid with, the resources an agent
// reads (its mandates, its recent payments) and a prompt that explains to a
// model how to pay safely. It is a protocol adapter like the REST API: its
// tools call a Backend bound to one authenticated caller, in process for
// the server's /mcp endpoint (InProcess) or through the Go SDK for the
// stdio command, and every check of a payment (mandate, confirmation,
// risk) is the server's, the same as the REST API's.
//
// Every tool has an input schema whose descriptions a model can follow, an
// output schema its structuredContent matches, and annotations. Amounts are
// integers in the currency's minor units, with the currency and a formatted
// amount in the text. A refusal is a tool result with isError, a stable
// code in structuredContent.error.code and a sentence the model can act on,
// never a protocol error.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
)

// Version is the server's implementation version in MCP's initialize.
const Version = "1.0.0"

// MaxArgumentsBytes bounds a tool call's arguments.
const MaxArgumentsBytes = 64 << 10

// Resolver returns the backend of the caller that sent a request: from the
// request's authentication (extra.TokenInfo, set by Handler) for /mcp, or
// the one backend of a stdio session.
type Resolver func(ctx context.Context, extra *mcp.RequestExtra) (Backend, error)

// Config configures the servers. Zero values take the documented defaults.
type Config struct {
	Backend Resolver // required
	Clock   pb.Clock // default: wall clock
	Logger  *slog.Logger
	// PollInterval is how often wait_for_confirmation reads the payment
	// (default 1 s).
	PollInterval time.Duration
	// ElicitTimeout bounds how long pay waits for the user to act on the
	// confirmation link it shows through elicitation (default 2 min).
	ElicitTimeout time.Duration
}

// Side says which tools a server offers: an agent's or a merchant's.
type Side int

const (
	AgentSide Side = iota
	MerchantSide
)

type server struct {
	cfg Config
	// impl is the server's implementation, as the SDK names it in a
	// result's _meta (protocol 2026-07-28).
	impl *mcp.Implementation
	// tools are the handlers of the tools registered on the server, by
	// name, for the calls /mcp answers without the SDK (fastCall).
	tools map[string]toolFunc
}

// NewServer returns the MCP server of one side: the agent's tools,
// resources and prompt, or the merchant's tools. One server serves any
// number of sessions and callers; each call finds its caller's backend
// through cfg.Backend.
func NewServer(side Side, cfg Config) (*mcp.Server, error) {
	ms, _, err := newServer(side, cfg)
	return ms, err
}

// newServer is NewServer, with the tools' handlers.
func newServer(side Side, cfg Config) (*mcp.Server, *server, error) {
	if cfg.Backend == nil {
		return nil, nil, errors.New("mcpserver: Config.Backend is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.ElicitTimeout <= 0 {
		cfg.ElicitTimeout = 2 * time.Minute
	}
	name, instr := "paybound-agent", agentInstructions
	if side == MerchantSide {
		name, instr = "paybound-merchant", merchantInstructions
	}
	s := &server{cfg: cfg, impl: &mcp.Implementation{Name: name, Title: "Paybound", Version: Version}, tools: map[string]toolFunc{}}
	ms := mcp.NewServer(s.impl, &mcp.ServerOptions{Instructions: instr, Logger: cfg.Logger})
	var err error
	if side == MerchantSide {
		err = s.merchantTools(ms)
	} else {
		err = s.agentTools(ms)
		if err == nil {
			s.resources(ms)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return ms, s, nil
}

const agentInstructions = "Paybound pays merchants from your user's wallet, only within the mandates your user granted you. " +
	"Read the prompt pay_safely before paying. Amounts are integers in the currency's minor units (1250 USD = 12.50 USD)."

const merchantInstructions = "Paybound's merchant tools: payment links, captures, cancels, refunds, balances, settlement and disputes. " +
	"Amounts are integers in the currency's minor units (1250 USD = 12.50 USD)."

// annotations of the tools' kinds.
func readOnly(title string) *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{Title: title, ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}
}

// moves is a tool that changes state; idempotent through its key.
func moves(title string, destructive bool) *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{Title: title, DestructiveHint: ptr(destructive), IdempotentHint: true, OpenWorldHint: ptr(true)}
}

func ptr[T any](v T) *T { return &v }

// handler is a tool's body: it returns the structured output and the text
// a model reads, or an error.
type handler[In, Out any] func(ctx context.Context, b Backend, in In) (Out, string, error)

// addTool registers a tool whose schemas are inferred from In and Out.
// Arguments are validated against the input schema and decoded strictly
// (unknown properties refused); every failure, the backend's included, is
// answered as a tool result with isError (see errorResult).
func addTool[In, Out any](s *server, ms *mcp.Server, name, desc string, ann *mcp.ToolAnnotations, h handler[In, Out], patches ...patch) error {
	in, err := jsonschema.For[In](nil)
	if err != nil {
		return fmt.Errorf("mcpserver: %s input schema: %w", name, err)
	}
	for _, p := range patches {
		prop, ok := in.Properties[p.prop]
		if !ok {
			return fmt.Errorf("mcpserver: %s has no argument %s", name, p.prop)
		}
		if p.values != nil {
			prop.Enum = p.values
		}
		if p.schema != nil {
			in.Properties[p.prop] = p.schema
		}
	}
	out, err := jsonschema.For[Out](nil)
	if err != nil {
		return fmt.Errorf("mcpserver: %s output schema: %w", name, err)
	}
	// A refusal's structuredContent is the error object, and clients check
	// every structuredContent against the output schema, refusals too: the
	// schema is the tool's output or the error.
	out = &jsonschema.Schema{Type: "object", AnyOf: []*jsonschema.Schema{out, errorSchema()}}
	resolved, err := in.Resolve(nil)
	if err != nil {
		return fmt.Errorf("mcpserver: %s input schema: %w", name, err)
	}
	// The SDK marshals a tool's input schema again for every request of
	// protocol 2026-07-28 (to find parameters bound to headers); as bytes,
	// that is a copy, where the Schema's reflective marshaling cost 7% of a
	// pay call's CPU.
	inJSON, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("mcpserver: %s input schema: %w", name, err)
	}
	quick := compileArgs(inJSON)
	call := func(ctx context.Context, req *mcp.CallToolRequest) *mcp.CallToolResult {
		args, err := decodeArgs[In](req.Params.Arguments, quick, resolved)
		if err != nil {
			return s.errorResult(name, err)
		}
		b, err := s.cfg.Backend(ctx, req.Extra)
		if err != nil {
			return s.errorResult(name, err)
		}
		v, text, err := h(context.WithValue(ctx, sessionKey{}, req.Session), b, args)
		if err != nil {
			return s.errorResult(name, err)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, StructuredContent: v}
	}
	s.tools[name] = call
	ms.AddTool(&mcp.Tool{Name: name, Title: ann.Title, Description: desc, InputSchema: json.RawMessage(inJSON), OutputSchema: out, Annotations: ann},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return call(ctx, req), nil
		})
	return nil
}

// toolFunc is a tool's body as addTool registers it: every outcome is a
// result, never an error.
type toolFunc func(ctx context.Context, req *mcp.CallToolRequest) *mcp.CallToolResult

// sessionKey carries the session of a tool call to its handler (for
// elicitation).
type sessionKey struct{}

// patch changes an argument's inferred schema: values restricts it to an
// enumeration, schema replaces it.
type patch struct {
	prop   string
	values []any
	schema *jsonschema.Schema
}

// decodeArgs validates raw against the tool's schema and decodes it into
// In, refusing unknown properties. quick (nil: none) checks the schema's
// common keywords fast; only what it does not find valid goes through
// the general validator.
func decodeArgs[In any](raw json.RawMessage, quick *argsSchema, schema *jsonschema.Resolved) (In, error) {
	var in In
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if len(raw) > MaxArgumentsBytes {
		return in, pb.Errorf(pb.ErrBodyTooLarge, "", "the arguments are larger than %d bytes", MaxArgumentsBytes)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return in, pb.Errorf(pb.ErrInvalidJSON, "", "the arguments are not valid JSON: %v", err)
	}
	if quick == nil || !quick.valid(generic) {
		if err := schema.Validate(generic); err != nil {
			return in, pb.Errorf(pb.ErrParameterInvalid, "", "the arguments do not match the tool's input schema: %v", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, pb.Errorf(pb.ErrParameterInvalid, "", "the arguments do not match the tool's input schema: %v", err)
	}
	return in, nil
}

// ToolError is the structuredContent of a refused call: the REST API's
// error object.
type ToolError struct {
	Error *pb.Error `json:"error"`
}

// errorSchema is ToolError's schema: the REST API's error object.
func errorSchema() *jsonschema.Schema {
	str := func(d string) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Description: d} }
	return &jsonschema.Schema{Type: "object", Required: []string{"error"}, AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}},
		Properties: map[string]*jsonschema.Schema{"error": {Type: "object", Required: []string{"type", "code", "message"},
			Description: "why the call was refused; nothing changed unless the type is internal_error",
			Properties: map[string]*jsonschema.Schema{
				"type":       str("invalid_request, authentication_error, permission_error, not_found, conflict, payment_declined, rate_limited or internal_error"),
				"code":       str("the precise, stable reason, such as mandate_amount_exceeded"),
				"message":    str("a sentence for people"),
				"param":      str("the argument at fault"),
				"payment_id": str("the declined payment, which is recorded"),
			}}}}
}

// errorResult answers err as a tool result with isError: a coded error
// with its code, type and message (and the declined payment's ID), or an
// internal error, logged and not shown. The text says what the model can
// do about it.
func (s *server) errorResult(tool string, err error) *mcp.CallToolResult {
	var e *pb.Error
	if !errors.As(err, &e) {
		s.cfg.Logger.Error("mcp tool failed", "tool", tool, "err", err)
		e = &pb.Error{Code: pb.ErrInternal, Message: "an internal error occurred; it has been logged"}
	}
	text := fmt.Sprintf("Error %s (%s): %s", e.Code, e.Code.Type(), e.Message)
	if e.Param != "" {
		text += fmt.Sprintf(" [argument: %s]", e.Param)
	}
	text += " " + advice(e)
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}, StructuredContent: ToolError{e}}
}

// advice is the sentence a model can act on, by the error's type.
func advice(e *pb.Error) string {
	switch e.Code.Type() {
	case pb.TypeDeclined:
		s := "No money moved."
		if e.PaymentID != "" {
			s = fmt.Sprintf("Payment %s was declined; no money moved.", e.PaymentID)
		}
		return s + " Do not retry with other arguments to get around the mandate: tell the user why, and ask them to change the mandate or pay themselves."
	case pb.TypeInvalidRequest:
		if e.Code == pb.ErrIdempotencyConflict {
			return "Nothing changed. This idempotency_key was used for a different request: use a new key for a new payment, or the same arguments to retry the first."
		}
		return "Nothing changed. Fix the argument and call again."
	case pb.TypeAuthentication, pb.TypePermission:
		return "Nothing changed. These credentials may not do this; ask the user."
	case pb.TypeNotFound:
		return "Nothing changed. Check the ID: you can only see what you are a party to."
	case pb.TypeConflict:
		return "Nothing changed. Read the object's current state before trying again."
	case pb.TypeRateLimited:
		return "Nothing changed. Wait a moment and retry with the same idempotency_key."
	}
	return "The outcome is unknown: retry with the same idempotency_key, which can never pay twice."
}

// Money is an amount with its currency and the amount formatted.
type Money struct {
	Amount    int64  `json:"amount" jsonschema:"integer count of the currency's minor units"`
	Currency  string `json:"currency" jsonschema:"ISO 4217 code, upper case"`
	Formatted string `json:"formatted" jsonschema:"the amount in major units, such as 12.50 USD"`
}

func money(amount int64, currency string) Money {
	return Money{amount, currency, pb.FormatAmount(amount, currency) + " " + currency}
}

// stamp formats an optional time for the tools' outputs.
func stamp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// page bounds a list's arguments: limit defaults to 10 and is at most
// pb.MaxListLimit; starting_after must be an ID of the list (prefix).
func page(limit int, after, prefix string) (int, error) {
	if after != "" && (!pb.HasPrefix(after, prefix) || len(after) > 100) {
		return 0, pb.Errorf(pb.ErrParameterInvalid, "starting_after", "starting_after must be an ID of this list (%s…)", prefix)
	}
	switch {
	case limit == 0:
		return 10, nil
	case limit < 0 || limit > pb.MaxListLimit:
		return 0, pb.Errorf(pb.ErrParameterInvalid, "limit", "limit must be from 1 to %d", pb.MaxListLimit)
	}
	return limit, nil
}

// List is a page of a list tool's rows, newest first.
type List[T any] struct {
	Data    []T  `json:"data"`
	HasMore bool `json:"has_more" jsonschema:"true when there are more: call again with starting_after the last ID"`
}

// listed is a page of rows as the tools show it: the structured page and
// a line of text a row, each made by conv.
func listed[Row, Out any](rows []Row, more bool, noun string, conv func(*Row) (Out, string)) (List[Out], string) {
	out := List[Out]{Data: make([]Out, len(rows)), HasMore: more}
	lines := []string{fmt.Sprintf("%d %s:", len(rows), noun)}
	for i := range rows {
		var line string
		out.Data[i], line = conv(&rows[i])
		lines = append(lines, line)
	}
	if more {
		lines = append(lines, "More: call again with starting_after the last ID.")
	}
	return out, strings.Join(lines, "\n")
}

// listTool is the handler of a list tool: the page's bounds checked (IDs
// of prefix), the rows fetched and converted.
func listTool[In, Row, Out any](prefix, noun string, bounds func(In) (limit int, after string),
	fetch func(ctx context.Context, b Backend, in In, limit int) ([]Row, bool, error), conv func(*Row) (Out, string)) handler[In, List[Out]] {
	return func(ctx context.Context, b Backend, in In) (List[Out], string, error) {
		limit, after := bounds(in)
		limit, err := page(limit, after, prefix)
		if err != nil {
			return List[Out]{}, "", err
		}
		rows, more, err := fetch(ctx, b, in, limit)
		if err != nil {
			return List[Out]{}, "", err
		}
		out, text := listed(rows, more, noun, conv)
		return out, text, nil
	}
}
