package service

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// walletFlags: a wallet can never go negative; neither can a merchant's
// account, so refunds never exceed what it received.
const walletFlags = pb.DebitsMustNotExceedCredits

// NewUser is the result of CreateUser: the user and its API key, shown once.
type NewUser struct {
	pb.User
	APIKey string `json:"api_key"`
}

// NewMerchant is the result of CreateMerchant.
type NewMerchant struct {
	pb.Merchant
	APIKey string `json:"api_key"`
}

// NewAgent is the result of CreateAgent.
type NewAgent struct {
	pb.Agent
	APIKey string `json:"api_key"`
}

func validName(name, param string, max int) error {
	if strings.TrimSpace(name) == "" {
		return pb.Errorf(pb.ErrParameterMissing, param, "%s is required", param)
	}
	if len(name) > max || !utf8.ValidString(name) {
		return pb.Errorf(pb.ErrParameterInvalid, param, "%s must be valid UTF-8 of at most %d bytes", param, max)
	}
	return nil
}

// RequireRole refuses a caller whose role is none of roles, naming the
// key the call needs.
func RequireRole(p pb.Principal, roles ...pb.Role) error {
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return pb.Errorf(pb.ErrForbidden, "", "this call needs %s key; you sent %s key", article(strings.Join(names, " or ")), article(string(p.Role)))
}

// article prefixes a role name with "a" or "an".
func article(role string) string {
	if role != "" && strings.ContainsRune("aeiou", rune(role[0])) {
		return "an " + role
	}
	return "a " + role
}

func (s *Service) newKey(tx *ledger.Tx, role pb.Role, id, userID string) string {
	key := NewAPIKey(role)
	tx.AddAPIKey(pb.APIKey{Hash: hashKey(key), Principal: pb.Principal{Role: role, ID: id, UserID: userID}, CreatedAt: tx.Now()})
	return key
}

// CreateUser (operator) creates a user with an API key.
func (s *Service) CreateUser(ctx context.Context, caller pb.Principal, idem *Idempotency, name string) Result {
	if err := RequireRole(caller, pb.RoleOperator); err != nil {
		return Result{Err: err}
	}
	if err := validName(name, "name", pb.MaxNameLength); err != nil {
		return Result{Err: err}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		now := tx.Now().Truncate(time.Second)
		u := pb.User{ID: pb.NewID(pb.PrefixUser, tx.Now()), Name: name, CreatedAt: now}
		tx.AddUser(u)
		return &NewUser{User: u, APIKey: s.newKey(tx, pb.RoleUser, u.ID, u.ID)}, nil
	}))
}

// CreateMerchant (operator) creates a merchant with an API key.
func (s *Service) CreateMerchant(ctx context.Context, caller pb.Principal, idem *Idempotency, name, category string) Result {
	if err := RequireRole(caller, pb.RoleOperator); err != nil {
		return Result{Err: err}
	}
	if err := validName(name, "name", pb.MaxNameLength); err != nil {
		return Result{Err: err}
	}
	if category == "" {
		category = "general"
	}
	if err := validName(category, "category", pb.MaxCategoryLength); err != nil {
		return Result{Err: err}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		now := tx.Now().Truncate(time.Second)
		m := pb.Merchant{ID: pb.NewID(pb.PrefixMerchant, tx.Now()), Name: name, Category: category, CreatedAt: now}
		tx.AddMerchant(m)
		return &NewMerchant{Merchant: m, APIKey: s.newKey(tx, pb.RoleMerchant, m.ID, "")}, nil
	}))
}

// CreateAgent (user) registers an agent acting for the caller. publicKey,
// when given, is an Ed25519 JWK; the agent's keyid is its RFC 7638
// thumbprint.
func (s *Service) CreateAgent(ctx context.Context, caller pb.Principal, idem *Idempotency, name string, publicKey []byte) Result {
	if err := RequireRole(caller, pb.RoleUser); err != nil {
		return Result{Err: err}
	}
	if err := validName(name, "name", pb.MaxNameLength); err != nil {
		return Result{Err: err}
	}
	var jwk, keyid string
	if len(publicKey) > 0 && string(publicKey) != "null" {
		var err error
		if jwk, keyid, err = pb.ParseEd25519JWK(publicKey); err != nil {
			return Result{Err: err}
		}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		now := tx.Now().Truncate(time.Second)
		a := pb.Agent{ID: pb.NewID(pb.PrefixAgent, tx.Now()), UserID: caller.ID, Name: name, PublicKey: jwk,
			KeyID: pb.OptString(keyid), CreatedAt: now}
		if keyid != "" {
			if taken, err := tx.HasAgentKey(keyid); err != nil || taken {
				return nil, cmp.Or[error](err, pb.Errorf(pb.ErrParameterInvalid, "public_key", "this key is already registered to an agent"))
			}
		}
		tx.AddAgent(a)
		if keyid != "" {
			k := pb.AgentKey{KeyID: keyid, AgentID: a.ID, PublicKey: jwk, CreatedAt: now}
			tx.AddAgentKey(k)
			LogKey(tx, caller, pb.LogAgentKeyAdded, k)
		}
		return &NewAgent{Agent: a, APIKey: s.newKey(tx, pb.RoleAgent, a.ID, caller.ID)}, nil
	}))
}

