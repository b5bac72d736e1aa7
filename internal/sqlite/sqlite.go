// Package sqlite is Paybound's embedded store: one SQLite database file in
// WAL mode with synchronous=FULL, so a commit is on disk before Commit
// returns. It is the default and needs no set-up.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of pb.Store.
type Store struct {
	db *sql.DB // readers, and the writer's dedicated connection
	w  *sql.Conn
	// stmts caches the writer's multi-row statements by table and rows.
	stmts map[stmtKey]*sql.Stmt
	// reads caches statements prepared on the pool, by query text: the
	// point reads of the request path are parsed once per connection.
	reads sync.Map
	log   logTree // the writer's view of the log's tree (Commit only)
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date. It refuses a database whose schema is newer than this binary.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	// A checkpoint every 16384 WAL pages (64 MiB) instead of SQLite's 1000
	// writes each hot page (index tails, busy accounts) to the database file
	// once per checkpoint rather than again and again: about a fifth fewer
	// bytes written per payment. journal_size_limit trims the WAL back after.
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(OFF)",
		"cache_size(-65536)", "wal_autocheckpoint(16384)", "journal_size_limit(67108864)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("couldn't open SQLite database %s: %w", path, err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxLifetime(0)
	s := &Store{db: db, stmts: map[stmtKey]*sql.Stmt{}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open SQLite database %s: %w", path, err)
	}
	if s.w, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open the writer connection: %w", err)
	}
	// The writer's upserts run in statement journals, which SQLite spills to
	// a temporary file past 64 KiB: a write and a seek per page touched,
	// about a tenth of a commit's CPU. In memory, a journal is bounded by
	// the pages one multi-row statement touches (see chunks). Readers keep
	// the default, so that a large sort spills to disk.
	if _, err := s.w.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		s.w.Close()
		db.Close()
		return nil, fmt.Errorf("couldn't configure the writer connection: %w", err)
	}
	return s, nil
}

// SchemaVersion is the schema this binary writes.
func SchemaVersion() int {
	n, _ := fs.Glob(migrations, "migrations/*.sql")
	return len(n)
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("couldn't create schema_version: %w", err)
	}
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("couldn't read schema version: %w", err)
	}
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	if have > len(names) {
		return fmt.Errorf("the database schema is version %d but this paybound knows only up to %d: run a newer paybound", have, len(names))
	}
	for i := have; i < len(names); i++ {
		body, err := migrations.ReadFile(names[i])
		if err != nil {
			return err
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("couldn't start migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("couldn't apply migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("couldn't record migration %s: %w", names[i], err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("couldn't commit migration %s: %w", names[i], err)
		}
	}
	return nil
}

// table describes how the writer inserts rows into one table.
type table struct {
	name, cols string
	ncols      int
	tail       string // ON CONFLICT clause, if any
}

