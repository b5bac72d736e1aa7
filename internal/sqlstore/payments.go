package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// The payments core's tables that both stores write row by row, or in
// rows of the same values.
var (
	Refunds   = NewTable("refunds", "id, payment_id, amount, currency, reason, status, created_at", "")
	Topups    = NewTable("topups", "id, user_id, amount, currency, status, created_at", "")
	Users     = NewTable("users", "id, name, created_at", "")
	Merchants = NewTable("merchants", "id, name, category, created_at", "")
	// An agent's row is written again only to revoke it.
	Agents  = NewTable("agents", "id, user_id, name, public_key, keyid, created_at, revoked_at", " ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at")
	APIKeys = NewTable("api_keys", "hash, role, principal_id, user_id, created_at", "")
)

// A table's row encoder appends a row's values to d, in the table's column
// order. Only an encoder that writes JSON can fail.

func RefundRow(d []any, r *pb.Refund) ([]any, error) {
	return append(d, r.ID, r.PaymentID, r.Amount, r.Currency, r.Reason, r.Status, r.CreatedAt.Unix()), nil
}

func TopupRow(d []any, t *pb.Topup) ([]any, error) {
	return append(d, t.ID, t.UserID, t.Amount, t.Currency, t.Status, t.CreatedAt.Unix()), nil
}

func UserRow(d []any, u *pb.User) ([]any, error) {
	return append(d, u.ID, u.Name, u.CreatedAt.Unix()), nil
}

func MerchantRow(d []any, m *pb.Merchant) ([]any, error) {
	return append(d, m.ID, m.Name, m.Category, m.CreatedAt.Unix()), nil
}

func AgentRow(d []any, a *pb.Agent) ([]any, error) {
	return append(d, a.ID, a.UserID, a.Name, a.PublicKey, string(a.KeyID), a.CreatedAt.Unix(), unixOrNil(a.RevokedAt)), nil
}

func APIKeyRow(d []any, k *pb.APIKey) ([]any, error) {
	return append(d, k.Hash[:], string(k.Principal.Role), k.Principal.ID, k.Principal.UserID, k.CreatedAt.Unix()), nil
}

// IdempotencyCols are the idempotency table's columns, which
// ScanIdempotency reads.
const IdempotencyCols = `caller, key, request_hash, status, body, created_ms`

// ScanIdempotency decodes a row of IdempotencyCols.
func ScanIdempotency(r Scanner) (*pb.IdempotencyRecord, error) {
	var rec pb.IdempotencyRecord
	var hash []byte
	var created int64
	var body []byte
	if err := r.Scan(&rec.Caller, &rec.Key, &hash, &rec.Status, &body, &created); err != nil {
		return nil, err
	}
	var err error
	if rec.Body, err = Inflate(body); err != nil {
		return nil, fmt.Errorf("idempotency record %s of %s is unreadable: %w", rec.Key, rec.Caller, err)
	}
	copy(rec.RequestHash[:], hash)
	rec.CreatedAt = time.UnixMilli(created).UTC()
	return &rec, nil
}

// IdempotencyBody is a record's body as stored: an empty response, not a
// missing one, when it has none; a body of deflateMin bytes or more is
// stored compressed when that is smaller (see Compact).
func IdempotencyBody(r *pb.IdempotencyRecord) []byte {
	if r.Body == nil {
		return []byte{}
	}
	return Compact(r.Body)
}

// RiskColumns are a new payment's risk columns as SQLite stores them:
// through Compact (scanPayment reads them either way). PostgreSQL keeps
// them as text, which must not hold the marks' NUL byte.
func RiskColumns(p *pb.Payment) (risk, input []byte) {
	r, in := p.Risk.Columns()
	return Compact([]byte(r)), Compact([]byte(in))
}

// inflateColumn is a text column that may have been stored through
// Compact.
func inflateColumn(v string) (string, error) {
	if !strings.HasPrefix(v, string(deflatedMark)) {
		return v, nil
	}
	b, err := Inflate([]byte(v))
	return string(b), err
}

// paymentCols are the columns scanPayment reads.
const paymentCols = `id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded, currency, merchant_id,
	payer_id, agent_id, mandate_id, description, capture_method, authorization_expires_at, metadata, decline_code, hold_id, created_at, version,
	confirmation_id, confirmation_expires_at, assurance, log_head, risk, risk_input`