var errSandboxOff = pb.Errorf(pb.ErrSandboxOff, "", "the sandbox funding rail is off on this server: the operator funds wallets (POST /v1/users/{id}/fundings), or start the server with --sandbox for test money")

// Topup (user) funds the caller's wallet from the sandbox funding rail,
// when the server runs with it (Config.Sandbox).
func (s *Service) Topup(ctx context.Context, caller pb.Principal, idem *Idempotency, amount int64, currency string) Result {
	if err := RequireRole(caller, pb.RoleUser); err != nil {
		return Result{Err: err}
	}
	if !s.cfg.Sandbox {
		return Result{Err: errSandboxOff}
	}
	return s.credit(ctx, caller, idem, caller.ID, amount, currency, "")
}

// MaxFunding bounds one operator funding, in minor units (1,000,000.00 in
// a currency of exponent 2): a typo of a few digits is refused, not paid.
const MaxFunding = 100_000_000

// MaxReferenceLength bounds a funding's reference.
const MaxReferenceLength = 200

// Fund (operator) credits user userID's wallet with amount of currency from
// outside Paybound — what the funding rail of a real deployment (a bank
// transfer received, a card payment acquired) reports. reference names
// that external movement, for reconciliation; it is logged with the
// funding, in the transparency log and the server log.
func (s *Service) Fund(ctx context.Context, caller pb.Principal, idem *Idempotency, userID string, amount int64, currency, reference string) Result {
	if err := RequireRole(caller, pb.RoleOperator); err != nil {
		return Result{Err: err}
	}
	if amount > MaxFunding {
		return Result{Err: pb.Errorf(pb.ErrAmountTooLarge, "amount", "one funding is at most %d minor units; split a larger one", MaxFunding)}
	}
	if reference == "" || len(reference) > MaxReferenceLength || !utf8.ValidString(reference) || strings.ContainsFunc(reference, unicode.IsControl) {
		return Result{Err: pb.Errorf(pb.ErrParameterInvalid, "reference", "reference must name the external movement that funds the wallet, 1 to %d printable characters", MaxReferenceLength)}
	}
	if !pb.HasPrefix(userID, pb.PrefixUser) {
		return Result{Err: pb.Errorf(pb.ErrNotFound, "id", "no such user: %s", userID)}
	}
	if _, err := s.st.User(ctx, userID); pb.ErrorCode(err) == pb.ErrNotFound {
		return Result{Err: pb.Errorf(pb.ErrNotFound, "id", "no such user: %s", userID)}
	} else if err != nil {
		return Result{Err: fmt.Errorf("couldn't look up user: %w", err)}
	}
	r := s.credit(ctx, caller, idem, userID, amount, currency, reference)
	if t, ok := r.Value.(*pb.Topup); ok && r.Err == nil && !r.Replayed {
		s.log.Info("operator funded a wallet", "user", userID, "amount", amount, "currency", currency, "reference", reference, "topup", t.ID)
	}
	return r
}

// credit moves amount of currency from outside Paybound into user's wallet,
// as a top-up; reference is the operator's, empty for the sandbox rail.
func (s *Service) credit(ctx context.Context, caller pb.Principal, idem *Idempotency, user string, amount int64, currency, reference string) Result {
	if err := pb.ValidateAmount(amount, "amount"); err != nil {
		return Result{Err: err}
	}
	if err := pb.ValidateCurrency(currency, "currency"); err != nil {
		return Result{Err: err}
	}
	rail := "sandbox"
	if reference != "" {
		rail = "operator"
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		now := tx.Now().Truncate(time.Second)
		t := pb.Topup{ID: pb.NewID(pb.PrefixTopup, tx.Now()), Object: "topup", UserID: user, Amount: amount,
			Currency: currency, Status: "succeeded", CreatedAt: now}
		err := tx.Atomic(func() error {
			src, err := tx.EnsureAccount(pb.OwnerFunding, currency, 0)
			if err != nil {
				return err
			}
			dst, err := tx.EnsureAccount(user, currency, walletFlags)
			if err != nil {
				return err
			}
			s.Credited(user)
			_, err = tx.Transfer(src, dst, amount, t.ID)
			return err
		})
		if err != nil {
			return nil, err
		}
		LogRecord(tx, user, pb.ActorOf(caller), pb.LogWalletToppedUp, topupData{TopupID: t.ID, Amount: amount, Currency: currency,
			Rail: rail, Reference: reference})
		tx.AddTopup(t)
		return &t, nil
	}))
}

// Balances (user, merchant) lists the caller's balances, one per currency.
func (s *Service) Balances(ctx context.Context, caller pb.Principal) ([]pb.Balance, error) {
	if err := RequireRole(caller, pb.RoleUser, pb.RoleMerchant); err != nil {
		return nil, err
	}
	accts, err := s.st.AccountsByOwner(ctx, caller.ID)
	if err != nil {
		return nil, fmt.Errorf("couldn't read balances: %w", err)
	}
	out := make([]pb.Balance, 0, len(accts))
	for _, a := range accts {
		out = append(out, pb.Balance{Currency: a.Currency, Available: a.Available(), Pending: a.DebitsPending + a.CreditsPending})
	}
	return out, nil
}

