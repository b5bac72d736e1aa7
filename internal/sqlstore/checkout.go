package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/paybound/paybound"
)

// The checkout's tables: products, sessions and vault tokens are the whole
// row as JSON plus the columns lookups filter on, replaced whole when written
// again (an agent card only when revoked); a completion is only ever inserted,
// and its session and token are unique, so that a second completion of
// either refuses its batch.
var (
	Products = NewTable("products", "id, merchant_id, active, data, created_at",
		` ON CONFLICT (id) DO UPDATE SET active = excluded.active, data = excluded.data`)
	CheckoutSessions = NewTable("checkout_sessions", "id, merchant_id, agent_id, status, data, created_at, version",
		` ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data, version = excluded.version`)
	AgentCards = NewTable("agent_cards", "id, number_hash, mandate_id, agent_id, data, created_at",
		` ON CONFLICT (id) DO UPDATE SET data = excluded.data`)
	VaultTokens = NewTable("vault_tokens", "id, checkout_session_id, agent_id, data, created_at",
		` ON CONFLICT (id) DO UPDATE SET data = excluded.data`)
	CheckoutCompletions = NewTable("checkout_completions", "session_id, token_id, payment_id, created_at", "")
)

// jsonRow appends the key columns and x as JSON.
func jsonRow(d []any, what, id string, x any, cols ...any) ([]any, error) {
	data, err := json.Marshal(x)
	if err != nil {
		return d, fmt.Errorf("couldn't encode %s %s: %w", what, id, err)
	}
	d = append(d, cols[:len(cols)-1]...)
	return append(d, string(data), cols[len(cols)-1]), nil
}

func ProductRow(d []any, p *pb.Product) ([]any, error) {
	return jsonRow(d, "product", p.ID, p, p.ID, p.MerchantID, p.Active, p.CreatedAt.Unix())
}

func CheckoutSessionRow(d []any, s *pb.CheckoutSession) ([]any, error) {
	d, err := jsonRow(d, "checkout session", s.ID, s, s.ID, s.MerchantID, s.AgentID, string(s.Status), s.CreatedAt.Unix())
	return append(d, s.Version), err
}

// CheckoutSessionUpdate changes a session from the version the writer read
// ($4 - 1): it divides by zero, failing the batch, when another process
// wrote the session meanwhile. $1 id, $2 status, $3 data, $4 the new
// version.
const CheckoutSessionUpdate = `WITH u AS (UPDATE checkout_sessions SET status = $2, data = $3, version = $4 WHERE id = $1 AND version = $4 - 1 RETURNING 1)
	SELECT 1 / (SELECT COUNT(*) FROM u)`

// agentCardRow is the card with its hash, which its JSON form leaves out.
type agentCardRow struct {
	pb.AgentCard
	NumberHash string `json:"number_hash"`
}

func AgentCardRow(d []any, c *pb.AgentCard) ([]any, error) {
	return jsonRow(d, "agent card", c.ID, agentCardRow{*c, c.NumberHash}, c.ID, c.NumberHash, c.MandateID, c.AgentID, c.CreatedAt.Unix())
}

func VaultTokenRow(d []any, t *pb.VaultToken) ([]any, error) {
	return jsonRow(d, "vault token", t.ID, t, t.ID, t.CheckoutSessionID, t.AgentID, t.CreatedAt.Unix())
}

func CheckoutCompletionRow(d []any, c *pb.CheckoutCompletion) ([]any, error) {
	return append(d, c.SessionID, c.TokenID, c.PaymentID, c.CreatedAt.Unix()), nil
}

// scanJSON decodes a row of data into a new T.
func scanJSON[T any](what string) func(r Scanner) (*T, error) {
	return func(r Scanner) (*T, error) {
		var data string
		if err := r.Scan(&data); err != nil {
			return nil, err
		}
		x := new(T)
		if err := json.Unmarshal([]byte(data), x); err != nil {
			return nil, fmt.Errorf("a %s is unreadable: %w", what, err)
		}
		return x, nil
	}
}

func (r Reads) Product(ctx context.Context, id string) (*pb.Product, error) {
	p, err := scanJSON[pb.Product]("product")(r.DB.QueryRow(ctx, `SELECT data FROM products WHERE id = $1`, id))
	return p, found(err, "product", id)
}