// scanPayment decodes a row of paymentCols. Metadata stored as JSON null
// (a payment written with none) reads back as an empty map, as the
// PaymentStore contract says.
func scanPayment(r Scanner) (*pb.Payment, error) {
	var p pb.Payment
	var status, agent, mandate, capture, md, decline string
	var exp, cexp *int64
	var created int64
	var cid string
	var head []byte
	var risk, input string
	if err := r.Scan(&p.ID, &status, &p.Amount, &p.AmountCaptured, &p.AmountRefunded, &p.FeeAmount, &p.FeeRefunded,
		&p.Currency, &p.MerchantID, &p.PayerID, &agent, &mandate, &p.Description, &capture, &exp, &md, &decline,
		&p.HoldID, &created, &p.Version, &cid, &cexp, &p.Assurance, &head, &risk, &input); err != nil {
		return nil, err
	}
	copy(p.LogHead[:], head)
	p.Object = "payment"
	p.Status, p.AgentID, p.MandateID = pb.PaymentStatus(status), pb.OptString(agent), pb.OptString(mandate)
	p.CaptureMethod, p.DeclineCode = pb.CaptureMethod(capture), pb.Code(decline)
	p.AuthorizationExpiresAt = unixPtr(exp)
	if err := json.Unmarshal([]byte(md), &p.Metadata); err != nil {
		return nil, fmt.Errorf("payment %s has unreadable metadata: %w", p.ID, err)
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	p.CreatedAt = unix(created)
	p.SetConfirmation(cid, cexp)
	var err error
	if risk, err = inflateColumn(risk); err == nil {
		input, err = inflateColumn(input)
	}
	if err == nil {
		p.Risk, err = pb.DecodeRiskColumns(risk, input)
	}
	if err != nil {
		return nil, fmt.Errorf("payment %s has an unreadable risk assessment: %w", p.ID, err)
	}
	return &p, nil
}

// PaymentMetadata is a payment's metadata column: its JSON.
func PaymentMetadata(p *pb.Payment) (string, error) {
	md, err := json.Marshal(p.Metadata)
	return string(md), err
}

func (r Reads) Principal(ctx context.Context, hash [32]byte) (pb.Principal, error) {
	var p pb.Principal
	var role string
	// A revoked agent's key names no one.
	err := r.DB.QueryRow(ctx, `SELECT k.role, k.principal_id, k.user_id FROM api_keys k
		LEFT JOIN agents a ON k.role = 'agent' AND a.id = k.principal_id
		WHERE k.hash = $1 AND a.revoked_at IS NULL`, hash[:]).Scan(&role, &p.ID, &p.UserID)
	p.Role = pb.Role(role)
	return p, found(err, "API key", "(redacted)")
}

func (r Reads) User(ctx context.Context, id string) (*pb.User, error) {
	var u pb.User
	var created int64
	if err := r.DB.QueryRow(ctx, `SELECT id, name, created_at FROM users WHERE id = $1`, id).Scan(&u.ID, &u.Name, &created); err != nil {
		return nil, found(err, "user", id)
	}
	u.CreatedAt = unix(created)
	return &u, nil
}

func (r Reads) Merchant(ctx context.Context, id string) (*pb.Merchant, error) {
	var m pb.Merchant
	var created int64
	if err := r.DB.QueryRow(ctx, `SELECT id, name, category, created_at FROM merchants WHERE id = $1`, id).
		Scan(&m.ID, &m.Name, &m.Category, &created); err != nil {
		return nil, found(err, "merchant", id)
	}
	m.CreatedAt = unix(created)
	return &m, nil
}

func (r Reads) Agent(ctx context.Context, id string) (*pb.Agent, error) {
	a, err := scanAgent(r.DB.QueryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE id = $1`, id))
	return a, found(err, "agent", id)
}

// agentCols are the columns scanAgent reads.
const agentCols = `id, user_id, name, public_key, keyid, created_at, revoked_at`

func scanAgent(r Scanner) (*pb.Agent, error) {
	var a pb.Agent
	var created int64
	var keyid string
	var revoked *int64
	if err := r.Scan(&a.ID, &a.UserID, &a.Name, &a.PublicKey, &keyid, &created, &revoked); err != nil {
		return nil, err
	}
	a.KeyID, a.CreatedAt, a.RevokedAt = pb.OptString(keyid), unix(created), unixPtr(revoked)
	return &a, nil
}

func (r Reads) Payment(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := scanPayment(r.DB.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE id = $1`, id))
	return p, found(err, "payment", id)
}