// CreatePaymentParams is a payment request, validated by CreatePayment.
type CreatePaymentParams struct {
	Amount        int64
	Currency      string
	MerchantID    string
	Description   string
	MandateID     string
	CaptureMethod pb.CaptureMethod
	// AuthorizationExpiresAt, if not zero, replaces the default hold expiry.
	AuthorizationExpiresAt time.Time
	Metadata               map[string]string
	// PayeeProvenance and AmountProvenance are where the agent took the
	// payee and the amount from: pb.ProvenanceUser, ProvenanceUntrusted,
	// or ProvenanceUnknown ("" means unknown).
	PayeeProvenance, AmountProvenance string
	// Within, when set, runs in the payment's own operation once the
	// payment is decided (p as authorize left it: authorized, captured,
	// waiting for confirmation or declined), before p is put: a capability
	// that sells through a payment (a checkout session, a payment link)
	// writes its own rows here, in the same commit as the payment. If it
	// returns an error, the payment and everything the operation wrote are
	// undone and CreatePayment answers that error. It runs again on every
	// retry of a batch, so it must be a function of tx alone.
	Within func(tx *ledger.Tx, p *pb.Payment) error
}

func (s *Service) validatePayment(p *CreatePaymentParams) error {
	if err := pb.ValidateAmount(p.Amount, "amount"); err != nil {
		return err
	}
	if err := pb.ValidateCurrency(p.Currency, "currency"); err != nil {
		return err
	}
	if p.MerchantID == "" {
		return pb.Errorf(pb.ErrParameterMissing, "merchant_id", "merchant_id is required")
	}
	if len(p.MerchantID) > 100 || !strings.HasPrefix(p.MerchantID, pb.PrefixMerchant) {
		return pb.Errorf(pb.ErrParameterInvalid, "merchant_id", "merchant_id must be a merchant ID (mch_…)")
	}
	if len(p.Description) > pb.MaxDescriptionLength || !utf8.ValidString(p.Description) {
		return pb.Errorf(pb.ErrParameterInvalid, "description", "description must be valid UTF-8 of at most %d bytes", pb.MaxDescriptionLength)
	}
	if p.MandateID != "" && !pb.HasPrefix(p.MandateID, pb.PrefixMandate) {
		return pb.Errorf(pb.ErrParameterInvalid, "mandate_id", "mandate_id must be a mandate ID (mdt_…)")
	}
	switch p.CaptureMethod {
	case "":
		p.CaptureMethod = pb.CaptureAutomatic
	case pb.CaptureAutomatic, pb.CaptureManual:
	default:
		return pb.Errorf(pb.ErrParameterInvalid, "capture_method", "capture_method must be automatic or manual")
	}
	if len(p.Metadata) > pb.MaxMetadataKeys {
		return pb.Errorf(pb.ErrParameterInvalid, "metadata", "metadata has %d keys; at most %d are allowed", len(p.Metadata), pb.MaxMetadataKeys)
	}
	for k, v := range p.Metadata {
		if k == "" || len(k) > pb.MaxMetadataKeyLength || len(v) > pb.MaxMetadataValueLength || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return pb.Errorf(pb.ErrParameterInvalid, "metadata", "metadata keys must be 1-%d bytes and values at most %d bytes of UTF-8", pb.MaxMetadataKeyLength, pb.MaxMetadataValueLength)
		}
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	if err := validProvenance(p.PayeeProvenance, "provenance.payee"); err != nil {
		return err
	}
	if err := validProvenance(p.AmountProvenance, "provenance.amount"); err != nil {
		return err
	}
	if !p.AuthorizationExpiresAt.IsZero() {
		// Measured from the request's arrival; the hold's expiry is kept to
		// the second, rounded up so that it never lasts less than asked.
		arrived := s.clock.Now()
		exp := p.AuthorizationExpiresAt
		ttl := exp.Sub(arrived)
		if ttl < pb.MinAuthorizationTTL-pb.ExpirySkew || ttl > pb.MaxAuthorizationTTL {
			return pb.Errorf(pb.ErrParameterInvalid, "authorization_expires_at", "authorization_expires_at must be between %s and %s from now", pb.MinAuthorizationTTL, pb.MaxAuthorizationTTL)
		}
		if ttl < pb.MinAuthorizationTTL {
			exp = arrived.Add(pb.MinAuthorizationTTL)
		}
		if t := exp.Truncate(time.Second); t.Before(exp) {
			exp = t.Add(time.Second)
		}
		p.AuthorizationExpiresAt = exp
	}
	return nil
}

func decline(p *pb.Payment, code pb.Code, msg string) error {
	p.Status, p.DeclineCode, p.AuthorizationExpiresAt = pb.StatusDeclined, code, nil
	return &pb.Error{Code: code, Message: msg, PaymentID: p.ID}
}