func (r Reads) ListProducts(ctx context.Context, f pb.ProductFilter) ([]pb.Product, bool, error) {
	var w where
	if f.MerchantID != "" {
		w.add("merchant_id = ?", f.MerchantID)
	}
	if !f.IncludeArchived {
		w.add("active = ?", true)
	}
	if f.StartingAfter != "" {
		w.add("id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	out, err := collect(ctx, r.DB, []pb.Product{}, scanJSON[pb.Product]("product"), `SELECT data FROM products`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read products: %w", err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) CheckoutSession(ctx context.Context, id string) (*pb.CheckoutSession, error) {
	var data string
	var version int64
	err := r.DB.QueryRow(ctx, `SELECT data, version FROM checkout_sessions WHERE id = $1`, id).Scan(&data, &version)
	if err != nil {
		return nil, found(err, "checkout session", id)
	}
	var s pb.CheckoutSession
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		return nil, fmt.Errorf("checkout session %s is unreadable: %w", id, err)
	}
	s.Version = version
	return &s, nil
}

func (r Reads) AgentCard(ctx context.Context, id string) (*pb.AgentCard, error) {
	return r.agentCard(ctx, id, `SELECT data FROM agent_cards WHERE id = $1`, id)
}

func (r Reads) AgentCardByHash(ctx context.Context, numberHash string) (*pb.AgentCard, error) {
	return r.agentCard(ctx, "with that number", `SELECT data FROM agent_cards WHERE number_hash = $1`, numberHash)
}

func (r Reads) agentCard(ctx context.Context, what, query string, arg any) (*pb.AgentCard, error) {
	row, err := scanJSON[agentCardRow]("agent card")(r.DB.QueryRow(ctx, query, arg))
	if err = found(err, "agent card", what); err != nil {
		return nil, err
	}
	c := row.AgentCard
	c.NumberHash = row.NumberHash
	return &c, nil
}

func (r Reads) CountAgentCards(ctx context.Context, mandateID string) (int, error) {
	var n int
	err := r.DB.QueryRow(ctx, `SELECT COUNT(*) FROM agent_cards WHERE mandate_id = $1`, mandateID).Scan(&n)
	return n, err
}

func (r Reads) MandateAgentCards(ctx context.Context, mandateID string) ([]pb.AgentCard, error) {
	rows, err := collect(ctx, r.DB, []agentCardRow{}, scanJSON[agentCardRow]("agent card"),
		`SELECT data FROM agent_cards WHERE mandate_id = $1 ORDER BY id LIMIT $2`, mandateID, int64(pb.MaxCardsPerMandate))
	if err != nil {
		return nil, fmt.Errorf("couldn't read the agent cards of %s: %w", mandateID, err)
	}
	out := make([]pb.AgentCard, len(rows))
	for i, row := range rows {
		out[i] = row.AgentCard
		out[i].NumberHash = row.NumberHash
	}
	return out, nil
}

func (r Reads) CountVaultTokens(ctx context.Context, sessionID string) (int, error) {
	var n int
	err := r.DB.QueryRow(ctx, `SELECT COUNT(*) FROM vault_tokens WHERE checkout_session_id = $1`, sessionID).Scan(&n)
	return n, err
}

func (r Reads) VaultToken(ctx context.Context, id string) (*pb.VaultToken, error) {
	t, err := scanJSON[pb.VaultToken]("vault token")(r.DB.QueryRow(ctx, `SELECT data FROM vault_tokens WHERE id = $1`, id))
	return t, found(err, "vault token", id)
}

func (r Reads) CheckoutCompletion(ctx context.Context, sessionID string) (*pb.CheckoutCompletion, error) {
	var c pb.CheckoutCompletion
	var created int64
	err := r.DB.QueryRow(ctx, `SELECT session_id, token_id, payment_id, created_at FROM checkout_completions WHERE session_id = $1`, sessionID).
		Scan(&c.SessionID, &c.TokenID, &c.PaymentID, &created)
	if err = found(err, "checkout completion", sessionID); err != nil {
		return nil, err
	}
	c.CreatedAt = unix(created)
	return &c, nil
}
