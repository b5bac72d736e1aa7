package paybound

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The transparency log records every change to users' money and authority
// as one entry: canonical JSON whose RFC 6962 leaf hash is appended to a
// Merkle tree with signed checkpoints (internal/tlog). An entry is stored in
// the same ledger batch as the change it records, so neither exists without
// the other; it receives its index in the tree shortly after, when the
// log's integrator appends the batch's entries in commit order.

// Log entry types. A payment's entries chain to each other through Prev.
const (
	LogPaymentCreated       = "payment.created"
	LogPaymentDeclined      = "payment.declined"
	LogConfirmationAsked    = "confirmation.asked"
	LogConfirmationApproved = "confirmation.approved"
	LogConfirmationDenied   = "confirmation.denied"
	LogPaymentAuthorized    = "payment.authorized"
	LogPaymentCaptured      = "payment.captured"
	LogPaymentCanceled      = "payment.canceled"
	LogPaymentExpired       = "payment.expired"
	LogPaymentRefunded      = "payment.refunded"
	LogMandateGranted       = "mandate.granted"
	LogMandateRevoked       = "mandate.revoked"
	LogAgentKeyAdded        = "agent_key.added"
	LogAgentKeyRevoked      = "agent_key.revoked"
	LogAgentRevoked         = "agent.revoked"
	LogDisputeOpened        = "dispute.opened"
	LogDisputeResolved      = "dispute.resolved"
	LogCompensationPaid     = "compensation.paid"
	LogWalletToppedUp       = "wallet.topped_up"
	// A checkout session's entries (subject: the session), logged with a
	// Notice: its completion, and its order changed by a refund.
	LogCheckoutCompleted    = "checkout_session.completed"
	LogCheckoutOrderUpdated = "checkout_session.order_updated"
)

// Why a payment waited for its user (a confirmation.asked entry's reason).
const (
	ConfirmNoMandate    = "no_mandate"
	ConfirmAboveConfirm = "above_confirm_above"
	ConfirmRiskReview   = "risk_review" // risk control asked, even inside the mandate
)

// What allowed a hold (a payment.authorized entry's basis).
const (
	BasisUser         = "user"         // the payer paid themselves
	BasisMandate      = "mandate"      // every check of the mandate passed
	BasisConfirmation = "confirmation" // the user approved it with a factor
)

// LogVersion is the entry format's version, the "v" of every entry.
const LogVersion = 1

// Actor is who caused a logged change. (Fields in the order of their JSON
// names: see EncodeLogEntry.)
type Actor struct {
	// Assurance is how the actor proved itself, for agents and users.
	Assurance Assurance `json:"assurance,omitempty"`
	ID        string    `json:"id"`
	Role      Role      `json:"role"`
}

// ActorOf returns the actor of a request made by c.
func ActorOf(c Principal) Actor {
	a := Actor{Role: c.Role, ID: c.ID}
	switch {
	case c.Role == RoleAgent && c.Signed:
		a.Assurance = AssuranceSigned
	case c.Role == RoleAgent:
		a.Assurance = AssuranceBearer
	case c.Role == RoleUser:
		a.Assurance = AssuranceUser
	}
	return a
}

// SystemActor is the server acting on its own (expiring holds).
var SystemActor = Actor{Role: "system", ID: "paybound"}

// LogEvent is what an operation asks the ledger writer to log. The writer
// adds the time and, for a payment's entries, the hash of the payment's
// previous entry.
type LogEvent struct {
	Type    string
	Subject string // the payment, mandate or agent the entry is about
	Actor   Actor
	// Data is marshaled as the entry's "data". It must marshal to canonical
	// JSON by construction: structs whose fields are in the order of their
	// JSON names (recursively), maps with string keys, strings, integers,
	// booleans, times, byte slices. Wrap anything else with CanonicalData.
	Data any
	// Notice is not logged: it tells the writer's observers
	// (ledger.Config.Observers: webhooks) what the entry is about when its
	// subject alone cannot say, as for an entry whose subject is not a
	// payment, mandate or dispute.
	Notice *Notice
}