// CreatePayment (user, agent) pays a merchant from the payer's wallet: a
// hold, captured at once unless CaptureMethod is manual. A payment that
// cannot be made (unknown merchant, no wallet in the currency, insufficient
// funds) is recorded as declined and returned with an error that carries
// its ID.
func (s *Service) CreatePayment(ctx context.Context, caller pb.Principal, idem *Idempotency, params CreatePaymentParams) Result {
	if err := RequireRole(caller, pb.RoleUser, pb.RoleAgent); err != nil {
		return Result{Err: err}
	}
	if err := s.validatePayment(&params); err != nil {
		return Result{Err: err}
	}
	if params.MandateID != "" && caller.Role != pb.RoleAgent {
		return Result{Err: pb.Errorf(pb.ErrParameterInvalid, "mandate_id", "mandate_id is for payments an agent makes under a mandate; a user pays without one")}
	}
	merchant, err := s.Merchant(ctx, params.MerchantID)
	if err != nil {
		return Result{Err: err}
	}
	payer, agent, assurance := caller.ID, "", pb.AssuranceUser
	if caller.Role == pb.RoleAgent {
		payer, agent, assurance = caller.UserID, caller.ID, pb.AssuranceBearer
		if caller.Signed {
			assurance = pb.AssuranceSigned
		}
	}
	if params.MandateID != "" && assurance != pb.AssuranceSigned {
		// A mandate that demands signed requests refuses a bearer key outright:
		// the request did not prove which agent sent it.
		m, err := s.st.Mandate(ctx, params.MandateID)
		if err == nil && m.RequireSignature {
			return Result{Err: pb.Errorf(pb.ErrSignatureRequired, "", "mandate %s accepts only signed agent requests (HTTP Message Signatures)", m.ID)}
		}
		if err != nil && pb.ErrorCode(err) != pb.ErrNotFound {
			return Result{Err: fmt.Errorf("couldn't look up mandate: %w", err)}
		}
	}
	var assessed *pb.Risk
	var token string
	if merchant != nil {
		if assessed, token, err = s.cfg.Risk.Assess(ctx, RiskAttempt{&params, merchant, payer, agent, string(assurance)}); err != nil {
			return Result{Err: err}
		}
	}
	create := func(tx *ledger.Tx) (any, error) {
		now := tx.Now().Truncate(time.Second)
		exp := now.Add(pb.DefaultAuthorizationTTL)
		if !params.AuthorizationExpiresAt.IsZero() {
			exp = params.AuthorizationExpiresAt.UTC().Truncate(time.Second)
		}
		p := pb.Payment{ID: pb.NewID(pb.PrefixPayment, tx.Now()), Object: "payment", Amount: params.Amount,
			Currency: params.Currency, MerchantID: params.MerchantID, PayerID: payer, AgentID: pb.OptString(agent),
			Description: params.Description, CaptureMethod: params.CaptureMethod, AuthorizationExpiresAt: &exp,
			Metadata: params.Metadata, MandateID: pb.OptString(params.MandateID), Assurance: assurance, Risk: assessed, CreatedAt: now}
		logCreated(tx, &p, caller)
		err := s.authorize(tx, &p, merchant, false)
		logOutcome(tx, &p, pb.ActorOf(caller), false, err)
		if params.Within != nil {
			if werr := params.Within(tx, &p); werr != nil {
				return nil, werr
			}
		}
		tx.PutPayment(p)
		return Shown(&p, caller), err
	}
	op := ledger.Op(create)
	if params.Within != nil {
		op = func(tx *ledger.Tx) (v any, err error) {
			var werr error
			if aerr := tx.Atomic(func() error {
				v, err = create(tx)
				if v == nil && err != nil {
					werr = err
				}
				return werr
			}); aerr != nil {
				return nil, aerr
			}
			return v, err
		}
	}
	v, replayed, err := s.run(ctx, idem, op)
	p, _ := v.(*pb.Payment)
	if replayed {
		p = nil // in the book already, as its first run left it
	}
	s.noteRisk(payer, p, token)
	return result(v, replayed, err)
}

// Merchant returns merchant id, or nil when there is none. Merchants are
// never deleted or changed, so found ones are cached.
func (s *Service) Merchant(ctx context.Context, id string) (*pb.Merchant, error) {
	s.keyMu.RLock()
	m, ok := s.merchants[id]
	s.keyMu.RUnlock()
	if ok {
		return &m, nil
	}
	found, err := s.st.Merchant(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't look up merchant: %w", err)
	}
	s.keyMu.Lock()
	if len(s.merchants) >= maxKeyCache {
		s.merchants = map[string]pb.Merchant{}
	}
	s.merchants[id] = *found
	s.keyMu.Unlock()
	return found, nil
}

