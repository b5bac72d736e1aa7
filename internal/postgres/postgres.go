// Package postgres is Paybound's scale-out store: PostgreSQL through pgx,
// using only what Postgres-compatible distributed engines also accept
// (plain tables, B-tree and partial indexes, CHECK constraints; no
// triggers, stored procedures or advisory locks).
//
// A batch is written in one network round trip: every statement is sent
// as one pgx pipeline that the server runs as a single implicit
// transaction, so no row lock is held while a packet crosses the network.
// Account balances are changed by the batch's differences, not overwritten,
// so batches from several processes add up, and the no_overdraft constraint
// refuses one that would overdraw an account; payments are changed only
// from the version the writer read.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	pb "github.com/paybound/paybound"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of pb.Store.
type Store struct {
	pool markedPool
}

// Open connects to the database at url (a postgres:// URL), brings its
// schema up to date, and refuses a schema newer than this binary.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the PostgreSQL URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to PostgreSQL at %s: %w", redact(url), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("couldn't connect to PostgreSQL at %s: %w", redact(url), err)
	}
	s := &Store{pool: markedPool{pool}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// redact drops the password from a URL for messages.
func redact(url string) string {
	if at := strings.LastIndex(url, "@"); at >= 0 {
		if scheme := strings.Index(url, "://"); scheme >= 0 && scheme < at {
			user := url[scheme+3 : at]
			if name, _, ok := strings.Cut(user, ":"); ok {
				return url[:scheme+3] + name + ":***" + url[at:]
			}
		}
	}
	return url
}

// SchemaVersion is the schema this binary writes.
func SchemaVersion() int {
	n, _ := fs.Glob(migrations, "migrations/*.sql")
	return len(n)
}

// migrate applies the missing migrations, each in its own transaction. When
// several processes start at once, one wins each migration and the others'
// transactions fail on the schema_version key; they then read the version
// again.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)`); err != nil {
		var pg *pgconn.PgError
		// Two processes creating the table at once: one gets a unique violation.
		if !errors.As(err, &pg) || pg.Code != "23505" {
			return fmt.Errorf("couldn't create schema_version: %w", err)
		}
	}
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	for attempt := 0; ; attempt++ {
		var have int
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&have); err != nil {
			return fmt.Errorf("couldn't read schema version: %w", err)
		}
		if have > len(names) {
			return fmt.Errorf("the database schema is version %d but this paybound knows only up to %d: run a newer paybound", have, len(names))
		}
		if have == len(names) {
			return nil
		}
		body, err := migrations.ReadFile(names[have])
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, have+1); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, string(body))
			return err
		})
		if err != nil && attempt >= 3 {
			return fmt.Errorf("couldn't apply migration %s: %w", names[have], err)
		}
	}
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// conflict marks errors that mean another writer changed what this batch
// read: the no_overdraft or another CHECK constraint, a unique key (an
// account, a hold resolution, an idempotency key), or a payment version.
func conflict(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505", "23514", "22012", "40001", "40P01":
			return fmt.Errorf("%w: %v", pb.ErrStoreConflict, err)
		}
	}
	return err
}

// CommitTimeout bounds how long Commit waits for the server.
const CommitTimeout = 30 * time.Second