// Notice is what an entry tells the parties' webhooks when its subject alone
// cannot say (LogEvent.Notice).
type Notice struct {
	// Object is the resource as its owner's API shows it: the event's
	// data.object.
	Object any
	// Parties are the IDs of the principals party to it (a user, a
	// merchant, an agent): who may receive the event.
	Parties []string
	// ACP, when set, is the event as ACP's agentic_checkout_webhook says it
	// (an order event), for the agent platforms' ACP endpoints.
	ACP any
}

// EncodeLogEntry returns the entry's exact bytes: canonical JSON (object
// keys sorted, no insignificant space, no HTML escaping, integers only,
// strings escaped as Go's encoding/json does, which RFC 8785 matches but for
// U+2028 and U+2029, written as \u2028 and \u2029), so that anyone who
// re-encodes the same content gets the same leaf hash. The keys are, in
// order: actor (assurance if any, id, role), data (if any), prev (if any),
// subject, time (RFC 3339, UTC, to the nanosecond without trailing zeros),
// type, v.
// prev is the leaf hash of the subject's previous entry, if any.
//
// It runs on the ledger writer for every change, so it writes the
// envelope directly, leaving encoding/json only the data, and does not
// re-parse what it encodes: LogEvent.Data's contract makes encoding/json's
// output canonical (the tests check every entry type against encoding/json's
// encoding of the whole entry, and paybound audit checks every entry served).
func EncodeLogEntry(ev LogEvent, at time.Time, prev *[32]byte) ([]byte, error) {
	at = at.UTC()
	if y := at.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("couldn't encode log entry %s: year %d is outside [0, 9999]", ev.Type, y)
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"actor":{`...)
	if ev.Actor.Assurance != "" {
		b = appendJSONString(append(b, `"assurance":`...), string(ev.Actor.Assurance))
		b = append(b, ',')
	}
	b = appendJSONString(append(b, `"id":`...), ev.Actor.ID)
	b = appendJSONString(append(b, `,"role":`...), string(ev.Actor.Role))
	b = append(b, '}')
	if ev.Data != nil { // as encoding/json's omitempty: a nil interface only
		var err error
		if b, err = appendJSON(append(b, `,"data":`...), ev.Data); err != nil {
			return nil, fmt.Errorf("couldn't encode log entry %s: %w", ev.Type, err)
		}
	}
	if prev != nil {
		b = append(hex.AppendEncode(append(b, `,"prev":"`...), prev[:]), '"')
	}
	b = appendJSONString(append(b, `,"subject":`...), ev.Subject)
	b = append(at.AppendFormat(append(b, `,"time":"`...), time.RFC3339Nano), '"')
	b = appendJSONString(append(b, `,"type":`...), ev.Type)
	b = append(strconv.AppendInt(append(b, `,"v":`...), LogVersion, 10), '}')
	if len(b) > MaxLogEntryBytes {
		return nil, fmt.Errorf("log entry %s of %s is %d bytes; at most %d", ev.Type, ev.Subject, len(b), MaxLogEntryBytes)
	}
	return b, nil
}

// appendJSONString appends s as encoding/json writes it without HTML
// escaping: printable ASCII but " and \ as it is, anything else through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			out, _ := appendJSON(b, s) // a string always encodes
			return out
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// appendJSON appends v as encoding/json writes it without HTML escaping.
func appendJSON(b []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// CanonicalData wraps a value whose JSON is not canonical by construction
// (a struct with fields out of order) for LogEvent.Data, at the cost of a
// round trip through Canonical.
func CanonicalData(v any) (json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonical(raw)
}

// CanonicalByConstruction reports, for a type logged as an entry's data,
// the first reason encoding/json would not write it canonically without a
// round trip: a struct's fields (at any depth) out of the order of their
// JSON names, or a float or interface field. A capability's tests call it
// on every type it logs, so that LogEvent.Data may carry them as they are.
func CanonicalByConstruction(typ reflect.Type) error {
	var names []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" {
			if err := CanonicalByConstruction(ft); err != nil {
				return err
			}
		}
		switch ft.Kind() {
		case reflect.Float32, reflect.Float64, reflect.Interface:
			return fmt.Errorf("%s.%s is a %s: not canonical by construction", typ.Name(), f.Name, ft.Kind())
		}
	}
	if !slices.IsSorted(names) {
		return fmt.Errorf("%s's fields are not in the order of their JSON names: %v", typ.Name(), names)
	}
	return nil
}