func (r Reads) PaymentByConfirmation(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := scanPayment(r.DB.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE confirmation_id = $1 AND confirmation_id <> ''`, id))
	return p, found(err, "confirmation", id)
}

func (r Reads) ListPayments(ctx context.Context, f pb.PaymentFilter) ([]pb.Payment, bool, error) {
	var w where
	switch {
	case f.PayerID != "":
		w = partyWhere("payer_id", f.PayerID)
		if f.AgentID != "" {
			w.add("agent_id = ?", f.AgentID)
		}
	case f.AgentID != "":
		w = partyWhere("agent_id", f.AgentID)
	case f.MerchantID != "":
		w = partyWhere("merchant_id", f.MerchantID)
	}
	if f.MerchantID != "" && (f.PayerID != "" || f.AgentID != "") {
		w.add("merchant_id = ?", f.MerchantID)
	}
	party := len(w.conds) > 0
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	limit := pb.PageLimit(f.Limit)
	var q string
	if party {
		q = partyPayments(r.Parties, paymentCols, &w, "<", f.StartingAfter, limit+1)
	} else {
		if f.StartingAfter != "" {
			w.add("id < ?", f.StartingAfter)
		}
		q = `SELECT ` + paymentCols + ` FROM payments` + w.page(limit)
	}
	out, err := collect(ctx, r.DB, []pb.Payment{}, scanPayment, q, w.args...)
	if err != nil {
		return nil, false, err
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

// PartyPayments is the query of cols (columns of payments, the first its
// id) of the payments whose col (payer_id, agent_id or merchant_id) is
// party and whose id is op ("<" or ">=") id unless id is "", newest first,
// at most n; and its arguments.
//
// With parties (SQLite), a party's payments are not indexed on payments,
// where each new payment would write a page of each index at its payer's,
// its agent's and its merchant's place, but in payment_parties, which the
// writer fills a few thousand payments at a time (migrations 0024 and
// 0026), and among the payments after payment_parties_upto, which are not
// in it yet. Every payment is in exactly one of the two, which one
// statement reads in one snapshot; the second is bounded by the writer's
// merges, and read through the rowid only (NOT INDEXED), never through an
// index over the whole table.
func PartyPayments(parties bool, cols, col, party, op, id string, n int) (string, []any) {
	w := partyWhere(col, party)
	return partyPayments(parties, cols, &w, op, id, n), w.args
}

// partyWhere is a where whose first condition, $1, is col = party.
func partyWhere(col, party string) where {
	var w where
	w.add(col+" = ?", party)
	if col == "agent_id" {
		w.conds = append(w.conds, "agent_id <> ''") // lets PostgreSQL's partial index serve
	}
	return w
}

// partyPayments is PartyPayments for w, made by partyWhere and further
// conditions on payments; it adds id's argument to w.
func partyPayments(parties bool, cols string, w *where, op, id string, n int) string {
	var onID, onPID string
	if id != "" {
		w.args = append(w.args, id)
		k := "$" + strconv.Itoa(len(w.args))
		onID, onPID = " AND id "+op+" "+k, " AND x.pid "+op+" "+k
	}
	cond, limit := strings.Join(w.conds, " AND "), " LIMIT "+strconv.Itoa(n)
	if !parties {
		return `SELECT ` + cols + ` FROM payments WHERE ` + cond + onID + ` ORDER BY id DESC` + limit
	}
	return `SELECT * FROM (SELECT ` + cols + ` FROM payment_parties x CROSS JOIN payments ON payments.rowid = x.rid
		WHERE x.party = $1` + onPID + ` AND ` + cond + ` ORDER BY x.pid DESC` + limit + `)
		UNION ALL SELECT * FROM (SELECT ` + cols + ` FROM payments NOT INDEXED
		WHERE rowid > (SELECT upto FROM payment_parties_upto) AND ` + cond + onID + ` ORDER BY id DESC` + limit + `)
		ORDER BY 1 DESC` + limit
}

func (r Reads) ExpiredPayments(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	for _, q := range []string{ // two queries, each served by its partial index
		`SELECT id FROM payments WHERE status = 'authorized' AND authorization_expires_at <= $1 ORDER BY authorization_expires_at LIMIT $2`,
		`SELECT id FROM payments WHERE status = 'requires_confirmation' AND confirmation_expires_at <= $1 ORDER BY confirmation_expires_at LIMIT $2`,
	} {
		err := r.DB.Query(ctx, func(row Scanner) error {
			var id string
			if err := row.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		}, q, now.Unix(), limit-len(ids))
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}