// AuthorizeApproved places the hold of p, a payment waiting for
// confirmation that its user has just approved with their own factor,
// inside tx: the hold lasts as long as the agent asked, from now, and the
// payment becomes authorized (captured when its capture method is
// automatic); or, if the funds are gone meanwhile, or its mandate was
// revoked or expired or has too little budget left, it is declined, and
// the error says why: the user's approval answers for the amount, not for
// a mandate that no longer carries the payment. The outcome is logged as
// actor's; the caller has logged the approval itself before, and
// puts p after. merchant is p's merchant as Merchant returned it. Step-up
// (internal/confirm) approves payments with it.
func (s *Service) AuthorizeApproved(tx *ledger.Tx, p *pb.Payment, merchant *pb.Merchant, actor pb.Actor) error {
	if p.AuthorizationExpiresAt != nil {
		exp := tx.Now().Truncate(time.Second).Add(p.AuthorizationExpiresAt.Sub(p.CreatedAt))
		p.AuthorizationExpiresAt = &exp
	}
	err := s.authorize(tx, p, merchant, true)
	logOutcome(tx, p, actor, true, err)
	return err
}

// authorize places the hold for a new payment, and captures it when the
// payment's capture method is automatic, or declines it. An agent's payment
// that no mandate covers, or above its mandate's confirm_above, waits for
// the user instead (requires_confirmation), unless approved: the user has
// just confirmed it with their own factor.
func (s *Service) authorize(tx *ledger.Tx, p *pb.Payment, merchant *pb.Merchant, approved bool) error {
	if merchant == nil {
		return decline(p, pb.DeclineMerchantUnknown, "no merchant "+p.MerchantID+" exists")
	}
	mandate, err := s.checkMandate(tx, p, merchant, approved)
	if err != nil {
		return err
	}
	if !approved && p.Risk != nil && p.Risk.Decision == pb.RiskBlock {
		return decline(p, pb.DeclineRiskBlocked, s.cfg.Risk.Message(p.Risk))
	}
	wallet, err := tx.Account(p.PayerID, p.Currency)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return decline(p, pb.DeclineCurrencyMismatch, "the payer's wallet holds no "+p.Currency+"; top up in "+p.Currency+" first")
	}
	if err != nil {
		return err
	}
	if !approved && ((p.Risk != nil && p.Risk.Decision == pb.RiskReview) ||
		(p.AgentID != "" && (mandate == nil || mandate.NeedsConfirmation(p.Amount)))) {
		// Asking the user to confirm what the wallet cannot pay would
		// only delay the decline; like a hold, the decline is confirmed
		// against the stored balance first.
		ok, err := tx.HasFunds(wallet, p.Amount)
		if err != nil {
			return err
		}
		if !ok {
			return insufficient(p)
		}
		p.Status, p.Confirmation = pb.StatusRequiresConfirmation, pb.NewConfirmation(tx.Now())
		return nil
	}
	err = tx.Atomic(func() error {
		if mandate != nil {
			if err := s.cfg.Mandates.Reserve(tx, mandate, p); err != nil {
				return err
			}
		}
		merchant, err := tx.EnsureAccount(p.MerchantID, p.Currency, walletFlags)
		if err != nil {
			return err
		}
		if p.HoldID, err = tx.Hold(wallet, merchant, p.Amount, *p.AuthorizationExpiresAt, p.ID); err != nil {
			return err
		}
		p.Status = pb.StatusAuthorized
		if p.CaptureMethod == pb.CaptureAutomatic {
			return s.capture(tx, p, p.Amount)
		}
		return nil
	})
	if pb.ErrorCode(err) == pb.DeclineInsufficientFunds {
		p.HoldID = 0
		return insufficient(p)
	}
	if usageDecline(err) {
		// The checks passed on this writer's view, but the cap was reached
		// meanwhile (by this batch, or another process's).
		p.HoldID = 0
		code := s.cfg.Mandates.CapDecline(tx, mandate, p)
		return decline(p, code, s.cfg.Mandates.Message(code, mandate, p, tx.Now()))
	}
	return err
}

// checkMandate is the mandate's part of authorize. It returns nil without
// a mandate, else the mandate when it is the payer's, in force and (unless
// approved: the user confirmed the payment) its limits allow p; an in-force
// mandate is relied on at commit (RelyOnMandate). A refusal comes back as
// p's decline (see decline), for the caller to return as is; other errors
// are the store's.
func (s *Service) checkMandate(tx *ledger.Tx, p *pb.Payment, merchant *pb.Merchant, approved bool) (*pb.Mandate, error) {
	if p.MandateID == "" {
		return nil, nil
	}
	m, err := tx.Mandate(string(p.MandateID))
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && m.UserID != p.PayerID) {
		return nil, decline(p, pb.ErrMandateNotFound, "no mandate "+string(p.MandateID)+" exists for this agent's user")
	}
	if err != nil {
		return nil, err
	}
	code := m.InForce(tx.Now())
	if code == "" {
		// Whatever authorize decides next — a payment, a confirmation asked,
		// a decline for another limit — is decided on the mandate being
		// in force: with a shared store the commit confirms it, and the
		// payment is decided again if another process revoked it. (A
		// revocation seen here is final: revocations are never undone.)
		tx.RelyOnMandate(m.ID)
		if !approved {
			if code, err = s.cfg.Mandates.Check(tx, &m, p, merchant); err != nil {
				return nil, err
			}
		}
	}
	if code != "" {
		return nil, decline(p, code, s.cfg.Mandates.Message(code, &m, p, tx.Now()))
	}
	return &m, nil
}

