// Package x402pay is Paybound's x402 v2 facilitator: it verifies the
// authorizations agents sign in Paybound's exact and upto schemes
// (x402/wire) and settles each as a payment of the payments core, made as
// the agent under its mandate, so that every mandate, confirmation and
// risk rule applies. Its routes are x402's facilitator API: POST
// /x402/verify, POST /x402/settle, GET /x402/supported.
//
// An authorization pays at most once. Its nonce is spent (AgentKeyPart's
// nonces, remembered past the authorization's validity window) in the
// payment's own ledger operation, and the settlement is stored as the
// outcome of an idempotency key (the payment-identifier extension's id, or
// else the nonce), so that a settle that is retried, or sent fifty times at
// once, answers the one settlement that happened.
package x402pay

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/x402/wire"
)

// Core is what the facilitator needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// CreatePayment makes a payment (its Within runs in the same operation).
	CreatePayment(ctx context.Context, caller pb.Principal, idem *service.Idempotency, params service.CreatePaymentParams) service.Result
	// Capture captures amount of a tab's hold; Cancel releases it.
	Capture(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, amount *int64) service.Result
	Cancel(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result
	// SigningKey returns the key keyid and its agent (ID and user), as of
	// the last change this process committed, or the store's
	// (service.SigningKey).
	SigningKey(ctx context.Context, keyid string) (*pb.Agent, *pb.AgentKey, error)
}

// Store is what the facilitator reads: its tabs and agents (a key is the
// core's: Core.SigningKey).
type Store interface {
	pb.X402Store
	Agent(ctx context.Context, id string) (*pb.Agent, error)
}

// Config is the facilitator's configuration.
type Config struct {
	// Network is the instance's CAIP-2 network, "paybound:<instance>".
	Network string
	// Skew is the clock difference allowed at either end of an
	// authorization's window (default 5 s).
	Skew time.Duration
	// SettleWait bounds how long a settle waits for a concurrent settle of
	// the same authorization to finish before answering settlement_pending
	// (default 10 s).
	SettleWait time.Duration
	// TabLifetime is how long a tab's deposit is held (default 1 h, at
	// most 7 days): a tab not claimed by then is released whole.
	TabLifetime time.Duration
	// TabCloseGrace is how long after its payer closes a tab its seller
	// may still claim it (default 1 min).
	TabCloseGrace time.Duration
	Clock         pb.Clock
	Logger        *slog.Logger
	// Delegate, when set, is the public key of this server's delegation
	// key: it verifies delegated authorizations (wire.DelegatedPrefix),
	// which the server's MCP tool signs for an agent it authenticated.
	// Such a payment is made as that agent under its mandate, as any
	// other, but not as a signed one (a mandate that requires signatures
	// declines it). Nil refuses them.
	Delegate ed25519.PublicKey
}

// Service is the facilitator. Safe for concurrent use.
type Service struct {
	core Core
	st   Store
	cfg  Config
	stop chan struct{}
	wg   sync.WaitGroup

	// verified remembers the signatures that verified (see
	// verifySignature), until their authorizations expire.
	cacheMu  sync.Mutex
	verified map[[32]byte]time.Time
}

// maxCache bounds verified; past it, it starts over after dropping the
// expired ones.
const maxCache = 100_000

