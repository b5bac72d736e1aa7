package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	pb "github.com/paybound/paybound"
)

// Trace is a payment's history as the transparency log holds it, as the
// caller may read it (docs/visibility.md): each entry's exact bytes with
// its index and its inclusion proof (base64 hashes) against Checkpoint, a
// signed note.
type Trace struct {
	Object     string       `json:"object"`
	PaymentID  string       `json:"payment_id"`
	Entries    []TraceEntry `json:"entries"`
	Checkpoint string       `json:"checkpoint"`
}

// TraceEntry is one entry of a trace. An entry withheld from the caller is
// Redacted: it has no Entry, but its Type and the Reason, and, when the
// server can give it safely, its LeafHash (hex, as the payment's next
// entry names it in prev) with its inclusion proof. Risk opens a
// payment.created entry's risk_sha256 for the parties that may read it
// (pb.RiskOpening.Verify checks it).
type TraceEntry struct {
	Index          int64           `json:"index"`
	Entry          string          `json:"entry,omitempty"`
	InclusionProof []string        `json:"inclusion_proof,omitempty"`
	Redacted       bool            `json:"redacted,omitempty"`
	Type           string          `json:"type,omitempty"`
	Reason         string          `json:"reason,omitempty"`
	LeafHash       string          `json:"leaf_hash,omitempty"`
	Risk           *pb.RiskOpening `json:"risk,omitempty"`
}

// Receipt is a payment's receipt: its entries as C2SP tlog-proofs, to keep
// and verify offline (paybound verify receipt). The entries withheld from
// its holder are in Withheld (those with a leaf hash have a proof without
// an extra line); Risk opens the payment.created entry's risk_sha256 for
// the parties that may read it.
type Receipt struct {
	Object    string          `json:"object"`
	PaymentID string          `json:"payment_id"`
	LogKey    string          `json:"log_key"`
	Proofs    []string        `json:"proofs"`
	Withheld  []WithheldEntry `json:"withheld,omitempty"`
	Risk      *pb.RiskOpening `json:"risk,omitempty"`
}

// WithheldEntry is an entry of a receipt that its holder may not read.
type WithheldEntry = pb.WithheldEntry

// Proof is an inclusion proof (Index, Size) or a consistency proof (Old,
// New): base64 hashes.
type Proof struct {
	Index  int64    `json:"index"`
	Size   int64    `json:"size"`
	Old    int64    `json:"old"`
	New    int64    `json:"new"`
	Hashes []string `json:"hashes"`
}

// PaymentTrace (any party to the payment) returns its trace.
func (c *Client) PaymentTrace(ctx context.Context, id string) (*Trace, error) {
	path, err := paymentPath(id, "/trace")
	if err != nil {
		return nil, err
	}
	var out Trace
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// PaymentReceipt (any party to the payment) returns its receipt.
func (c *Client) PaymentReceipt(ctx context.Context, id string) (*Receipt, error) {
	path, err := paymentPath(id, "/receipt")
	if err != nil {
		return nil, err
	}
	var out Receipt
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// LogKey returns the log's note verifier key (no API key needed).
func (c *Client) LogKey(ctx context.Context) (string, error) {
	b, err := c.raw(ctx, "/v1/log/key", nil)
	return string(trimNewline(b)), err
}

// LogCheckpoint returns the latest signed checkpoint (no API key needed).
func (c *Client) LogCheckpoint(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/v1/log/checkpoint", nil)
}

// LogEntry returns entry index's exact bytes (operator, or a party to the
// entry's subject).
func (c *Client) LogEntry(ctx context.Context, index int64) ([]byte, error) {
	return c.raw(ctx, "/v1/log/entries/"+strconv.FormatInt(index, 10), nil)
}

// InclusionProof proves entry index in the tree of size entries.
func (c *Client) InclusionProof(ctx context.Context, index, size int64) (*Proof, error) {
	var out Proof
	q := url.Values{"index": {strconv.FormatInt(index, 10)}, "size": {strconv.FormatInt(size, 10)}}
	return &out, c.call(ctx, call{method: http.MethodGet, path: "/v1/log/proof/inclusion", query: q, out: &out})
}

// ConsistencyProof proves the tree of old entries a prefix of new's.
func (c *Client) ConsistencyProof(ctx context.Context, old, new int64) (*Proof, error) {
	var out Proof
	q := url.Values{"old": {strconv.FormatInt(old, 10)}, "new": {strconv.FormatInt(new, 10)}}
	return &out, c.call(ctx, call{method: http.MethodGet, path: "/v1/log/proof/consistency", query: q, out: &out})
}

func (c *Client) raw(ctx context.Context, path string, q url.Values) ([]byte, error) {
	var b []byte
	if err := c.call(ctx, call{method: http.MethodGet, path: path, query: q, out: &b}); err != nil {
		return nil, err
	}
	return b, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// LogTile returns a C2SP tlog-tiles tile: path is what follows
// /v1/log/tile/ (tlog.TilePath). Hash tiles are public; entry bundles
// need the operator's key.
func (c *Client) LogTile(ctx context.Context, path string) ([]byte, error) {
	return c.raw(ctx, "/v1/log/tile/"+path, nil)
}