func insufficient(p *pb.Payment) error {
	return decline(p, pb.DeclineInsufficientFunds, fmt.Sprintf("the wallet's available %s balance is below %s",
		p.Currency, pb.FormatAmount(p.Amount, p.Currency)))
}

// capture posts amount of p's hold and takes the platform fee, as one
// linked transfer set; the caller wraps it in Atomic.
func (s *Service) capture(tx *ledger.Tx, p *pb.Payment, amount int64) error {
	if _, err := tx.Post(p.HoldID, amount, p.ID); err != nil {
		return err
	}
	fee := mulDiv(amount, s.cfg.FeeBPS, 10_000)
	if fee > 0 {
		merchant, err := tx.Account(p.MerchantID, p.Currency)
		if err != nil {
			return err
		}
		platform, err := tx.EnsureAccount(pb.OwnerPlatform, p.Currency, walletFlags)
		if err != nil {
			return err
		}
		if _, err := tx.Transfer(merchant, platform, fee, p.ID); err != nil {
			return err
		}
	}
	p.Status, p.AmountCaptured, p.FeeAmount = pb.StatusCaptured, amount, fee
	return nil
}

// mulDiv returns a*b/c rounded down, for non-negative values whose product
// may exceed int64 (amounts up to 10^15 times counts up to 10^15).
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// payment loads id for caller inside the writer; a payment the caller is no
// party to is reported as missing, so its existence does not leak.
func party(p *pb.Payment, c pb.Principal) bool {
	switch c.Role {
	case pb.RoleOperator:
		return true
	case pb.RoleUser:
		return p.PayerID == c.ID
	case pb.RoleAgent:
		return string(p.AgentID) == c.ID
	case pb.RoleMerchant:
		return p.MerchantID == c.ID
	}
	return false
}

func noPayment(id string) error {
	return pb.Errorf(pb.ErrNotFound, "id", "no such payment: %s", id)
}

func (s *Service) loadForUpdate(tx *ledger.Tx, caller pb.Principal, id string) (pb.Payment, error) {
	if !pb.HasPrefix(id, pb.PrefixPayment) {
		return pb.Payment{}, noPayment(id)
	}
	p, err := tx.Payment(id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !party(&p, caller)) {
		return p, noPayment(id)
	}
	return p, err
}

// ExpireIfDue releases p's hold and marks it expired when its authorization
// has run out, or marks it expired when its confirmation has, inside tx; it
// reports whether it did, and puts p when it did. The sweeper expires
// payments with it, and so does step-up (internal/confirm) when a
// confirmation it is asked to approve or deny ran out meanwhile.
func (s *Service) ExpireIfDue(tx *ledger.Tx, p *pb.Payment) (bool, error) {
	if p.Status == pb.StatusRequiresConfirmation && p.Confirmation != nil && !tx.Now().Before(p.Confirmation.ExpiresAt) {
		p.Status = pb.StatusExpired // nothing was held
		LogPayment(tx, p, pb.SystemActor, pb.LogPaymentExpired, releasedData{What: "confirmation"})
		tx.PutPayment(*p)
		return true, nil
	}
	if p.Status != pb.StatusAuthorized || p.AuthorizationExpiresAt == nil || tx.Now().Before(*p.AuthorizationExpiresAt) {
		return false, nil
	}
	s.Credited(p.PayerID)
	err := tx.Atomic(func() error {
		if _, err := tx.Void(p.HoldID, p.ID); err != nil {
			return err
		}
		return s.cfg.Mandates.GiveBack(tx, p, p.Amount)
	})
	if err != nil {
		return false, err
	}
	p.Status = pb.StatusExpired
	LogPayment(tx, p, pb.SystemActor, pb.LogPaymentExpired, releasedData{Released: p.Amount, What: "hold"})
	tx.PutPayment(*p)
	return true, nil
}

func stateError(p *pb.Payment, action string) error {
	return pb.Errorf(pb.ErrPaymentState, "", "payment %s is %s; only an authorized payment can be %s", p.ID, p.Status, action)
}