// New returns the facilitator over core and st. It refuses a network that
// is not "paybound:<instance>".
func New(core Core, st Store, cfg Config) (*Service, error) {
	if !wire.ValidNetwork(cfg.Network) {
		return nil, fmt.Errorf("x402pay: network %q must be paybound:<instance>, the instance 1-32 letters, digits, '-' or '_'", cfg.Network)
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 5 * time.Second
	}
	if cfg.SettleWait <= 0 {
		cfg.SettleWait = 10 * time.Second
	}
	if cfg.TabLifetime <= 0 {
		cfg.TabLifetime = time.Hour
	}
	if cfg.TabLifetime > 7*24*time.Hour {
		return nil, fmt.Errorf("x402pay: a tab's lifetime is at most 7 days, not %s", cfg.TabLifetime)
	}
	if cfg.TabCloseGrace <= 0 {
		cfg.TabCloseGrace = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{core: core, st: st, cfg: cfg, stop: make(chan struct{})}, nil
}

// Network is the facilitator's network.
func (s *Service) Network() string { return s.cfg.Network }

// Supported lists what the facilitator settles.
func (s *Service) Supported() wire.SupportedResponse {
	return wire.SupportedResponse{
		Kinds: []wire.SupportedKind{
			{X402Version: wire.Version, Scheme: wire.SchemeExact, Network: s.cfg.Network},
			{X402Version: wire.Version, Scheme: wire.SchemeUpto, Network: s.cfg.Network},
			{X402Version: wire.Version, Scheme: wire.SchemeBatch, Network: s.cfg.Network},
		},
		Extensions: []string{wire.ExtensionPaymentIdentifier},
		Signers:    map[string][]string{s.cfg.Network: {}},
	}
}

// refusal is a reason x402 names and the message that explains it.
type refusal struct {
	reason, msg string
}

func (r *refusal) Error() string { return r.reason + ": " + r.msg }

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// checked is a request that verified: the authorization, the agent who
// signed it, and the amounts in minor units.
type checked struct {
	auth     *wire.SignedAuthorization
	agent    *pb.Agent
	scheme   string
	max      int64 // the authorization's value, atomic units
	settle   int64 // what the requirements ask, atomic units (≤ max)
	minor    int64 // settle in the ledger's minor units
	validTil time.Time
	pid      string
	signed   bool              // by the agent's own key (not delegated)
	tab      string            // batch-settlement: the tab the deposit opens
	key      ed25519.PublicKey // batch-settlement: the key that signs its vouchers
}

// check verifies req as of now: the protocol's version, scheme and
// network; that the payload accepted these requirements and that its
// authorization matches them (payee, asset, amount: equal for exact, at
// most the authorization's for upto); the window; and the signature by an
// agent key in force. It returns a *refusal for anything the client must
// fix, or an error for a failed read.
func (s *Service) check(ctx context.Context, req *wire.FacilitatorRequest) (*checked, error) {
	pl, rq := &req.PaymentPayload, &req.PaymentRequirements
	if req.X402Version != wire.Version || pl.X402Version != wire.Version {
		return nil, refuse(wire.ReasonInvalidVersion, "Paybound's facilitator speaks x402 version %d", wire.Version)
	}
	if rq.Scheme != wire.SchemeExact && rq.Scheme != wire.SchemeUpto && rq.Scheme != wire.SchemeBatch {
		return nil, refuse(wire.ReasonUnsupportedScheme, "scheme %q is not settled here (exact, upto, batch-settlement)", rq.Scheme)
	}
	if rq.Network != s.cfg.Network {
		return nil, refuse(wire.ReasonInvalidNetwork, "this facilitator settles on %s, not %q", s.cfg.Network, rq.Network)
	}
	a := pl.Accepted
	if a.Scheme != rq.Scheme || a.Network != rq.Network || a.Asset != rq.Asset || a.PayTo != rq.PayTo {
		return nil, refuse(wire.ReasonInvalidRequirements, "the payload accepted other requirements (scheme, network, asset, payTo) than these")
	}
	if rq.Scheme == wire.SchemeExact && a.Amount != rq.Amount {
		return nil, refuse(wire.ReasonValueMismatch, "the payload accepted amount %q, the requirements ask %q", a.Amount, rq.Amount)
	}
	if err := pb.ValidateCurrency(rq.Asset, "asset"); err != nil {
		return nil, refuse(wire.ReasonInvalidRequirements, "asset %q is not an ISO 4217 currency code", rq.Asset)
	}
	if !pb.HasPrefix(rq.PayTo, pb.PrefixMerchant) || len(rq.PayTo) > 100 {
		return nil, refuse(wire.ReasonInvalidRequirements, "payTo must be a Paybound merchant ID (mch_…)")
	}
	want, err := wire.ParseAtomic(rq.Amount)
	if err != nil {
		return nil, refuse(wire.ReasonInvalidRequirements, "%v", err)
	}
	pid, err := pl.PaymentIdentifier()
	if err != nil {
		return nil, refuse(wire.ReasonInvalidPayload, "%v", err)
	}
	var sa *wire.SignedAuthorization
	var tp *wire.TabPayload
	if rq.Scheme == wire.SchemeBatch {
		if tp, err = wire.ParseTabPayload(pl.Payload); err != nil {
			return nil, refuse(wire.ReasonInvalidPayload, "%v", err)
		}
		if tp.Type != wire.TabDeposit {
			return nil, refuse(wire.ReasonInvalidPayload, "a tab's vouchers are checked by its seller; the facilitator settles deposits")
		}
		sa = tp.Deposit
		want, _ = wire.ParseAtomic(sa.Authorization.Value) // the deposit, not the price
	} else if sa, err = wire.ParseSignedAuthorization(pl.Payload); err != nil {
		return nil, refuse(wire.ReasonInvalidPayload, "%v", err)
	}
	au := &sa.Authorization
	if au.To != rq.PayTo {
		return nil, refuse(wire.ReasonRecipientMismatch, "the authorization pays %s, the requirements %s", au.To, rq.PayTo)
	}
	if au.Asset != rq.Asset {
		return nil, refuse(wire.ReasonInvalidPayload, "the authorization is in %s, the requirements in %s", au.Asset, rq.Asset)
	}
	if pl.Resource != nil && pl.Resource.URL != au.Resource {
		return nil, refuse(wire.ReasonInvalidPayload, "the authorization is for %s, the payload for %s", au.Resource, pl.Resource.URL)
	}
	max, _ := wire.ParseAtomic(au.Value)
	switch {
	case rq.Scheme == wire.SchemeExact && max != want:
		return nil, refuse(wire.ReasonValueMismatch, "the authorization is for %d atomic units, the requirements ask %d", max, want)
	case want > max:
		return nil, refuse(wire.ReasonValueMismatch, "the settlement asks %d atomic units, the authorization allows at most %d", want, max)
	case rq.Scheme != wire.SchemeUpto && want == 0:
		return nil, refuse(wire.ReasonInvalidRequirements, "an exact payment or a deposit is of a positive amount")
	}
	minor, rem, err := wire.MinorUnits(want, rq.Asset)
	if err != nil {
		return nil, refuse(wire.ReasonInvalidRequirements, "%v", err)
	}
	if rem != 0 {
		return nil, refuse(wire.ReasonInvalidRequirements, "%d atomic units is not a whole number of %s's minor units; a price below the minor unit is paid through a tab", want, rq.Asset)
	}
	if minor > pb.MaxAmount {
		return nil, refuse(wire.ReasonInvalidRequirements, "the amount is above Paybound's limit")
	}
	now := s.cfg.Clock.Now()
	after, before, _ := au.Window()
	if now.Add(s.cfg.Skew).Before(after) {
		return nil, refuse(wire.ReasonValidAfter, "the authorization is valid from %s", after.UTC().Format(time.RFC3339))
	}
	if !now.Add(-s.cfg.Skew).Before(before) {
		return nil, refuse(wire.ReasonValidBefore, "the authorization expired at %s", before.UTC().Format(time.RFC3339))
	}
	agent, pub, err := s.agentKey(ctx, au.From, now)
	if err != nil {
		return nil, err
	}
	_, delegated := wire.DelegatedAgent(au.From)
	if delegated && tp != nil {
		return nil, refuse(wire.ReasonInvalidPayload, "a delegated authorization pays exact and upto requirements, not tabs")
	}
	if err := s.verifySignature(sa, pub, rq.Scheme, rq.Network, now, before.Add(s.cfg.Skew)); err != nil {
		return nil, refuse(wire.ReasonInvalidSignature, "%v", err)
	}
	c := &checked{auth: sa, agent: agent, scheme: rq.Scheme, max: max, settle: want, minor: minor, validTil: before, pid: pid, signed: !delegated}
	if tp != nil {
		c.tab = wire.TabID(au.From, au.Nonce)
		c.key = pub
		if tp.Voucher.ChannelID != c.tab {
			return nil, refuse(wire.ReasonInvalidPayload, "the deposit's voucher is for %q; this deposit opens %s", tp.Voucher.ChannelID, c.tab)
		}
		if tp.Voucher.Index > wire.MaxSteps {
			return nil, refuse(wire.ReasonInvalidPayload, "the deposit's voucher moves %d steps; a request's voucher moves at most %d", tp.Voucher.Index, wire.MaxSteps)
		}
		if n, err := tp.Voucher.Verify(pub); err != nil {
			return nil, refuse(wire.ReasonVoucherSignature, "%v", err)
		} else if n > want {
			return nil, refuse(wire.ReasonTabExhausted, "the first voucher (%d) is above the deposit (%d)", n, want)
		}
	}
	return c, nil
}

// agentKey returns the agent whose key has thumbprint keyid, in force at now.
// A delegated From names the agent, and the key is the server's Delegate.
func (s *Service) agentKey(ctx context.Context, keyid string, now time.Time) (*pb.Agent, []byte, error) {
	if id, ok := wire.DelegatedAgent(keyid); ok {
		if s.cfg.Delegate == nil {
			return nil, nil, refuse(wire.ReasonInvalidSignature, "this facilitator accepts no delegated authorizations")
		}
		a, err := s.st.Agent(ctx, id)
		if pb.ErrorCode(err) == pb.ErrNotFound {
			return nil, nil, refuse(wire.ReasonInvalidSignature, "no agent %q", id)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't look up agent %s: %w", id, err)
		}
		return a, s.cfg.Delegate, nil
	}
	a, k, err := s.core.SigningKey(ctx, keyid) // as of the last change: see Core
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil, refuse(wire.ReasonInvalidSignature, "no agent has the key %q", keyid)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't look up the agent key: %w", err)
	}
	return validKey(a, k, now)
}