// Commit writes b as one pipeline, which the server runs as one implicit
// transaction: all of it or none of it, in one round trip.
func (s *Store) Commit(ctx context.Context, b *pb.Batch) error {
	if len(b.AccountChanges) != len(b.Accounts) || len(b.UsageChanges) != len(b.Usage) {
		return errors.New("postgres: a batch needs one change per account and per usage row")
	}
	q := &pgx.Batch{}
	b.Fresh, b.FreshUsage = b.Fresh[:0], b.FreshUsage[:0]
	queueAccounts(q, b)
	if n := len(b.Transfers); n > 0 {
		var (
			id, debit, credit, amount, pending, timeout, created = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
			kind                                                 = make([]int16, n)
			cur, ref                                             = make([]string, n), make([]string, n)
		)
		for i, t := range b.Transfers {
			id[i], kind[i], debit[i], credit[i], amount[i], cur[i] = t.ID, int16(t.Kind), t.DebitAccountID, t.CreditAccountID, t.Amount, t.Currency
			pending[i], ref[i], created[i] = t.PendingID, t.Ref, t.CreatedAt.UnixMilli()
			if !t.Timeout.IsZero() {
				timeout[i] = t.Timeout.UnixMilli()
			}
		}
		q.Queue(`INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, currency, pending_id, timeout_ms, ref, created_ms)
			SELECT id, kind, d, c, a, cur, NULLIF(p, 0), NULLIF(t, 0), ref, cr
			FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[])
			AS x(id, kind, d, c, a, cur, p, t, ref, cr)`, id, kind, debit, credit, amount, cur, pending, timeout, ref, created)
	}
	// The log's statements take the commit's number, which the payments'
	// statements read: they come first.
	onRow := paymentLogRanges(b)
	if err := queueLog(q, b, onRow); err != nil {
		return err
	}
	if err := queuePayments(q, b, onRow); err != nil {
		return err
	}
	for _, r := range b.Refunds {
		q.Queue(`INSERT INTO refunds (id, payment_id, amount, currency, reason, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.ID, r.PaymentID, r.Amount, r.Currency, r.Reason, r.Status, r.CreatedAt.Unix())
	}
	for _, t := range b.Topups {
		q.Queue(`INSERT INTO topups (id, user_id, amount, currency, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			t.ID, t.UserID, t.Amount, t.Currency, t.Status, t.CreatedAt.Unix())
	}
	for _, u := range b.Users {
		q.Queue(`INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3)`, u.ID, u.Name, u.CreatedAt.Unix())
	}
	for _, m := range b.Merchants {
		q.Queue(`INSERT INTO merchants (id, name, category, created_at) VALUES ($1, $2, $3, $4)`, m.ID, m.Name, m.Category, m.CreatedAt.Unix())
	}
	for _, a := range b.Agents {
		q.Queue(`INSERT INTO agents (id, user_id, name, public_key, keyid, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			a.ID, a.UserID, a.Name, a.PublicKey, string(a.KeyID), a.CreatedAt.Unix())
	}
	for _, k := range b.APIKeys {
		q.Queue(`INSERT INTO api_keys (hash, role, principal_id, user_id, created_at) VALUES ($1, $2, $3, $4, $5)`,
			k.Hash[:], string(k.Principal.Role), k.Principal.ID, k.Principal.UserID, k.CreatedAt.Unix())
	}
	if len(b.MandatesChecked) > 0 {
		// Before this batch's own revocations: an operation earlier in the
		// batch may rely on a mandate that a later one revokes. FOR SHARE
		// orders this batch and a concurrent revocation: whichever commits
		// second sees the other, so no payment relies on a mandate whose
		// revocation was acknowledged before it.
		q.Queue(`SELECT 1 FROM mandates WHERE id = ANY($1) ORDER BY id FOR SHARE`, b.MandatesChecked)
		q.Queue(`SELECT 1 / (CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END) FROM mandates WHERE id = ANY($1)`, b.MandatesChecked)
	}
	for _, m := range b.Mandates {
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		var revoked *int64
		if m.RevokedAt != nil {
			v := m.RevokedAt.Unix()
			revoked = &v
		}
		q.Queue(`INSERT INTO mandates (id, user_id, agent_id, data, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET revoked_at = COALESCE(mandates.revoked_at, excluded.revoked_at)`,
			m.ID, m.UserID, m.AgentID, string(data), revoked, m.CreatedAt.Unix())
	}
	queueUsage(q, b)
	if err := queueDisputes(q, b); err != nil {
		return err
	}
	for _, k := range b.AgentKeys {
		q.Queue(`INSERT INTO agent_keys (keyid, agent_id, public_key, created_at, not_after, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (keyid) DO UPDATE SET not_after = excluded.not_after, revoked_at = excluded.revoked_at`,
			k.KeyID, k.AgentID, k.PublicKey, k.CreatedAt.Unix(), unixOrNil(k.NotAfter), unixOrNil(k.RevokedAt))
	}
	for _, n := range b.Nonces {
		q.Queue(`INSERT INTO signature_nonces (keyid, nonce, expires_ms) VALUES ($1, $2, $3)`, n.KeyID, n.Nonce, n.Expires.UnixMilli())
	}
	if len(b.CodeFailures) > 0 {
		// One row per confirmation: an upsert may not touch a row twice.
		n := map[string]int64{}
		for _, id := range b.CodeFailures {
			n[id]++
		}
		ids, counts := make([]string, 0, len(n)), make([]int64, 0, len(n))
		for id, c := range n {
			ids, counts = append(ids, id), append(counts, c)
		}
		q.Queue(`INSERT INTO confirmation_failures AS f (confirmation_id, failures) SELECT * FROM unnest($1::text[], $2::bigint[])
			ON CONFLICT (confirmation_id) DO UPDATE SET failures = f.failures + excluded.failures`, ids, counts)
	}
	for _, k := range b.Passkeys {
		q.Queue(`INSERT INTO passkeys (id, user_id, credential, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET credential = excluded.credential,
			revoked_at = COALESCE(passkeys.revoked_at, excluded.revoked_at)`,
			k.ID, k.UserID, k.Credential, k.CreatedAt.Unix(), unixOrNil(k.RevokedAt))
	}
	for _, f := range b.TOTP {
		q.Queue(`INSERT INTO user_totp (user_id, secret, active, last_step, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, active = excluded.active,
			last_step = excluded.last_step, created_at = excluded.created_at`,
			f.UserID, f.Secret, f.Active, f.LastStep, f.CreatedAt.Unix())
	}
	if n := len(b.Idempotency); n > 0 {
		caller, key := make([]string, n), make([]string, n)
		hash, body := make([][]byte, n), make([][]byte, n)
		status, created := make([]int32, n), make([]int64, n)
		for i, r := range b.Idempotency {
			caller[i], key[i], hash[i], status[i], created[i] = r.Caller, r.Key, r.RequestHash[:], int32(r.Status), r.CreatedAt.UnixMilli()
			body[i] = r.Body
			if body[i] == nil {
				body[i] = []byte{}
			}
		}
		q.Queue(`INSERT INTO idempotency (caller, key, request_hash, status, body, created_ms)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::bytea[], $6::bigint[])`,
			caller, key, hash, status, body, created)
	}
	if q.Len() == 0 {
		return nil
	}
	// Once sent, the batch is the server's to finish: canceling the wait
	// would only hide whether it committed. ctx is honoured up to here; a
	// server that does not answer within CommitTimeout fails the commit.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CommitTimeout)
	defer cancel()
	if err := s.pool.SendBatch(sendCtx, q).Close(); err != nil {
		b.Fresh, b.FreshUsage = nil, nil
		return fmt.Errorf("couldn't commit: %w", conflict(err))
	}
	return nil
}

// queueAccounts inserts the batch's new accounts and changes the others by
// their differences. The existing rows are first locked in ID order, so
// that concurrent batches lock in the same order and cannot deadlock; the
// update returns the stored balances for the writer's cache.
func queueAccounts(q *pgx.Batch, b *pb.Batch) {
	var (
		newID, newFlags              []int64
		newOwner, newCur             []string
		newDP, newDPo, newCP, newCPo []int64
		id, dDP, dDPo, dCP, dCPo     []int64
	)
	for i, a := range b.Accounts {
		c := b.AccountChanges[i]
		if c.Created {
			newID, newOwner, newCur, newFlags = append(newID, a.ID), append(newOwner, a.Owner), append(newCur, a.Currency), append(newFlags, int64(a.Flags))
			newDP, newDPo, newCP, newCPo = append(newDP, c.DebitsPending), append(newDPo, c.DebitsPosted), append(newCP, c.CreditsPending), append(newCPo, c.CreditsPosted)
			continue
		}
		id = append(id, a.ID)
		dDP, dDPo = append(dDP, c.DebitsPending), append(dDPo, c.DebitsPosted)
		dCP, dCPo = append(dCP, c.CreditsPending), append(dCPo, c.CreditsPosted)
	}
	if len(newID) > 0 {
		q.Queue(`INSERT INTO accounts (id, owner, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])`,
			newID, newOwner, newCur, newFlags, newDP, newDPo, newCP, newCPo)
	}
	if len(id) == 0 {
		return
	}
	q.Queue(`SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`, id)
	q.Queue(`UPDATE accounts a SET debits_pending = a.debits_pending + d.dp, debits_posted = a.debits_posted + d.dpo,
			credits_pending = a.credits_pending + d.cp, credits_posted = a.credits_posted + d.cpo
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(id, dp, dpo, cp, cpo)
		WHERE a.id = d.id
		RETURNING a.id, a.owner, a.currency, a.flags, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted`,
		id, dDP, dDPo, dCP, dCPo).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			fresh, err := scanAccount(rows)
			if err != nil {
				return err
			}
			b.Fresh = append(b.Fresh, *fresh)
		}
		return rows.Err()
	})
}

// queueUsage adds the batch's changes to its mandate usage rows, creating
// those that are missing, in key order (so concurrent batches lock rows in
// the same order); the within_budget and within_payments constraints refuse
// a reservation past a cap. The rows as stored after it refresh the
// writer's cache.
func queueUsage(q *pgx.Batch, b *pb.Batch) {
	order := make([]int, len(b.Usage))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool {
		a, c := b.Usage[order[x]], b.Usage[order[y]]
		return a.MandateID < c.MandateID || (a.MandateID == c.MandateID && a.PeriodKey < c.PeriodKey)
	})
	for _, i := range order {
		u, c := b.Usage[i], b.UsageChanges[i]
		// Two statements: a CHECK constraint judges the row an upsert would
		// insert before it finds the conflict, and a change may be negative.
		q.Queue(`INSERT INTO mandate_usage (mandate_id, period_key, spent, payments, cap_amount, cap_payments)
			VALUES ($1, $2, 0, 0, $3, $4) ON CONFLICT (mandate_id, period_key) DO NOTHING`,
			u.MandateID, u.PeriodKey, u.CapAmount, u.CapPayments)
		q.Queue(`UPDATE mandate_usage SET spent = spent + $3, payments = payments + $4 WHERE mandate_id = $1 AND period_key = $2
			RETURNING spent, payments, cap_amount, cap_payments`,
			u.MandateID, u.PeriodKey, c.Spent, c.Payments).QueryRow(func(r pgx.Row) error {
			f := pb.MandateUsageRow{MandateID: u.MandateID, PeriodKey: u.PeriodKey}
			if err := r.Scan(&f.Spent, &f.Payments, &f.CapAmount, &f.CapPayments); err != nil {
				return err
			}
			b.FreshUsage = append(b.FreshUsage, f)
			return nil
		})
	}
}

// queuePayments inserts the batch's new payments and updates the others
// only where the stored version is the one the writer read; a statement
// that updates fewer rows than asked divides by zero, which aborts the
// whole batch. A payment's risk is written by the insert only: its
// assessment never changes after its creation. A payment's entries in the
// batch are listed on its row (onRow: see paymentLogRanges).
func queuePayments(q *pgx.Batch, b *pb.Batch, onRow map[string]logRange) error {
	var ins, upd []*pb.Payment
	var prev []int64
	for i := range b.Payments {
		if i < len(b.PaymentVersions) && b.PaymentVersions[i] > 0 {
			upd, prev = append(upd, &b.Payments[i]), append(prev, b.PaymentVersions[i])
		} else {
			ins = append(ins, &b.Payments[i])
		}
	}
	if n := len(ins); n > 0 {
		id, status, cur, merchant, payer, agent, mandate, desc, capture, md, decline := make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n)
		amount, captured, refunded, fee, feeRef, hold, created, version := make([]int64, n), make([]int64, n), make([]int64, n),
			make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		exp, cexp := make([]*int64, n), make([]*int64, n)
		cid, assurance := make([]string, n), make([]string, n)
		risk, input := make([]string, n), make([]string, n)
		head, logLo, logHi := make([][]byte, n), make([]*int64, n), make([]*int64, n)
		for i, p := range ins {
			head[i] = logHead(p.LogHead)
			logLo[i], logHi[i] = logRefs(onRow, p)
			risk[i], input[i] = p.Risk.Columns()
			cid[i], cexp[i] = p.ConfirmationColumns()
			assurance[i] = string(p.Assurance)
			m, err := json.Marshal(p.Metadata)
			if err != nil {
				return err
			}
			id[i], status[i], cur[i], merchant[i], payer[i] = p.ID, string(p.Status), p.Currency, p.MerchantID, p.PayerID
			agent[i], mandate[i], desc[i], capture[i], md[i] = string(p.AgentID), string(p.MandateID), p.Description, string(p.CaptureMethod), string(m)
			decline[i], exp[i] = string(p.DeclineCode), expiry(p)
			amount[i], captured[i], refunded[i], fee[i], feeRef[i] = p.Amount, p.AmountCaptured, p.AmountRefunded, p.FeeAmount, p.FeeRefunded
			hold[i], created[i], version[i] = p.HoldID, p.CreatedAt.Unix(), p.Version
		}
		q.Queue(`INSERT INTO payments (id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded, currency,
			merchant_id, payer_id, agent_id, mandate_id, description, capture_method, authorization_expires_at, metadata,
			decline_code, hold_id, created_at, version, confirmation_id, confirmation_expires_at, assurance, log_head,
			risk, risk_input, log_refs)
			-- c1 to c26 are the columns above, in order.
			SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24,
				c25, c26, `+logRefsSQL+`
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
				$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::text[],
				$17::text[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::bytea[],
				$25::text[], $26::text[], $27::bigint[], $28::bigint[])
			AS x(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24,
				c25, c26, log_lo, log_hi)`,
			id, status, amount, captured, refunded, fee, feeRef, cur, merchant, payer, agent, mandate, desc, capture, exp, md,
			decline, hold, created, version, cid, cexp, assurance, head, risk, input, logLo, logHi)
	}
	if n := len(upd); n > 0 {
		id, status, decline := make([]string, n), make([]string, n), make([]string, n)
		captured, refunded, fee, feeRef, hold, version := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n),
			make([]int64, n), make([]int64, n)
		exp, cexp := make([]*int64, n), make([]*int64, n)
		cid := make([]string, n)
		head, logLo, logHi := make([][]byte, n), make([]*int64, n), make([]*int64, n)
		for i, p := range upd {
			head[i] = logHead(p.LogHead)
			logLo[i], logHi[i] = logRefs(onRow, p)
			id[i], status[i], decline[i], exp[i] = p.ID, string(p.Status), string(p.DeclineCode), expiry(p)
			cid[i], cexp[i] = p.ConfirmationColumns()
			captured[i], refunded[i], fee[i], feeRef[i], hold[i], version[i] = p.AmountCaptured, p.AmountRefunded, p.FeeAmount, p.FeeRefunded, p.HoldID, p.Version
		}
		// Dividing by zero when fewer rows matched their version aborts the
		// whole batch: another process changed one of these payments.
		q.Queue(`WITH u AS (
				UPDATE payments p SET status = d.status, amount_captured = d.captured, amount_refunded = d.refunded,
					fee_amount = d.fee, fee_refunded = d.fee_refunded, authorization_expires_at = d.exp,
					decline_code = d.decline, hold_id = d.hold, version = d.version,
					confirmation_id = d.cid, confirmation_expires_at = d.cexp, log_head = d.head,
					log_refs = p.log_refs || `+logRefsSQL+`
				FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
					$8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $13::text[], $14::bigint[], $15::bytea[],
					$16::bigint[], $17::bigint[])
					AS d(id, status, captured, refunded, fee, fee_refunded, exp, decline, hold, version, prev, cid, cexp, head,
						log_lo, log_hi)
				WHERE p.id = d.id AND p.version = d.prev RETURNING 1)
			SELECT 1 / (CASE WHEN (SELECT COUNT(*) FROM u) = $12 THEN 1 ELSE 0 END)`,
			id, status, captured, refunded, fee, feeRef, exp, decline, hold, version, prev, n, cid, cexp, head, logLo, logHi)
	}
	return nil
}

func expiry(p *pb.Payment) *int64 {
	if p.AuthorizationExpiresAt == nil {
		return nil
	}
	v := p.AuthorizationExpiresAt.Unix()
	return &v
}

// ReserveIDs takes the next block of pb.IDBlock account and transfer IDs
// from the sequences.
func (s *Store) ReserveIDs(ctx context.Context) (account, transfer int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT nextval('account_ids'), nextval('transfer_ids')`).Scan(&account, &transfer)
	return account, transfer, err
}

var _ pb.SharedStore = (*Store)(nil)

// NextIDs returns one past the largest account and transfer IDs.
func (s *Store) NextIDs(ctx context.Context) (account, transfer int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT MAX(id) FROM accounts), 0) + 1, COALESCE((SELECT MAX(id) FROM transfers), 0) + 1`).Scan(&account, &transfer)
	return account, transfer, err
}

func notFound(what string, id any) error {
	return pb.Errorf(pb.ErrNotFound, "", "no such %s: %v", what, id)
}

const accountCols = `id, owner, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted`

func scanAccount(r pgx.Row) (*pb.Account, error) {
	var a pb.Account
	var flags int32
	if err := r.Scan(&a.ID, &a.Owner, &a.Currency, &flags, &a.DebitsPending, &a.DebitsPosted, &a.CreditsPending, &a.CreditsPosted); err != nil {
		return nil, err
	}
	a.Flags = pb.AccountFlags(flags)
	return &a, nil
}

func (s *Store) Account(ctx context.Context, owner, currency string) (*pb.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE owner = $1 AND currency = $2`, owner, currency))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("account", owner+"/"+currency)
	}
	return a, err
}

