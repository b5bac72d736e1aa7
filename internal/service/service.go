// Package service holds Paybound's operations as the API offers them:
// identities, top-ups, payments, captures, cancels, refunds, balances. Every
// change goes through the ledger writer, so each operation's money movement,
// domain rows and idempotency record commit together or not at all.
package service

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	Store  pb.Store
	Ledger *ledger.Writer
	Clock  pb.Clock     // default: wall clock
	Logger *slog.Logger // default: discard
	// OperatorKey is the operator's bearer secret (from <data>/operator.key).
	OperatorKey string
	// FeeBPS is the platform fee in basis points of each captured amount
	// (default 0: no fee). Fees are rounded down to the minor unit.
	FeeBPS int64
	// SweepInterval is how often expired holds are released and old
	// idempotency keys removed (default 1s).
	SweepInterval time.Duration
	// IdempotencyRetention is how long keys are kept, at least 24h (default 24h).
	IdempotencyRetention time.Duration
	// Mandates is the policy of payments under a mandate
	// (mandates.NewPolicy()), required: its checks, its budget reserved and
	// given back.
	Mandates MandatePolicy
	// Risk is risk control (riskctl.NewControl(…)), required: it assesses
	// every payment attempt before the writer.
	Risk RiskControl
	// Sandbox turns on the sandbox funding rail: users top their own
	// wallets up with any amount (POST /v1/topups). Off, wallets are funded
	// only by the operator (Fund), each funding logged and bounded.
	Sandbox bool
}

// Service is safe for concurrent use.
type Service struct {
	cfg      Config
	st       pb.Store
	led      *ledger.Writer
	clock    pb.Clock
	log      *slog.Logger
	opHash   [32]byte
	inflight sync.Map // caller+"\x00"+key → struct{}: idempotent requests now running

	keyMu     sync.RWMutex // guards keyCache and merchants
	keyCache  map[[32]byte]cachedKey
	merchants map[string]pb.Merchant // merchants known to exist

	aead cipher.AEAD // seals idempotency records that carry secrets

	agentKeys  Memo[string, cachedAgentKeys] // AgentKeys'
	keyOwners  sync.Map                      // keyid → *pb.Agent (ID, UserID): SigningKey's
	nKeyOwners atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup
}

// maxKeyCache bounds the principal and merchant caches; past it a cache
// starts over.
const maxKeyCache = 100_000

// keyCacheTTL is how long Authenticate trusts a key it looked up: a key
// whose agent was revoked on another process stops authenticating here
// within it (on this process, at once: ForgetPrincipal). Payments do not
// wait for it: revoking an agent revokes its keys and mandates in the
// store, which every payment reads.
const keyCacheTTL = 10 * time.Second

// cachedKey is a key's principal as Authenticate found it, and when.
type cachedKey struct {
	p  pb.Principal
	at time.Time
}

// New validates cfg and returns a Service; call Start to run its sweeper.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Ledger == nil {
		return nil, fmt.Errorf("service: Config.Store and Config.Ledger are required")
	}
	if cfg.Mandates == nil {
		return nil, fmt.Errorf("service: Config.Mandates is required: the policy of payments under a mandate")
	}
	if cfg.Risk == nil {
		return nil, fmt.Errorf("service: Config.Risk is required: risk control")
	}
	if len(cfg.OperatorKey) < 32 {
		return nil, fmt.Errorf("service: Config.OperatorKey must be at least 32 characters")
	}
	if cfg.FeeBPS < 0 || cfg.FeeBPS > 10_000 {
		return nil, fmt.Errorf("service: Config.FeeBPS is %d; it must be between 0 and 10000 basis points", cfg.FeeBPS)
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.IdempotencyRetention < pb.IdempotencyRetention {
		cfg.IdempotencyRetention = pb.IdempotencyRetention
	}
	sealKey, err := hkdf.Key(sha256.New, []byte(cfg.OperatorKey), nil, "paybound idempotency seal v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, st: cfg.Store, led: cfg.Ledger, clock: cfg.Clock, log: cfg.Logger, aead: aead,
		opHash: hashKey(cfg.OperatorKey), keyCache: map[[32]byte]cachedKey{}, merchants: map[string]pb.Merchant{},
		agentKeys: Memo[string, cachedAgentKeys]{Max: maxKeyCache}, stop: make(chan struct{})}, nil
}