// validKey returns a and k's public key if k may sign at now.
func validKey(a *pb.Agent, k *pb.AgentKey, now time.Time) (*pb.Agent, []byte, error) {
	if !k.ValidAt(now) {
		return nil, nil, refuse(wire.ReasonInvalidSignature, "the key %q was revoked or rotated out", k.KeyID)
	}
	pub, err := k.Ed25519()
	if err != nil {
		return nil, nil, fmt.Errorf("agent %s has an unreadable key: %w", a.ID, err)
	}
	return a, pub, nil
}

// verifySignature checks sa's signature by pub, remembering until the
// authorization's end (until) the signatures that verified: Ed25519's
// verdict on the same key, signing input and signature is the same, so a
// /settle after its /verify costs no second verification.
func (s *Service) verifySignature(sa *wire.SignedAuthorization, pub ed25519.PublicKey, scheme, network string, now, until time.Time) error {
	in, err := sa.Authorization.SigningInput(scheme, network)
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write(pub)
	fmt.Fprintf(h, "\n%d\n", len(in))
	h.Write(in)
	h.Write([]byte(sa.Signature))
	var id [32]byte
	h.Sum(id[:0])
	s.cacheMu.Lock()
	exp, ok := s.verified[id]
	s.cacheMu.Unlock()
	if ok && now.Before(exp) {
		return nil
	}
	if err := sa.Verify(pub, scheme, network); err != nil {
		return err
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if len(s.verified) >= maxCache {
		for k, exp := range s.verified {
			if !now.Before(exp) {
				delete(s.verified, k)
			}
		}
	}
	if len(s.verified) >= maxCache || s.verified == nil {
		s.verified = map[[32]byte]time.Time{}
	}
	s.verified[id] = until
	return nil
}

// Verify answers x402's /verify: whether req's payment would be accepted
// for settlement as far as can be told without settling (the mandate,
// funds and risk are the settlement's to decide). It changes nothing.
func (s *Service) Verify(ctx context.Context, req *wire.FacilitatorRequest) (wire.VerifyResponse, error) {
	c, err := s.check(ctx, req)
	var r *refusal
	if errors.As(err, &r) {
		return wire.VerifyResponse{IsValid: false, InvalidReason: r.reason, Payer: payerOf(req)}, nil
	}
	if err != nil {
		return wire.VerifyResponse{}, err
	}
	return wire.VerifyResponse{IsValid: true, Payer: c.auth.Authorization.From}, nil
}

func payerOf(req *wire.FacilitatorRequest) string {
	var p struct {
		Authorization struct {
			From string `json:"from"`
		} `json:"authorization"`
	}
	if json.Unmarshal(req.PaymentPayload.Payload, &p) != nil || len(p.Authorization.From) > 100 {
		return ""
	}
	return p.Authorization.From
}

// Settle answers x402's /settle: it settles req's authorization as a
// payment of the requirements' amount to payTo, captured at once, made as
// the agent under the authorization's mandate (upto: the amount asked at
// settlement, at most the authorized value; 0 spends the authorization and
// pays nothing). A payment that would wait for the user's confirmation is
// refused (payment_requires_confirmation) and undone; a declined one is
// recorded and answered with its decline (insufficient_funds, or
// payment_declined with the code). The outcome is stored under the
// settlement's idempotency key in the payment's own commit: the same
// request answers the same settlement, however often and however
// concurrently it is sent; a settle that waited SettleWait for a
// concurrent one answers settlement_pending (retry: it is not a refusal).
// An error is a failure to read or write, not an answer.
func (s *Service) Settle(ctx context.Context, req *wire.FacilitatorRequest) (wire.SettlementResponse, error) {
	c, err := s.check(ctx, req)
	var r *refusal
	if errors.As(err, &r) {
		return s.failed(payerOf(req), r.reason, ""), nil
	}
	if err != nil {
		return wire.SettlementResponse{}, err
	}
	deadline := s.cfg.Clock.Now().Add(s.cfg.SettleWait)
	for {
		idem := s.idem(c, req)
		res := s.settle(ctx, c, idem)
		if res.Replayed {
			var out wire.SettlementResponse
			if err := json.Unmarshal(idem.Body, &out); err != nil {
				return wire.SettlementResponse{}, fmt.Errorf("couldn't read the stored settlement: %w", err)
			}
			return out, nil
		}
		switch pb.ErrorCode(res.Err) {
		case pb.ErrIdempotencyRunning:
			if !s.cfg.Clock.Now().Before(deadline) {
				return s.failed(c.auth.Authorization.From, wire.ReasonSettlementPending, ""), nil
			}
			select {
			case <-ctx.Done():
				return wire.SettlementResponse{}, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			continue
		case pb.ErrIdempotencyConflict:
			return s.failed(c.auth.Authorization.From, wire.ReasonPaymentIDConflict, ""), nil
		}
		if out, ok := s.outcome(c, res.Value, res.Err); ok {
			return out, nil
		}
		return wire.SettlementResponse{}, res.Err
	}
}

// idem is the settlement's idempotency key: per paying key, the payment
// identifier or else the nonce; its hash covers the signed authorization
// and the amount settled, so another payload under the same key conflicts.
func (s *Service) idem(c *checked, req *wire.FacilitatorRequest) *service.Idempotency {
	key := "nonce:" + c.auth.Authorization.Nonce
	if c.pid != "" {
		key = "pid:" + c.pid
	}
	idem := &service.Idempotency{Caller: "x402:" + c.auth.Authorization.From, Key: key}
	h := sha256.New()
	fmt.Fprintf(h, "x402 settle\n%s\n%d\n", c.auth.Digest(c.scheme, req.PaymentRequirements.Network), c.settle)
	copy(idem.Hash[:], h.Sum(nil))
	idem.Render = func(v any, err error) (int, []byte) {
		out, ok := s.outcome(c, v, err)
		if !ok {
			out = s.failed(c.auth.Authorization.From, wire.ReasonUnexpectedSettle, "")
		}
		b, _ := json.Marshal(out)
		return 200, b
	}
	return idem
}

// settle runs the settlement in the ledger writer under idem.
func (s *Service) settle(ctx context.Context, c *checked, idem *service.Idempotency) service.Result {
	au := &c.auth.Authorization
	spend := func(tx *ledger.Tx) error {
		err := tx.UseNonce(pb.Nonce{KeyID: au.From, Nonce: pb.NoncePrefixX402 + au.Nonce, Expires: c.validTil.Add(s.cfg.Skew)})
		if errors.Is(err, ledger.ErrNonceUsed) {
			return pb.Errorf(pb.ErrX402AuthorizationUsed, "", "this authorization (nonce %s) was settled before; it pays once", au.Nonce)
		}
		return err
	}
	if c.tab != "" {
		return s.openTab(ctx, c, idem)
	}
	if c.minor == 0 { // upto, nothing used: the authorization is spent, nothing paid
		return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) { return nil, spend(tx) })
	}
	caller := pb.Principal{Role: pb.RoleAgent, ID: c.agent.ID, UserID: c.agent.UserID, Signed: c.signed}
	params := service.CreatePaymentParams{Amount: c.minor, Currency: au.Asset, MerchantID: au.To,
		Description: "x402 " + c.scheme + ": " + truncate(au.Resource, 400), MandateID: au.Mandate,
		CaptureMethod: pb.CaptureAutomatic, Metadata: map[string]string{pb.MetadataX402Nonce: au.Nonce},
		Within: func(tx *ledger.Tx, p *pb.Payment) error {
			if p.Status == pb.StatusRequiresConfirmation {
				return pb.Errorf(pb.ErrX402ConfirmationRequired, "", "this payment needs the user's confirmation under mandate %s, and no one is there to confirm during an x402 request; it was not made", au.Mandate)
			}
			return spend(tx)
		}}
	return s.core.CreatePayment(ctx, caller, idem, params)
}