// MaxLogEntryBytes bounds an entry: C2SP entry bundles give each entry a
// 16-bit length.
const MaxLogEntryBytes = 1<<16 - 1

// Canonical re-encodes a JSON document canonically: objects with their keys
// sorted, no insignificant white space, strings escaped minimally (RFC 8785
// for documents whose numbers are integers, as every Paybound amount is).
func Canonical(doc []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("couldn't canonicalize JSON: %w", err)
	}
	out, err := appendJSON(nil, v) // maps are encoded with sorted keys
	if err != nil {
		return nil, fmt.Errorf("couldn't canonicalize JSON: %w", err)
	}
	return out, nil
}

// LeafHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || entry).
// It is what the Merkle tree holds, and what a payment's next entry names
// as its prev.
func LeafHash(entry []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// LogRecord is an entry on its way into the log, written with its batch.
type LogRecord struct {
	Subject string
	Body    []byte
	Leaf    [32]byte // LeafHash(Body), computed once by the writer
}

// LogEntry is an entry with its place in the log (stores return only
// entries already in the tree).
type LogEntry struct {
	Index   int64
	Subject string
	Body    []byte
}

// PendingLogEntry is a stored entry not yet in the tree; Seq orders such
// entries by commit.
type PendingLogEntry struct {
	Seq  int64
	Body []byte
}

// LogHash is one stored hash of the Merkle tree, by its position in the
// golang.org/x/mod/sumdb/tlog storage order.
type LogHash struct {
	ID   int64
	Hash [32]byte
}

// LogIntegration appends entries to the tree: the pending entries Seqs
// receive indexes OldSize, OldSize+1, …; Hashes are the tree's new stored
// hashes and Root the root of the tree of NewSize entries.
type LogIntegration struct {
	OldSize, NewSize int64
	Seqs             []int64
	Hashes           []LogHash
	Root             [32]byte
}

// MaxLogRead bounds the entries one log read returns.
const MaxLogRead = 1000

// MaxBundleEntries is the most entries a stored log bundle holds.
const MaxBundleEntries = 64

// AppendBundleItem appends item after its 2-byte big-endian length: the
// encoding of C2SP tlog-tiles entry bundles, in which the stores keep a
// commit's entries (and their subjects) together. item is at most 65535
// bytes; the stores check it before.
func AppendBundleItem(dst, item []byte) []byte {
	return append(binary.BigEndian.AppendUint16(dst, uint16(len(item))), item...)
}

// ErrBadBundle is wrapped by SplitBundle for a bundle that does not decode.
var ErrBadBundle = errors.New("a stored log bundle is malformed")

// SplitBundle splits a stored bundle of n items (1 to MaxBundleEntries).
// Each item is capped at its length, so that appending to one never
// overwrites the next.
func SplitBundle(b []byte, n int) ([][]byte, error) {
	if n < 1 || n > MaxBundleEntries {
		return nil, fmt.Errorf("%w: %d entries", ErrBadBundle, n)
	}
	out := make([][]byte, 0, n)
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return nil, fmt.Errorf("%w: truncated", ErrBadBundle)
		}
		l := 2 + int(binary.BigEndian.Uint16(b))
		out = append(out, b[2:l:l])
		b = b[l:]
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: %d entries, want %d", ErrBadBundle, len(out), n)
	}
	return out, nil
}

// WithheldEntry is an entry of a payment's receipt that its holder may not
// read (docs/visibility.md): where it is in the log, its type, why it is
// withheld, and, for an entry logged with a salt, its leaf hash, whose
// inclusion the receipt still proves.
type WithheldEntry struct {
	Index    int64  `json:"index"`
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	LeafHash string `json:"leaf_hash,omitempty"`
}