// Start runs the sweeper until Close.
func (s *Service) Start() {
	s.wg.Add(1)
	go s.every(s.cfg.SweepInterval, "sweep", func(ctx context.Context) error {
		_, err := s.Sweep(ctx)
		return err
	})
}

// Close stops the sweeper. It does not close the ledger or the store.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Ready reports an error while the service cannot take writes.
func (s *Service) Ready() error { return s.led.Err() }

// Ledger returns the ledger writer (for benchmarks and tools).
func (s *Service) Ledger() *ledger.Writer { return s.led }

// Store returns the store.
func (s *Service) Store() pb.Store { return s.st }

// --- authentication ---

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewAPIKey returns a fresh bearer secret for role: "pbk_<role>_" and 256
// random bits.
func NewAPIKey(role pb.Role) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	short := map[pb.Role]string{pb.RoleOperator: "op", pb.RoleUser: "usr", pb.RoleMerchant: "mch", pb.RoleAgent: "agt"}[role]
	return "pbk_" + short + "_" + keyEncoding.EncodeToString(b[:])
}

// maxKeyLength bounds what Authenticate will hash.
const maxKeyLength = 200

var errUnauthenticated = &pb.Error{Code: pb.ErrUnauthenticated, Message: "invalid API key; send Authorization: Bearer <key>"}

// Authenticate returns the principal a bearer key belongs to. Keys are
// looked up by their SHA-256, so the comparison never sees the secret.
func (s *Service) Authenticate(ctx context.Context, key string) (pb.Principal, error) {
	if key == "" || len(key) > maxKeyLength || !strings.HasPrefix(key, "pbk_") {
		return pb.Principal{}, errUnauthenticated
	}
	h := hashKey(key)
	if subtle.ConstantTimeCompare(h[:], s.opHash[:]) == 1 {
		return pb.Principal{Role: pb.RoleOperator, ID: "operator"}, nil
	}
	now := s.clock.Now()
	s.keyMu.RLock()
	c, ok := s.keyCache[h]
	s.keyMu.RUnlock()
	if ok && now.Sub(c.at) < keyCacheTTL && !now.Before(c.at) {
		return c.p, nil
	}
	p, err := s.st.Principal(ctx, h)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return pb.Principal{}, errUnauthenticated
	}
	if err != nil {
		return pb.Principal{}, fmt.Errorf("couldn't look up API key: %w", err)
	}
	s.keyMu.Lock()
	if len(s.keyCache) >= maxKeyCache {
		s.keyCache = map[[32]byte]cachedKey{}
	}
	s.keyCache[h] = cachedKey{p, now}
	s.keyMu.Unlock()
	return p, nil
}

// ForgetPrincipal drops the keys of principal id that Authenticate
// remembers, so that the next request with one is looked up again (after
// the principal was revoked), and the signing keys AgentKeys remembers of
// it (after any change of them).
func (s *Service) ForgetPrincipal(id string) {
	s.keyMu.Lock()
	for h, c := range s.keyCache {
		if c.p.ID == id {
			delete(s.keyCache, h)
		}
	}
	s.keyMu.Unlock()
	s.agentKeys.Forget(id)
}

// --- idempotency ---

// Idempotency carries a request's Idempotency-Key through an operation.
type Idempotency = ledger.Idem

// MaxIdempotencyKeyLength bounds keys (ACP: 255).
const MaxIdempotencyKeyLength = 255

// run executes op through the ledger writer under idem's key (when idem is
// not nil): a second request with the key while the first runs gets 409, a
// later one with the same request hash gets the stored response, and one
// with another hash gets 422 (the writer looks the keys of a whole batch up
// at once). When replayed is true, idem.Status and idem.Body hold the stored
// response and op did not run.
func (s *Service) run(ctx context.Context, idem *Idempotency, op ledger.Op) (v any, replayed bool, err error) {
	if idem == nil {
		v, err = s.led.Do(ctx, nil, op)
		return v, false, err
	}
	slot := idem.Caller + "\x00" + idem.Key
	if _, busy := s.inflight.LoadOrStore(slot, struct{}{}); busy {
		return nil, false, pb.Errorf(pb.ErrIdempotencyRunning, "", "a request with this Idempotency-Key is still being processed; retry after it completes")
	}
	defer s.inflight.Delete(slot)
	v, err = s.led.Do(ctx, idem, op)
	return v, idem.Replayed, err
}