var (
	tAccounts = table{"accounts", "id, owner, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted", 8,
		` ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, debits_posted = excluded.debits_posted,
		credits_pending = excluded.credits_pending, credits_posted = excluded.credits_posted`}
	tTransfers = table{"transfers", "id, kind, debit_account_id, credit_account_id, amount, currency, pending_id, timeout_ms, ref, created_ms", 10, ""}
	// A payment's risk columns are written by the insert only: its
	// assessment never changes after its creation.
	tPayments = table{"payments", `id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded,
		currency, merchant_id, payer_id, agent_id, mandate_id, description, capture_method, authorization_expires_at,
		metadata, decline_code, hold_id, created_at, version, confirmation_id, confirmation_expires_at, assurance, log_head,
		risk, risk_input, log_idx`, 27,
		` ON CONFLICT (id) DO UPDATE SET status = excluded.status, amount_captured = excluded.amount_captured,
		amount_refunded = excluded.amount_refunded, fee_amount = excluded.fee_amount, fee_refunded = excluded.fee_refunded,
		authorization_expires_at = excluded.authorization_expires_at, decline_code = excluded.decline_code, hold_id = excluded.hold_id,
		version = excluded.version, confirmation_id = excluded.confirmation_id,
		confirmation_expires_at = excluded.confirmation_expires_at, log_head = excluded.log_head,
		log_idx = CAST(COALESCE(payments.log_idx, x'') || COALESCE(excluded.log_idx, x'') AS BLOB)`}
	tRefunds     = table{"refunds", "id, payment_id, amount, currency, reason, status, created_at", 7, ""}
	tTopups      = table{"topups", "id, user_id, amount, currency, status, created_at", 6, ""}
	tUsers       = table{"users", "id, name, created_at", 3, ""}
	tMerchants   = table{"merchants", "id, name, category, created_at", 4, ""}
	tAgents      = table{"agents", "id, user_id, name, public_key, keyid, created_at", 6, ""}
	tAPIKeys     = table{"api_keys", "hash, role, principal_id, user_id, created_at", 5, ""}
	tIdempotency = table{"idempotency", "caller, key, request_hash, status, body, created_ms", 6, ""}
	tMandates    = table{"mandates", "id, user_id, agent_id, data, revoked_at, created_at", 6,
		` ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at`}
	tTOTP = table{"user_totp", "user_id, secret, active, last_step, created_at", 5,
		` ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, active = excluded.active,
		last_step = excluded.last_step, created_at = excluded.created_at`}
	tCodeFailures = table{"confirmation_failures", "confirmation_id, failures", 2,
		` ON CONFLICT (confirmation_id) DO UPDATE SET failures = confirmation_failures.failures + excluded.failures`}
	tPasskeys = table{"passkeys", "id, user_id, credential, created_at, revoked_at", 5,
		` ON CONFLICT (id) DO UPDATE SET credential = excluded.credential,
		revoked_at = COALESCE(passkeys.revoked_at, excluded.revoked_at)`}
	tNonces    = table{"signature_nonces", "keyid, nonce, expires_ms", 3, ""}
	tAgentKeys = table{"agent_keys", "keyid, agent_id, public_key, created_at, not_after, revoked_at", 6,
		` ON CONFLICT (keyid) DO UPDATE SET not_after = excluded.not_after, revoked_at = excluded.revoked_at`}
	tLogBundles  = table{"log_bundles", "first, size, entries, subjects, root", 5, ""}
	tLogSubjects = table{"log_subjects", "subject, idx", 2, ""}
	tLogHashRuns = table{"log_hash_runs", "first, hashes", 2, ""}
	tUsage       = table{"mandate_usage", "mandate_id, period_key, spent, payments, cap_amount, cap_payments", 6,
		` ON CONFLICT (mandate_id, period_key) DO UPDATE SET spent = excluded.spent, payments = excluded.payments`}
)

type stmtKey struct {
	t    *table
	rows int
}

// chunks are the row counts of the multi-row statements: a batch of n rows
// is written greedily with the largest that fit, so a batch costs a few
// statements instead of one per row.
var chunks = []int{64, 16, 4, 1}

// insert writes n rows of t; args appends row i's values to dst.
func (s *Store) insert(ctx context.Context, t *table, n int, args func(dst []any, i int) []any) error {
	buf := make([]any, 0, min(n, chunks[0])*t.ncols)
	for i := 0; i < n; {
		rows := 1
		for _, c := range chunks {
			if n-i >= c {
				rows = c
				break
			}
		}
		st, err := s.stmt(ctx, t, rows)
		if err != nil {
			return err
		}
		buf = buf[:0]
		for j := i; j < i+rows; j++ {
			buf = args(buf, j)
		}
		if _, err := st.ExecContext(ctx, buf...); err != nil {
			return fmt.Errorf("couldn't write %s: %w", t.name, err)
		}
		i += rows
	}
	return nil
}

func (s *Store) stmt(ctx context.Context, t *table, rows int) (*sql.Stmt, error) {
	k := stmtKey{t, rows}
	if st := s.stmts[k]; st != nil {
		return st, nil
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", t.ncols), ",") + ")"
	// OR FAIL: a failed statement leaves the rows it wrote, which spares
	// SQLite a statement journal for plain inserts; Commit rolls the whole
	// transaction back on any error anyway. (An upsert's DO UPDATE still
	// journals.)
	q := "INSERT OR FAIL INTO " + t.name + " (" + t.cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ",") + t.tail
	st, err := s.w.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("couldn't prepare the %s insert: %w", t.name, err)
	}
	s.stmts[k] = st
	return st, nil
}