// Capture (merchant) captures amount (default: all) of an authorized
// payment and releases the rest of the hold.
func (s *Service) Capture(ctx context.Context, caller pb.Principal, idem *Idempotency, id string, amount *int64) Result {
	if err := RequireRole(caller, pb.RoleMerchant); err != nil {
		return Result{Err: err}
	}
	if amount != nil {
		if err := pb.ValidateAmount(*amount, "amount"); err != nil {
			return Result{Err: err}
		}
	}
	return s.noted(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := s.loadLive(tx, caller, id, "captured")
		if err != nil {
			return nil, err
		}
		if p.Status != pb.StatusAuthorized {
			return nil, stateError(&p, "captured")
		}
		amt := p.Amount
		if amount != nil {
			amt = *amount
		}
		if amt > p.Amount {
			return nil, pb.Errorf(pb.ErrAmountTooLarge, "amount", "cannot capture %s %s; the payment authorized %s",
				pb.FormatAmount(amt, p.Currency), p.Currency, pb.FormatAmount(p.Amount, p.Currency))
		}
		if err := tx.Atomic(func() error {
			if err := s.capture(tx, &p, amt); err != nil {
				return err
			}
			return s.cfg.Mandates.GiveBack(tx, &p, p.Amount-amt) // the part not captured
		}); err != nil {
			return nil, err
		}
		LogPayment(tx, &p, pb.ActorOf(caller), pb.LogPaymentCaptured, capturedData{Amount: amt, Fee: p.FeeAmount, Released: p.Amount - amt})
		tx.PutPayment(p)
		return Shown(&p, caller), nil
	}))
}

// loadLive loads payment id for caller and first expires its hold if the
// authorization has run out: an expired payment cannot be captured or
// canceled (the expiry itself is kept, and reported as the state error).
func (s *Service) loadLive(tx *ledger.Tx, caller pb.Principal, id, action string) (pb.Payment, error) {
	p, err := s.loadForUpdate(tx, caller, id)
	if err != nil {
		return p, err
	}
	expired, err := s.ExpireIfDue(tx, &p)
	if err != nil {
		return p, err
	}
	if expired {
		return p, stateError(&p, action)
	}
	return p, nil
}

// Cancel (merchant, payer) voids an authorized payment's hold.
func (s *Service) Cancel(ctx context.Context, caller pb.Principal, idem *Idempotency, id string) Result {
	if err := RequireRole(caller, pb.RoleMerchant, pb.RoleUser, pb.RoleAgent); err != nil {
		return Result{Err: err}
	}
	return s.noted(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := s.loadLive(tx, caller, id, "canceled")
		if err != nil {
			return nil, err
		}
		released := int64(0)
		switch p.Status {
		case pb.StatusAuthorized:
			released = p.Amount
			if err := tx.Atomic(func() error {
				if _, err := tx.Void(p.HoldID, p.ID); err != nil {
					return err
				}
				return s.cfg.Mandates.GiveBack(tx, &p, p.Amount)
			}); err != nil {
				return nil, err
			}
		case pb.StatusRequiresConfirmation:
		default:
			return nil, stateError(&p, "canceled")
		}
		p.Status = pb.StatusCanceled
		LogPayment(tx, &p, pb.ActorOf(caller), pb.LogPaymentCanceled, releasedData{Released: released})
		tx.PutPayment(p)
		return Shown(&p, caller), nil
	}))
}

// MaxReasonLength bounds a refund's reason.
const MaxReasonLength = 500

// Refund (merchant) returns amount (default: all not yet refunded) of a
// captured payment to the payer. The platform fee is returned in proportion,
// so a full refund returns all of it.
func (s *Service) Refund(ctx context.Context, caller pb.Principal, idem *Idempotency, id string, amount *int64, reason string) Result {
	if err := RequireRole(caller, pb.RoleMerchant); err != nil {
		return Result{Err: err}
	}
	if amount != nil {
		if err := pb.ValidateAmount(*amount, "amount"); err != nil {
			return Result{Err: err}
		}
	}
	if len(reason) > MaxReasonLength || !utf8.ValidString(reason) {
		return Result{Err: pb.Errorf(pb.ErrParameterInvalid, "reason", "reason must be valid UTF-8 of at most %d bytes", MaxReasonLength)}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := s.loadForUpdate(tx, caller, id)
		if err != nil {
			return nil, err
		}
		if p.Status != pb.StatusCaptured {
			return nil, pb.Errorf(pb.ErrPaymentState, "", "payment %s is %s; only a captured payment with an unrefunded amount can be refunded", p.ID, p.Status)
		}
		left, err := s.Returnable(tx, &p)
		if err != nil {
			return nil, err
		}
		if left == 0 {
			return nil, pb.Errorf(pb.ErrPaymentState, "", "payment %s has nothing left to refund: the platform compensated the payer for it in a dispute", p.ID)
		}
		amt := left
		if amount != nil {
			amt = *amount
		}
		if amt > left {
			return nil, pb.Errorf(pb.ErrAmountTooLarge, "amount", "cannot refund %s %s; %s of the captured %s is left to refund",
				pb.FormatAmount(amt, p.Currency), p.Currency, pb.FormatAmount(left, p.Currency), pb.FormatAmount(p.AmountCaptured, p.Currency))
		}
		r, err := s.ApplyRefund(tx, &p, pb.ActorOf(caller), amt, reason)
		if err != nil {
			return nil, err
		}
		tx.PutPayment(p)
		return r, nil
	}))
}