// Result is what an operation returns to the API: the value and error of a
// fresh run, or the stored response of a replay.
type Result struct {
	Value    any
	Err      error
	Replayed bool
}

// Run runs op in the ledger writer, as one operation of the next batch
// (under idem when set: the outcome is stored with the effect), and returns
// its Result once that batch has committed. A capability runs its
// operations through it, so they commit with the money they move.
func (s *Service) Run(ctx context.Context, idem *Idempotency, op ledger.Op) Result {
	return result(s.run(ctx, idem, op))
}

func result(v any, replayed bool, err error) Result {
	return Result{Value: v, Err: err, Replayed: replayed}
}

// --- the sweeper ---

// sweepBatch bounds the work of one sweep.
const sweepBatch = 500

// every runs fn each interval until Close (see Every).
func (s *Service) every(interval time.Duration, what string, fn func(ctx context.Context) error) {
	Every(s.stop, &s.wg, s.log, interval, what, fn)
}

// Every runs fn each interval until stop is closed, each run bounded to
// 30s; a failure is logged as what failed and tried again at the next
// tick. It is the background loop of the core and of every capability
// (their Start/Close): the caller has added 1 to wg, which Every marks
// done when it returns.
func Every(stop <-chan struct{}, wg *sync.WaitGroup, log *slog.Logger, interval time.Duration, what string, fn func(ctx context.Context) error) {
	defer wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := fn(ctx); err != nil {
				log.Warn(what+" failed", "err", err)
			}
			cancel()
		}
	}
}

// Sweep releases up to one batch of holds that have expired and drops
// idempotency keys past retention. It returns how many holds it expired.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.clock.Now()
	ids, err := s.st.ExpiredPayments(ctx, now, sweepBatch)
	if err != nil {
		return 0, fmt.Errorf("couldn't list expired holds: %w", err)
	}
	// One operation, so one commit, for the whole sweep.
	v, err := s.led.Submit(ctx, func(tx *ledger.Tx) (any, error) {
		n := 0
		for _, id := range ids {
			p, err := tx.Payment(id)
			if err != nil {
				return n, err
			}
			expired, err := s.ExpireIfDue(tx, &p)
			if err != nil {
				return n, fmt.Errorf("couldn't expire %s: %w", id, err)
			}
			if expired {
				n++
			}
		}
		return n, nil
	})
	n, _ := v.(int)
	if err != nil {
		return n, err
	}
	if _, err := s.st.DeleteNonces(ctx, now, 10*sweepBatch); err != nil {
		return n, fmt.Errorf("couldn't drop old nonces: %w", err)
	}
	if _, err := s.st.DeleteIdempotency(ctx, now.Add(-s.cfg.IdempotencyRetention), 10*sweepBatch); err != nil {
		return n, fmt.Errorf("couldn't drop old idempotency keys: %w", err)
	}
	return n, nil
}

func hashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// sealPrefix marks a stored body sealed with Seal.
const sealPrefix = "pbseal1:"

// Seal encrypts b (AES-256-GCM) with a key derived from the operator key,
// for idempotency records whose responses carry secrets (new API keys): the
// database then holds no usable key, yet a retry gets the same response.
// Every process of a deployment shares the operator key, so any can Open.
func (s *Service) Seal(b []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return append([]byte(sealPrefix), s.aead.Seal(nonce, nonce, b, nil)...)
}

// Open reverses Seal. A body sealed under another operator key cannot be
// opened.
func (s *Service) Open(b []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte(sealPrefix))
	n := s.aead.NonceSize()
	if !ok || len(rest) < n {
		return nil, errors.New("not a sealed body")
	}
	out, err := s.aead.Open(nil, rest[:n], rest[n:], nil)
	if err != nil {
		return nil, errors.New("sealed under another operator key")
	}
	return out, nil
}