// outcome is the settlement response for CreatePayment's (or the spend's)
// result; ok is false for an error that is not an answer (a failed write).
func (s *Service) outcome(c *checked, v any, err error) (wire.SettlementResponse, bool) {
	payer := c.auth.Authorization.From
	p, _ := v.(*pb.Payment)
	switch {
	case err == nil && p != nil:
		out := wire.SettlementResponse{Success: true, Payer: payer, Transaction: p.ID, Network: s.cfg.Network,
			Amount: strconv.FormatInt(c.settle, 10)}
		if c.tab != "" {
			out.Extensions = tabExtension(c, p)
		}
		return out, true
	case err == nil:
		return wire.SettlementResponse{Success: true, Payer: payer, Network: s.cfg.Network, Amount: "0"}, true
	}
	code := pb.ErrorCode(err)
	switch {
	case code == pb.DeclineInsufficientFunds:
		return s.failed(payer, wire.ReasonInsufficientFunds, paymentID(p)), true
	case code == pb.ErrX402ConfirmationRequired:
		return s.failed(payer, wire.ReasonRequiresConfirmation, ""), true
	case code == pb.ErrX402AuthorizationUsed:
		return s.failed(payer, wire.ReasonAuthorizationUsed, ""), true
	case code.Type() == pb.TypeDeclined:
		return s.failed(payer, wire.ReasonPaymentDeclined+":"+string(code), paymentID(p)), true
	case code.Type() != pb.TypeInternal && code != "":
		return s.failed(payer, wire.ReasonInvalidPayload+":"+string(code), ""), true
	}
	return wire.SettlementResponse{}, false
}

func paymentID(p *pb.Payment) string {
	if p == nil {
		return ""
	}
	return p.ID
}

// failed is a failed settlement's response. transaction names a declined
// payment, which exists.
func (s *Service) failed(payer, reason, transaction string) wire.SettlementResponse {
	return wire.SettlementResponse{Success: false, ErrorReason: reason, Payer: payer, Transaction: transaction, Network: s.cfg.Network}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