// row runs a single-row query through a cached prepared statement.
func (s *Store) row(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return s.db.QueryRowContext(ctx, query, args...) // reports err on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// prepared returns the pool's cached prepared statement for query.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	p, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.reads.LoadOrStore(query, p); loaded {
		p.Close()
		return prev.(*sql.Stmt), nil
	}
	return p, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.w != nil {
		s.w.Close()
	}
	return s.db.Close()
}

func unixOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func transferArgs(args []any, t *pb.Transfer) []any {
	return append(args, t.ID, int(t.Kind), t.DebitAccountID, t.CreditAccountID, t.Amount, t.Currency,
		nullInt(t.PendingID), ms(t.Timeout), t.Ref, t.CreatedAt.UnixMilli())
}

// Commit writes b in one IMMEDIATE transaction; with synchronous=FULL the
// WAL is fsynced before Commit returns.
func (s *Store) Commit(ctx context.Context, b *pb.Batch) (err error) {
	// The writer's connection runs its transaction with plain BEGIN/COMMIT:
	// database/sql re-prepares connection-bound statements inside a sql.Tx,
	// which would parse every statement of every batch again.
	// BEGIN, COMMIT and ROLLBACK run without ctx's cancellation: the driver
	// reports a canceled context even for a statement that completed, which
	// would leave the connection inside a transaction, or call a written
	// batch failed. ctx is checked before COMMIT instead.
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("couldn't begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := s.w.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("couldn't roll back: %w", rerr))
			}
			// Whether or not the batch reached the file, the log's tree is read
			// again from it before the next batch.
			s.log = logTree{}
		}
	}()
	if len(b.Log) > 0 {
		if err := s.loadLog(ctx); err != nil {
			return err
		}
	}
	// The payments' new entries, listed on their rows, and which those are.
	logIdx, onRow := paymentEntries(s.log.size, b)
	steps := []struct {
		t    *table
		n    int
		args func(dst []any, i int) []any
	}{
		{&tAccounts, len(b.Accounts), func(d []any, i int) []any {
			a := &b.Accounts[i]
			return append(d, a.ID, a.Owner, a.Currency, int64(a.Flags), a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted)
		}},
		{&tTransfers, len(b.Transfers), func(d []any, i int) []any { return transferArgs(d, &b.Transfers[i]) }},
		{&tPayments, len(b.Payments), func(d []any, i int) []any {
			p := &b.Payments[i]
			md, _ := json.Marshal(p.Metadata) // map[string]string always encodes
			var exp, cexp any
			if p.AuthorizationExpiresAt != nil {
				exp = p.AuthorizationExpiresAt.Unix()
			}
			cid, ce := p.ConfirmationColumns()
			if ce != nil {
				cexp = *ce
			}
			var risk, input string // an update leaves them as they are: encode them only for a new payment
			if b.PaymentVersions[i] == 0 {
				risk, input = p.Risk.Columns()
			}
			return append(d, p.ID, string(p.Status), p.Amount, p.AmountCaptured, p.AmountRefunded, p.FeeAmount, p.FeeRefunded,
				p.Currency, p.MerchantID, p.PayerID, string(p.AgentID), string(p.MandateID), p.Description,
				string(p.CaptureMethod), exp, string(md), string(p.DeclineCode), p.HoldID, p.CreatedAt.Unix(), p.Version, cid, cexp,
				string(p.Assurance), logHead(p.LogHead), risk, input, logIdx[i])
		}},
		{&tRefunds, len(b.Refunds), func(d []any, i int) []any {
			r := &b.Refunds[i]
			return append(d, r.ID, r.PaymentID, r.Amount, r.Currency, r.Reason, r.Status, r.CreatedAt.Unix())
		}},
		{&tTopups, len(b.Topups), func(d []any, i int) []any {
			t := &b.Topups[i]
			return append(d, t.ID, t.UserID, t.Amount, t.Currency, t.Status, t.CreatedAt.Unix())
		}},
		{&tUsers, len(b.Users), func(d []any, i int) []any {
			u := &b.Users[i]
			return append(d, u.ID, u.Name, u.CreatedAt.Unix())
		}},
		{&tMerchants, len(b.Merchants), func(d []any, i int) []any {
			m := &b.Merchants[i]
			return append(d, m.ID, m.Name, m.Category, m.CreatedAt.Unix())
		}},
		{&tAgents, len(b.Agents), func(d []any, i int) []any {
			a := &b.Agents[i]
			return append(d, a.ID, a.UserID, a.Name, a.PublicKey, string(a.KeyID), a.CreatedAt.Unix())
		}},
		{&tAPIKeys, len(b.APIKeys), func(d []any, i int) []any {
			k := &b.APIKeys[i]
			return append(d, k.Hash[:], string(k.Principal.Role), k.Principal.ID, k.Principal.UserID, k.CreatedAt.Unix())
		}},
		{&tIdempotency, len(b.Idempotency), func(d []any, i int) []any {
			r := &b.Idempotency[i]
			body := r.Body
			if body == nil {
				body = []byte{} // an empty response, not a missing one
			}
			return append(d, r.Caller, r.Key, r.RequestHash[:], r.Status, body, r.CreatedAt.UnixMilli())
		}},
		{&tMandates, len(b.Mandates), func(d []any, i int) []any {
			m := &b.Mandates[i]
			data, _ := json.Marshal(m) // a struct of plain fields always encodes
			var revoked any
			if m.RevokedAt != nil {
				revoked = m.RevokedAt.Unix()
			}
			return append(d, m.ID, m.UserID, m.AgentID, string(data), revoked, m.CreatedAt.Unix())
		}},
		{&tTOTP, len(b.TOTP), func(d []any, i int) []any {
			f := &b.TOTP[i]
			return append(d, f.UserID, f.Secret, f.Active, f.LastStep, f.CreatedAt.Unix())
		}},
		{&tCodeFailures, len(b.CodeFailures), func(d []any, i int) []any { return append(d, b.CodeFailures[i], 1) }},
		{&tPasskeys, len(b.Passkeys), func(d []any, i int) []any {
			k := &b.Passkeys[i]
			return append(d, k.ID, k.UserID, k.Credential, k.CreatedAt.Unix(), unixOrNil(k.RevokedAt))
		}},
		{&tAgentKeys, len(b.AgentKeys), func(d []any, i int) []any {
			k := &b.AgentKeys[i]
			return append(d, k.KeyID, k.AgentID, k.PublicKey, k.CreatedAt.Unix(), unixOrNil(k.NotAfter), unixOrNil(k.RevokedAt))
		}},
		{&tNonces, len(b.Nonces), func(d []any, i int) []any {
			n := &b.Nonces[i]
			return append(d, n.KeyID, n.Nonce, n.Expires.UnixMilli())
		}},
		{&tDisputes, len(b.Disputes), func(d []any, i int) []any { return disputeArgs(d, &b.Disputes[i]) }},
		{&tUsage, len(b.Usage), func(d []any, i int) []any {
			u := &b.Usage[i]
			return append(d, u.MandateID, u.PeriodKey, u.Spent, u.Payments, u.CapAmount, u.CapPayments)
		}},
	}
	for _, st := range steps {
		if st.n > 0 {
			if err := s.insert(ctx, st.t, st.n, st.args); err != nil {
				return err
			}
		}
	}
	app, err := s.appendLog(ctx, b.Log, onRow)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	s.log.applied(app)
	return nil
}

