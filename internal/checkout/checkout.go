// Package checkout is the checkout capability: a merchant's catalog, the
// checkout sessions of the Agentic Commerce Protocol (ACP) that an agent
// opens against it for its user, the agent cards a user issues under a
// mandate, delegate_payment (an agent card turned into a single-use vault
// token bound to one session, merchant and amount), and the completion
// that charges through the token, exactly once, through the payments core.
//
// Its operations take principals and domain values, never HTTP: the ACP
// adapter (internal/acp) and the MCP server call them alike, and render
// their results with this package's ACP wire forms (wire.go). Its own REST
// routes (products, cards) are written with the REST toolkit (routes.go).
package checkout

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Core is what the checkout needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// CreatePayment pays a merchant as caller, every rule of the payment
	// path applied; params.Within runs in the payment's own operation.
	CreatePayment(ctx context.Context, caller pb.Principal, idem *service.Idempotency, params service.CreatePaymentParams) service.Result
	// Merchant returns merchant id, or nil when there is none.
	Merchant(ctx context.Context, id string) (*pb.Merchant, error)
	// Payment returns payment id if caller is a party to it.
	Payment(ctx context.Context, caller pb.Principal, id string) (*pb.Payment, error)
	// AgentKeys returns an agent's signing keys, revoked ones included,
	// as of the last change this process made, or the store's
	// (delegate_payment's Signature).
	AgentKeys(ctx context.Context, agentID string) ([]pb.AgentKey, error)
}

// Store is what the checkout reads: its own rows and the mandates cards
// are issued under.
type Store interface {
	pb.CheckoutStore
	Mandate(ctx context.Context, id string) (*pb.Mandate, error)
}

// Config is the checkout's configuration.
type Config struct {
	// CardKey keys the hash under which agent card numbers are kept (at
	// least 32 bytes). Changing it makes every issued card unusable.
	CardKey []byte
	// BaseURL is the server's public URL (http://host:port), from which
	// orders' permalinks and confirmation links are made.
	BaseURL string
	// Clock is the time source (default: the system clock).
	Clock pb.Clock
}

// Service is the checkout capability. Safe for concurrent use.
type Service struct {
	core  Core
	st    Store
	cfg   Config
	clock pb.Clock
	// shared says other processes write the store too (pb.SharedStore):
	// then a session is read again in the writer (see sessionAt).
	shared bool
	// busy holds the sessions and products an operation of this process is
	// changing, until its batch has committed (see exclusive).
	busy sync.Map
	// approving maps a payment approved by the operation being applied to
	// its session, until the approval's outcome is logged (Observe).
	approving sync.Map
	// caps caches each merchant's capabilities, encoded (wire.go).
	caps  sync.Map
	nCaps atomic.Int64
	// cards remembers agent cards read, on a store only this process
	// writes (see card).
	cards service.Memo[cardKey, pb.AgentCard]
}

// New returns the checkout over core and st. It fails when cfg is invalid.
func New(core Core, st Store, cfg Config) (*Service, error) {
	if len(cfg.CardKey) < 32 {
		return nil, errors.New("checkout: Config.CardKey must be at least 32 bytes")
	}
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, errors.New("checkout: Config.BaseURL must be an http(s) URL such as https://pay.example.com")
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	_, shared := st.(pb.SharedStore)
	return &Service{core: core, st: st, cfg: cfg, clock: cfg.Clock, shared: shared,
		cards: service.Memo[cardKey, pb.AgentCard]{Max: 2 * maxCachedCards}}, nil
}

// exclusive claims id (a session or a product) for one operation of this
// process until it returns and its batch has committed: the ledger writer
// applies a batch while the one before it commits, so an operation that
// read a session from the store could miss a change still in flight and
// write over it (or complete it twice). Another operation on id waits its
// turn (at most lockWait, or ctx's end), then reads what the first one
// wrote. A request whose Idempotency-Key is still running is refused
// first, as the core refuses it (ErrIdempotencyRunning, 409). A shared
// store's writer does not overlap batches, and refuses a second
// completion from another process by its unique keys.
func (s *Service) exclusive(ctx context.Context, id string, idem *service.Idempotency) (release func(), err error) {
	slot := ""
	if idem != nil {
		slot = "idem\x00" + idem.Caller + "\x00" + idem.Key
		if _, running := s.busy.LoadOrStore(slot, make(chan struct{})); running {
			return nil, &pb.Error{Code: pb.ErrIdempotencyRunning, Message: "a request with this Idempotency-Key is currently being processed; retry after it completes", RetryAfter: time.Second}
		}
	}
	free := func() {
		if slot != "" {
			s.busy.Delete(slot)
		}
	}
	mine := make(chan struct{})
	timer := time.NewTimer(lockWait)
	defer timer.Stop()
	for {
		held, taken := s.busy.LoadOrStore(id, mine)
		if !taken {
			return func() { s.busy.Delete(id); close(mine); free() }, nil
		}
		select {
		case <-held.(chan struct{}):
		case <-ctx.Done():
			free()
			return nil, ctx.Err()
		case <-timer.C:
			free()
			return nil, &pb.Error{Code: pb.ErrCheckoutState, Message: "another request has been changing " + id + " for too long; retry in a moment", RetryAfter: time.Second}
		}
	}
}

// lockWait bounds how long an operation waits for another on the same
// session or product.
const lockWait = 10 * time.Second

// now is the service's time, to the second (what every stored time is).
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Second) }