func (s *Store) AccountByID(ctx context.Context, id int64) (*pb.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("account", id)
	}
	return a, err
}

func (s *Store) AccountsByOwner(ctx context.Context, owner string) ([]pb.Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+accountCols+` FROM accounts WHERE owner = $1 ORDER BY currency`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pb.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

const transferSelect = `SELECT id, kind, debit_account_id, credit_account_id, amount, currency, COALESCE(pending_id, 0), COALESCE(timeout_ms, 0), ref, created_ms FROM transfers`

func scanTransfer(r pgx.Row) (*pb.Transfer, error) {
	var t pb.Transfer
	var kind int16
	var timeout, created int64
	if err := r.Scan(&t.ID, &kind, &t.DebitAccountID, &t.CreditAccountID, &t.Amount, &t.Currency, &t.PendingID, &timeout, &t.Ref, &created); err != nil {
		return nil, err
	}
	t.Kind = pb.TransferKind(kind)
	if timeout != 0 {
		t.Timeout = time.UnixMilli(timeout).UTC()
	}
	t.CreatedAt = time.UnixMilli(created).UTC()
	return &t, nil
}

func (s *Store) PendingTransfer(ctx context.Context, id int64) (*pb.Transfer, bool, error) {
	t, err := scanTransfer(s.pool.QueryRow(ctx, transferSelect+` WHERE id = $1 AND kind = $2`, id, int16(pb.TransferPending)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, notFound("pending transfer", id)
	}
	if err != nil {
		return nil, false, err
	}
	var resolved bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM transfers WHERE pending_id = $1)`, id).Scan(&resolved); err != nil {
		return nil, false, err
	}
	return t, resolved, nil
}

// ScanLedger reads accounts and transfers in one REPEATABLE READ
// transaction: one snapshot for both.
func (s *Store) ScanLedger(ctx context.Context, accounts func(*pb.Account) error, transfers func(*pb.Transfer) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			a, err := scanAccount(rows)
			if err == nil {
				err = accounts(a)
			}
			if err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, transferSelect+` ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTransfer(rows)
			if err == nil {
				err = transfers(t)
			}
			if err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

func (s *Store) Principal(ctx context.Context, hash [32]byte) (pb.Principal, error) {
	var p pb.Principal
	var role string
	err := s.pool.QueryRow(ctx, `SELECT role, principal_id, user_id FROM api_keys WHERE hash = $1`, hash[:]).Scan(&role, &p.ID, &p.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, notFound("API key", "(redacted)")
	}
	p.Role = pb.Role(role)
	return p, err
}

func (s *Store) User(ctx context.Context, id string) (*pb.User, error) {
	var u pb.User
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM users WHERE id = $1`, id).Scan(&u.ID, &u.Name, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("user", id)
	}
	u.CreatedAt = time.Unix(created, 0).UTC()
	return &u, err
}

func (s *Store) Merchant(ctx context.Context, id string) (*pb.Merchant, error) {
	var m pb.Merchant
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT id, name, category, created_at FROM merchants WHERE id = $1`, id).Scan(&m.ID, &m.Name, &m.Category, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("merchant", id)
	}
	m.CreatedAt = time.Unix(created, 0).UTC()
	return &m, err
}

func (s *Store) Agent(ctx context.Context, id string) (*pb.Agent, error) {
	var a pb.Agent
	var created int64
	var keyid string
	err := s.pool.QueryRow(ctx, `SELECT id, user_id, name, public_key, keyid, created_at FROM agents WHERE id = $1`, id).
		Scan(&a.ID, &a.UserID, &a.Name, &a.PublicKey, &keyid, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("agent", id)
	}
	a.KeyID = pb.OptString(keyid)
	a.CreatedAt = time.Unix(created, 0).UTC()
	return &a, err
}

const paymentCols = `id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded, currency, merchant_id,
	payer_id, agent_id, mandate_id, description, capture_method, authorization_expires_at, metadata, decline_code, hold_id, created_at, version,
	confirmation_id, confirmation_expires_at, assurance, log_head, risk, risk_input`

// logHead stores a payment's log head, NULL before its first entry.
func logHead(h [32]byte) []byte {
	if h == ([32]byte{}) {
		return nil
	}
	return h[:]
}

func scanPayment(r pgx.Row) (*pb.Payment, error) {
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
	if exp != nil {
		t := time.Unix(*exp, 0).UTC()
		p.AuthorizationExpiresAt = &t
	}
	if err := json.Unmarshal([]byte(md), &p.Metadata); err != nil {
		return nil, fmt.Errorf("payment %s has unreadable metadata: %w", p.ID, err)
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	p.CreatedAt = time.Unix(created, 0).UTC()
	p.SetConfirmation(cid, cexp)
	var err error
	if p.Risk, err = pb.DecodeRiskColumns(risk, input); err != nil {
		return nil, fmt.Errorf("payment %s has an unreadable risk assessment: %w", p.ID, err)
	}
	return &p, nil
}

func (s *Store) PaymentByConfirmation(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := scanPayment(s.pool.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE confirmation_id = $1 AND confirmation_id <> ''`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("confirmation", id)
	}
	return p, err
}

func (s *Store) Payment(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := scanPayment(s.pool.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("payment", id)
	}
	return p, err
}

func (s *Store) ListPayments(ctx context.Context, f pb.PaymentFilter) ([]pb.Payment, bool, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.PayerID != "" {
		add("payer_id = ?", f.PayerID)
	}
	if f.MerchantID != "" {
		add("merchant_id = ?", f.MerchantID)
	}
	if f.AgentID != "" {
		add("agent_id = ? AND agent_id <> ''", f.AgentID) // the second term lets the partial index serve
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if f.StartingAfter != "" {
		add("id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	q := `SELECT ` + paymentCols + ` FROM payments`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + strconv.Itoa(limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := []pb.Payment{}
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (s *Store) ExpiredPayments(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	for _, q := range []string{ // two queries, each served by its partial index
		`SELECT id FROM payments WHERE status = 'authorized' AND authorization_expires_at <= $1 ORDER BY authorization_expires_at LIMIT $2`,
		`SELECT id FROM payments WHERE status = 'requires_confirmation' AND confirmation_expires_at <= $1 ORDER BY confirmation_expires_at LIMIT $2`,
	} {
		rows, err := s.pool.Query(ctx, q, now.Unix(), limit-len(ids))
		if err != nil {
			return nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

func (s *Store) LookupIdempotency(ctx context.Context, keys []pb.IdempotencyKey) ([]pb.IdempotencyRecord, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	caller, key := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		caller[i], key[i] = k.Caller, k.Key
	}
	rows, err := s.pool.Query(ctx, `SELECT i.caller, i.key, i.request_hash, i.status, i.body, i.created_ms
		FROM idempotency i JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS k(caller, key)
		ON i.caller = k.caller AND i.key = k.key`, caller, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pb.IdempotencyRecord
	for rows.Next() {
		var r pb.IdempotencyRecord
		var hash []byte
		var status int32
		var created int64
		if err := rows.Scan(&r.Caller, &r.Key, &hash, &status, &r.Body, &created); err != nil {
			return nil, err
		}
		copy(r.RequestHash[:], hash)
		r.Status = int(status)
		r.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) DeleteIdempotency(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency WHERE (caller, key) IN
		(SELECT caller, key FROM idempotency WHERE created_ms < $1 LIMIT $2)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func scanMandate(r pgx.Row) (*pb.Mandate, error) {
	var data string
	var revoked *int64
	if err := r.Scan(&data, &revoked); err != nil {
		return nil, err
	}
	var m pb.Mandate
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return nil, fmt.Errorf("unreadable mandate: %w", err)
	}
	m.RevokedAt = nil
	if revoked != nil {
		t := time.Unix(*revoked, 0).UTC()
		m.RevokedAt = &t
	}
	return &m, nil
}

func (s *Store) Mandate(ctx context.Context, id string) (*pb.Mandate, error) {
	m, err := scanMandate(s.pool.QueryRow(ctx, `SELECT data, revoked_at FROM mandates WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("mandate", id)
	}
	return m, err
}

func (s *Store) ListMandates(ctx context.Context, f pb.MandateFilter) ([]pb.Mandate, bool, error) {
	q := `SELECT data, revoked_at FROM mandates WHERE user_id = $1`
	args := []any{f.UserID}
	if f.AgentID != "" {
		args = append(args, f.AgentID)
		q += ` AND agent_id = $` + strconv.Itoa(len(args))
	}
	if f.StartingAfter != "" {
		args = append(args, f.StartingAfter)
		q += ` AND id < $` + strconv.Itoa(len(args))
	}
	limit := pb.PageLimit(f.Limit)
	rows, err := s.pool.Query(ctx, q+` ORDER BY id DESC LIMIT `+strconv.Itoa(limit+1), args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := []pb.Mandate{}
	for rows.Next() {
		m, err := scanMandate(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (s *Store) MandateUsage(ctx context.Context, mandateID, periodKey string) (*pb.MandateUsageRow, error) {
	u := pb.MandateUsageRow{MandateID: mandateID, PeriodKey: periodKey}
	err := s.pool.QueryRow(ctx, `SELECT spent, payments, cap_amount, cap_payments FROM mandate_usage WHERE mandate_id = $1 AND period_key = $2`,
		mandateID, periodKey).Scan(&u.Spent, &u.Payments, &u.CapAmount, &u.CapPayments)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("mandate usage", mandateID+"/"+periodKey)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *Store) Passkeys(ctx context.Context, userID string) ([]pb.Passkey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, credential, created_at, revoked_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pb.Passkey
	for rows.Next() {
		k := pb.Passkey{UserID: userID}
		var created int64
		var revoked *int64
		if err := rows.Scan(&k.ID, &k.Credential, &created, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt = time.Unix(created, 0).UTC()
		if revoked != nil {
			t := time.Unix(*revoked, 0).UTC()
			k.RevokedAt = &t
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *Store) CodeFailures(ctx context.Context, confirmationID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT failures FROM confirmation_failures WHERE confirmation_id = $1`, confirmationID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

func (s *Store) TOTP(ctx context.Context, userID string) (*pb.TOTPFactor, error) {
	f := pb.TOTPFactor{UserID: userID}
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT secret, active, last_step, created_at FROM user_totp WHERE user_id = $1`, userID).
		Scan(&f.Secret, &f.Active, &f.LastStep, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("TOTP factor", userID)
	}
	if err != nil {
		return nil, err
	}
	f.CreatedAt = time.Unix(created, 0).UTC()
	return &f, nil
}

const agentKeyCols = `keyid, agent_id, public_key, created_at, not_after, revoked_at`

func scanAgentKey(r pgx.Row) (*pb.AgentKey, error) {
	var k pb.AgentKey
	var created int64
	var notAfter, revoked *int64
	if err := r.Scan(&k.KeyID, &k.AgentID, &k.PublicKey, &created, &notAfter, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = time.Unix(created, 0).UTC()
	if notAfter != nil {
		t := time.Unix(*notAfter, 0).UTC()
		k.NotAfter = &t
	}
	if revoked != nil {
		t := time.Unix(*revoked, 0).UTC()
		k.RevokedAt = &t
	}
	return &k, nil
}

func (s *Store) AgentKey(ctx context.Context, keyid string) (*pb.AgentKey, error) {
	k, err := scanAgentKey(s.pool.QueryRow(ctx, `SELECT `+agentKeyCols+` FROM agent_keys WHERE keyid = $1`, keyid))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("agent key", keyid)
	}
	return k, err
}

func (s *Store) AgentKeys(ctx context.Context, agentID string) ([]pb.AgentKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+agentKeyCols+` FROM agent_keys WHERE agent_id = $1 ORDER BY created_at, keyid LIMIT 100`, agentID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []pb.AgentKey{}
	for rows.Next() {
		k, err := scanAgentKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

func unixOrNil(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.Unix()
	return &v
}

func (s *Store) NonceSeen(ctx context.Context, keyid, nonce string) (bool, error) {
	var seen bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM signature_nonces WHERE keyid = $1 AND nonce = $2)`, keyid, nonce).Scan(&seen)
	return seen, err
}

func (s *Store) DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM signature_nonces WHERE (keyid, nonce) IN
		(SELECT keyid, nonce FROM signature_nonces WHERE expires_ms < $1 LIMIT $2)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

var _ pb.Store = (*Store)(nil)