// NextIDs returns one past the largest account and transfer IDs.
func (s *Store) NextIDs(ctx context.Context) (account, transfer int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT MAX(id) FROM accounts), 0) + 1, COALESCE((SELECT MAX(id) FROM transfers), 0) + 1`).Scan(&account, &transfer)
	return account, transfer, err
}

func notFound(what string, id any) error {
	return pb.Errorf(pb.ErrNotFound, "", "no such %s: %v", what, id)
}

const accountCols = `id, owner, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted`

type scanner interface{ Scan(...any) error }

func scanAccount(r scanner) (*pb.Account, error) {
	var a pb.Account
	var flags int64
	if err := r.Scan(&a.ID, &a.Owner, &a.Currency, &flags, &a.DebitsPending, &a.DebitsPosted, &a.CreditsPending, &a.CreditsPosted); err != nil {
		return nil, err
	}
	a.Flags = pb.AccountFlags(flags)
	return &a, nil
}

func (s *Store) Account(ctx context.Context, owner, currency string) (*pb.Account, error) {
	a, err := scanAccount(s.row(ctx, `SELECT `+accountCols+` FROM accounts WHERE owner = ? AND currency = ?`, owner, currency))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("account", owner+"/"+currency)
	}
	return a, err
}

func (s *Store) AccountByID(ctx context.Context, id int64) (*pb.Account, error) {
	a, err := scanAccount(s.row(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("account", id)
	}
	return a, err
}

func (s *Store) AccountsByOwner(ctx context.Context, owner string) ([]pb.Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE owner = ? ORDER BY currency`, owner)
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