// The checkout's lists of the batch, for ledger.Add and ledger.Added.
func products(b *pb.Batch) *[]pb.Product               { return &b.Products }
func sessions(b *pb.Batch) *[]pb.CheckoutSession       { return &b.CheckoutSessions }
func cards(b *pb.Batch) *[]pb.AgentCard                { return &b.AgentCards }
func tokens(b *pb.Batch) *[]pb.VaultToken              { return &b.VaultTokens }
func completions(b *pb.Batch) *[]pb.CheckoutCompletion { return &b.CheckoutCompletions }

// inTx returns the row with key id as of this point in the batch: the last
// one the writer wrote (ledger.Latest), else the stored one (read by load).
func inTx[T any](tx *ledger.Tx, part func(*pb.Batch) *[]T, key func(*T) string, id string, load func(context.Context, string) (*T, error)) (*T, error) {
	if v, ok := ledger.Latest(tx, part, key, id); ok {
		return &v, nil
	}
	return load(tx.Context(), id)
}

func (s *Service) productIn(tx *ledger.Tx, id string) (*pb.Product, error) {
	return inTx(tx, products, func(p *pb.Product) string { return p.ID }, id, s.st.Product)
}

// putSession writes sess, as read from the batch or the store (Version 0:
// new), as its next version: a store shared by several processes refuses
// it when another process wrote the session since it was read, and the
// batch is computed again on what the store holds (see
// pb.CheckoutSession.Version).
func putSession(tx *ledger.Tx, sess *pb.CheckoutSession) {
	sess.Version++
	ledger.Add(tx, sessions, *sess)
}

func (s *Service) sessionIn(tx *ledger.Tx, id string) (*pb.CheckoutSession, error) {
	return inTx(tx, sessions, func(c *pb.CheckoutSession) string { return c.ID }, id, s.st.CheckoutSession)
}

// sessionAt is sessionIn for an operation that holds id (exclusive) and
// read it as read before it queued: on a store that only this process
// writes, nothing but this batch can have changed the session since, so
// the writer, which is the bottleneck, does not read it again. A store
// that other processes share is read again: the batch may be computed
// again after another process's change (ErrStoreConflict), and must see
// it.
func (s *Service) sessionAt(tx *ledger.Tx, id string, read *pb.CheckoutSession) (*pb.CheckoutSession, error) {
	if s.shared {
		return s.sessionIn(tx, id)
	}
	return inTx(tx, sessions, func(c *pb.CheckoutSession) string { return c.ID }, id, func(context.Context, string) (*pb.CheckoutSession, error) {
		c := *read
		return &c, nil
	})
}

// completedIn reports whether this batch completed session id.
func completedIn(tx *ledger.Tx, id string) bool {
	for _, c := range ledger.Added(tx, completions) {
		if c.SessionID == id {
			return true
		}
	}
	return false
}

// tokenUsedIn reports whether token id paid a completion as of this point
// in the batch (its row says so once committed; the batch's completions
// say so before).
func tokenUsedIn(tx *ledger.Tx, t *pb.VaultToken) bool {
	if t.UsedBy != "" {
		return true
	}
	for _, c := range ledger.Added(tx, completions) {
		if c.TokenID == t.ID {
			return true
		}
	}
	return false
}

// numberHash is the keyed hash under which a card number is kept.
func (s *Service) numberHash(number string) string {
	m := hmac.New(sha256.New, s.cfg.CardKey)
	m.Write([]byte("paybound agent card\x00" + number))
	return hex.EncodeToString(m.Sum(nil))
}

// checkText refuses a string that is not valid UTF-8 of at most max bytes
// (or empty when required).
func checkText(v, param string, max int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return pb.Errorf(pb.ErrParameterMissing, param, "%s is required", param)
	}
	if len(v) > max || !utf8.ValidString(v) {
		return pb.Errorf(pb.ErrParameterInvalid, param, "%s must be valid UTF-8 of at most %d bytes", param, max)
	}
	return nil
}

// wrapRender makes idem's stored response the one of v instead of the
// operation's own value (a completion answers with its session, not the
// payment it made). render returns what to render: nil keeps the
// operation's error.
func wrapRender(idem *service.Idempotency, render func(err error) (any, error)) {
	if idem == nil || idem.Render == nil {
		return
	}
	orig := idem.Render
	idem.Render = func(_ any, err error) (int, []byte) { return orig(render(err)) }
}

// cardKey names a card in Service.cards: by its number's hash, or by ID.
// A card is kept under both at once, and RevokeCard forgets both.
type cardKey struct {
	byHash bool
	v      string
}

// maxCachedCards bounds Service.cards; past it, it starts again empty.
const maxCachedCards = 100_000

// card returns the agent card whose number has hash (or, with hash "",
// card id), as the last revocation committed left it: from memory once
// read, on a store only this process writes (SQLite), where a card changes
// only when RevokeCard revokes it, which forgets it once committed; from
// the store on a shared one (PostgreSQL), where another process may
// revoke it.
func (s *Service) card(ctx context.Context, hash, id string) (*pb.AgentCard, error) {
	read := func() (*pb.AgentCard, error) {
		if hash != "" {
			return s.st.AgentCardByHash(ctx, hash)
		}
		return s.st.AgentCard(ctx, id)
	}
	if s.shared {
		return read()
	}
	k := cardKey{v: id}
	if hash != "" {
		k = cardKey{byHash: true, v: hash}
	}
	found, gen, ok := s.cards.Get(k)
	if ok {
		return &found, nil
	}
	card, err := read()
	if err != nil {
		return nil, err
	}
	s.cards.Keep(gen, *card, cardKey{byHash: true, v: card.NumberHash}, cardKey{v: card.ID})
	return card, nil
}