// ApplyRefund returns amt of p's captured amount to the payer from the merchant
// (and the platform fee in proportion), logs it, and records the refund;
// the caller puts p.
func (s *Service) ApplyRefund(tx *ledger.Tx, p *pb.Payment, actor pb.Actor, amt int64, reason string) (*pb.Refund, error) {
	now := tx.Now().Truncate(time.Second)
	r := pb.Refund{ID: pb.NewID(pb.PrefixRefund, tx.Now()), Object: "refund", PaymentID: p.ID, Amount: amt,
		Currency: p.Currency, Reason: reason, Status: "succeeded", CreatedAt: now}
	feePart := mulDiv(p.FeeAmount, p.AmountRefunded+amt, p.AmountCaptured) - p.FeeRefunded
	s.Credited(p.PayerID)
	err := tx.Atomic(func() error {
		wallet, err := tx.Account(p.PayerID, p.Currency)
		if err != nil {
			return err
		}
		if part := amt - feePart; part > 0 {
			merchant, err := tx.Account(p.MerchantID, p.Currency)
			if err != nil {
				return err
			}
			if _, err := tx.Transfer(merchant, wallet, part, r.ID); err != nil {
				return err
			}
		}
		if feePart > 0 {
			platform, err := tx.Account(pb.OwnerPlatform, p.Currency)
			if err != nil {
				return err
			}
			if _, err := tx.Transfer(platform, wallet, feePart, r.ID); err != nil {
				return err
			}
		}
		return s.cfg.Mandates.GiveBack(tx, p, amt)
	})
	if err != nil {
		return nil, err
	}
	p.AmountRefunded += amt
	p.FeeRefunded += feePart
	if p.AmountRefunded == p.AmountCaptured {
		p.Status = pb.StatusRefunded
	}
	LogPayment(tx, p, actor, pb.LogPaymentRefunded, refundedData{RefundID: r.ID, Amount: amt, FeeReturned: feePart, Reason: reason})
	tx.AddRefund(r)
	return &r, nil
}

// Payment returns payment id if caller is a party to it.
func (s *Service) Payment(ctx context.Context, caller pb.Principal, id string) (*pb.Payment, error) {
	if !pb.HasPrefix(id, pb.PrefixPayment) {
		return nil, noPayment(id)
	}
	p, err := s.st.Payment(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !party(p, caller)) {
		return nil, noPayment(id)
	}
	if err != nil {
		return nil, err
	}
	return Shown(p, caller), nil
}

// Shown is p as caller may see it (docs/visibility.md). The reasons of a
// risk assessment speak of the payer's balance and history, and its score
// and points say how near the payment came to another decision: a merchant
// sees no assessment, and of a decline only that it happened
// (pb.DeclineGeneric); an agent sees the decision and the signals' names
// (an agent misled by what it read must not be able to pass the rest on).
// The payer and the operator see it all.
func Shown(p *pb.Payment, caller pb.Principal) *pb.Payment {
	switch {
	case caller.Role == pb.RoleMerchant && (p.Risk != nil || p.DeclineCode != ""):
		c := *p
		c.Risk = nil
		if c.DeclineCode != "" {
			c.DeclineCode = pb.DeclineGeneric
		}
		return &c
	case caller.Role == pb.RoleAgent && p.Risk != nil:
		c, r := *p, pb.Risk{Decision: p.Risk.Decision, Signals: make([]pb.RiskSignal, len(p.Risk.Signals)), Partial: true}
		for i, sg := range p.Risk.Signals {
			r.Signals[i] = pb.RiskSignal{Name: sg.Name}
		}
		c.Risk = &r
		return &c
	}
	return p
}

// ListPayments lists, newest first, the payments caller is a party to.
func (s *Service) ListPayments(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]pb.Payment, bool, error) {
	f := pb.PaymentFilter{StartingAfter: startingAfter, Limit: limit}
	switch caller.Role {
	case pb.RoleUser:
		f.PayerID = caller.ID
	case pb.RoleAgent:
		f.AgentID = caller.ID
	case pb.RoleMerchant:
		f.MerchantID = caller.ID
	case pb.RoleOperator:
	default:
		return nil, false, errUnauthenticated
	}
	ps, more, err := s.st.ListPayments(ctx, f)
	for i := range ps {
		ps[i] = *Shown(&ps[i], caller)
	}
	return ps, more, err
}

// VerifyLedger (operator) recomputes every balance from the transfers.
func (s *Service) VerifyLedger(ctx context.Context, caller pb.Principal) (ledger.Report, error) {
	if err := RequireRole(caller, pb.RoleOperator); err != nil {
		return ledger.Report{}, err
	}
	return ledger.Verify(ctx, s.st)
}

// Returnable is what may still be returned to p's payer: the captured
// amount less refunds and less what the platform compensated for it (a
// compensation stands in for a refund, so nobody is paid back twice).
func (s *Service) Returnable(tx *ledger.Tx, p *pb.Payment) (int64, error) {
	left := p.AmountCaptured - p.AmountRefunded
	if p.Status != pb.StatusCaptured {
		return left, nil // refunded in full: nothing was compensated on top
	}
	ds, err := tx.PaymentDisputes(p.ID)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		if d.Resolution != nil && d.Resolution.CompensationID != "" {
			left -= d.Resolution.Amount
		}
	}
	return max(left, 0), nil
}