func scanTransfer(r scanner) (*pb.Transfer, error) {
	var t pb.Transfer
	var kind int
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
	t, err := scanTransfer(s.row(ctx, transferSelect+` WHERE id = ? AND kind = ?`, id, int(pb.TransferPending)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, notFound("pending transfer", id)
	}
	if err != nil {
		return nil, false, err
	}
	var n int
	if err := s.row(ctx, `SELECT COUNT(*) FROM transfers WHERE pending_id = ?`, id).Scan(&n); err != nil {
		return nil, false, err
	}
	return t, n > 0, nil
}

// ScanLedger reads accounts and transfers inside one read transaction, so
// that with WAL both come from the same committed state.
func (s *Store) ScanLedger(ctx context.Context, accounts func(*pb.Account) error, transfers func(*pb.Transfer) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY id`)
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
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.QueryContext(ctx, transferSelect+` ORDER BY id`)
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
}

func (s *Store) Principal(ctx context.Context, hash [32]byte) (pb.Principal, error) {
	var p pb.Principal
	var role string
	err := s.row(ctx, `SELECT role, principal_id, user_id FROM api_keys WHERE hash = ?`, hash[:]).Scan(&role, &p.ID, &p.UserID)
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("API key", "(redacted)")
	}
	p.Role = pb.Role(role)
	return p, err
}

func (s *Store) User(ctx context.Context, id string) (*pb.User, error) {
	var u pb.User
	var created int64
	err := s.row(ctx, `SELECT id, name, created_at FROM users WHERE id = ?`, id).Scan(&u.ID, &u.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user", id)
	}
	u.CreatedAt = time.Unix(created, 0).UTC()
	return &u, err
}

func (s *Store) Merchant(ctx context.Context, id string) (*pb.Merchant, error) {
	var m pb.Merchant
	var created int64
	err := s.row(ctx, `SELECT id, name, category, created_at FROM merchants WHERE id = ?`, id).Scan(&m.ID, &m.Name, &m.Category, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("merchant", id)
	}
	m.CreatedAt = time.Unix(created, 0).UTC()
	return &m, err
}

func (s *Store) Agent(ctx context.Context, id string) (*pb.Agent, error) {
	var a pb.Agent
	var created int64
	var keyid string
	err := s.row(ctx, `SELECT id, user_id, name, public_key, keyid, created_at FROM agents WHERE id = ?`, id).
		Scan(&a.ID, &a.UserID, &a.Name, &a.PublicKey, &keyid, &created)
	if errors.Is(err, sql.ErrNoRows) {
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
func logHead(h [32]byte) any {
	if h == ([32]byte{}) {
		return nil
	}
	return h[:]
}

func scanPayment(r scanner) (*pb.Payment, error) {
	var p pb.Payment
	var status, agent, mandate, capture, md, decline string
	var exp, cexp sql.NullInt64
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
	if exp.Valid {
		t := time.Unix(exp.Int64, 0).UTC()
		p.AuthorizationExpiresAt = &t
	}
	if err := json.Unmarshal([]byte(md), &p.Metadata); err != nil {
		return nil, fmt.Errorf("payment %s has unreadable metadata: %w", p.ID, err)
	}
	p.CreatedAt = time.Unix(created, 0).UTC()
	if cexp.Valid {
		p.SetConfirmation(cid, &cexp.Int64)
	}
	var err error
	if p.Risk, err = pb.DecodeRiskColumns(risk, input); err != nil {
		return nil, fmt.Errorf("payment %s has an unreadable risk assessment: %w", p.ID, err)
	}
	return &p, nil
}

func (s *Store) PaymentByConfirmation(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := scanPayment(s.row(ctx, `SELECT `+paymentCols+` FROM payments WHERE confirmation_id = ? AND confirmation_id <> ''`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("confirmation", id)
	}
	return p, err
}

func (s *Store) Payment(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := scanPayment(s.row(ctx, `SELECT `+paymentCols+` FROM payments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("payment", id)
	}
	return p, err
}

func (s *Store) ListPayments(ctx context.Context, f pb.PaymentFilter) ([]pb.Payment, bool, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"payer_id", f.PayerID}, {"merchant_id", f.MerchantID}, {"agent_id", f.AgentID}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if f.AgentID != "" {
		where = append(where, "agent_id != ''") // lets SQLite use the partial index
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if f.StartingAfter != "" {
		where = append(where, "id < ?")
		args = append(args, f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	q := `SELECT ` + paymentCols + ` FROM payments`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + strconv.Itoa(limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
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
	// Two queries, each served by its partial index.
	var ids []string
	for _, q := range []string{
		`SELECT id FROM payments WHERE status = 'authorized' AND authorization_expires_at <= ? ORDER BY authorization_expires_at LIMIT ?`,
		`SELECT id FROM payments WHERE status = 'requires_confirmation' AND confirmation_expires_at <= ? ORDER BY confirmation_expires_at LIMIT ?`,
	} {
		rows, err := s.db.QueryContext(ctx, q, now.Unix(), limit-len(ids))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// LookupIdempotency asks in chunks of a few fixed sizes, so that the
// statements are prepared once instead of parsed per batch.
func (s *Store) LookupIdempotency(ctx context.Context, keys []pb.IdempotencyKey) ([]pb.IdempotencyRecord, error) {
	var out []pb.IdempotencyRecord
	args := make([]any, 0, 2*chunks[0])
	for len(keys) > 0 {
		n := 1
		for _, c := range chunks {
			if len(keys) >= c {
				n = c
				break
			}
		}
		args = args[:0]
		for _, k := range keys[:n] {
			args = append(args, k.Caller, k.Key)
		}
		keys = keys[n:]
		st, err := s.prepared(ctx, `SELECT caller, key, request_hash, status, body, created_ms FROM idempotency WHERE (caller, key) IN (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?,?),", n), ",")+`)`)
		if err != nil {
			return nil, err
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r pb.IdempotencyRecord
			var hash []byte
			var created int64
			if err := rows.Scan(&r.Caller, &r.Key, &hash, &r.Status, &r.Body, &created); err != nil {
				rows.Close()
				return nil, err
			}
			copy(r.RequestHash[:], hash)
			r.CreatedAt = time.UnixMilli(created).UTC()
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) DeleteIdempotency(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE created_ms < ? LIMIT ?)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func scanMandate(r scanner) (*pb.Mandate, error) {
	var data string
	var revoked sql.NullInt64
	if err := r.Scan(&data, &revoked); err != nil {
		return nil, err
	}
	return decodeMandate(data, revoked.Valid, revoked.Int64)
}

// decodeMandate reads a stored mandate; the revocation column, not the
// JSON, says whether it is revoked.
func decodeMandate(data string, revoked bool, at int64) (*pb.Mandate, error) {
	var m pb.Mandate
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return nil, fmt.Errorf("unreadable mandate: %w", err)
	}
	m.RevokedAt = nil
	if revoked {
		t := time.Unix(at, 0).UTC()
		m.RevokedAt = &t
	}
	return &m, nil
}

func (s *Store) Mandate(ctx context.Context, id string) (*pb.Mandate, error) {
	m, err := scanMandate(s.row(ctx, `SELECT data, revoked_at FROM mandates WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("mandate", id)
	}
	return m, err
}

func (s *Store) ListMandates(ctx context.Context, f pb.MandateFilter) ([]pb.Mandate, bool, error) {
	q := `SELECT data, revoked_at FROM mandates WHERE user_id = ?`
	args := []any{f.UserID}
	if f.AgentID != "" {
		q += ` AND agent_id = ?`
		args = append(args, f.AgentID)
	}
	if f.StartingAfter != "" {
		q += ` AND id < ?`
		args = append(args, f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id DESC LIMIT `+strconv.Itoa(limit+1), args...)
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
	err := s.row(ctx, `SELECT spent, payments, cap_amount, cap_payments FROM mandate_usage WHERE mandate_id = ? AND period_key = ?`,
		mandateID, periodKey).Scan(&u.Spent, &u.Payments, &u.CapAmount, &u.CapPayments)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("mandate usage", mandateID+"/"+periodKey)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *Store) Passkeys(ctx context.Context, userID string) ([]pb.Passkey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, credential, created_at, revoked_at FROM passkeys WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pb.Passkey
	for rows.Next() {
		k := pb.Passkey{UserID: userID}
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Credential, &created, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt = time.Unix(created, 0).UTC()
		if revoked.Valid {
			t := time.Unix(revoked.Int64, 0).UTC()
			k.RevokedAt = &t
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *Store) CodeFailures(ctx context.Context, confirmationID string) (int, error) {
	var n int
	err := s.row(ctx, `SELECT failures FROM confirmation_failures WHERE confirmation_id = ?`, confirmationID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

func (s *Store) TOTP(ctx context.Context, userID string) (*pb.TOTPFactor, error) {
	f := pb.TOTPFactor{UserID: userID}
	var created int64
	err := s.row(ctx, `SELECT secret, active, last_step, created_at FROM user_totp WHERE user_id = ?`, userID).
		Scan(&f.Secret, &f.Active, &f.LastStep, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("TOTP factor", userID)
	}
	if err != nil {
		return nil, err
	}
	f.CreatedAt = time.Unix(created, 0).UTC()
	return &f, nil
}

const agentKeyCols = `keyid, agent_id, public_key, created_at, not_after, revoked_at`

func scanAgentKey(r scanner) (*pb.AgentKey, error) {
	var k pb.AgentKey
	var created int64
	var notAfter, revoked sql.NullInt64
	if err := r.Scan(&k.KeyID, &k.AgentID, &k.PublicKey, &created, &notAfter, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = time.Unix(created, 0).UTC()
	if notAfter.Valid {
		t := time.Unix(notAfter.Int64, 0).UTC()
		k.NotAfter = &t
	}
	if revoked.Valid {
		t := time.Unix(revoked.Int64, 0).UTC()
		k.RevokedAt = &t
	}
	return &k, nil
}

func (s *Store) AgentKey(ctx context.Context, keyid string) (*pb.AgentKey, error) {
	k, err := scanAgentKey(s.row(ctx, `SELECT `+agentKeyCols+` FROM agent_keys WHERE keyid = ?`, keyid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("agent key", keyid)
	}
	return k, err
}

func (s *Store) AgentKeys(ctx context.Context, agentID string) ([]pb.AgentKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+agentKeyCols+` FROM agent_keys WHERE agent_id = ? ORDER BY created_at, keyid LIMIT 100`, agentID)
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

func (s *Store) NonceSeen(ctx context.Context, keyid, nonce string) (bool, error) {
	var n int
	err := s.row(ctx, `SELECT COUNT(*) FROM signature_nonces WHERE keyid = ? AND nonce = ?`, keyid, nonce).Scan(&n)
	return n > 0, err
}

func (s *Store) DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM signature_nonces WHERE rowid IN (SELECT rowid FROM signature_nonces WHERE expires_ms < ? LIMIT ?)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

var _ pb.Store = (*Store)(nil)
