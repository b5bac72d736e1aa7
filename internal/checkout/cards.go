package checkout

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// CardIIN starts every agent card number: the major industry identifier 9
// (ISO/IEC 7812: assigned nationally, routed by no card network), then
// 90001. A number is CardIIN, 12 random digits and a Luhn check digit: 19
// digits, so that a guessed number is one in 10^12.
const CardIIN = "990001"

// CardLength is an agent card number's length.
const CardLength = 19

// cardLife is how long a card lasts at most (its mandate may end first).
const cardLife = 3 * 365 * 24 * time.Hour

// LogAgentCardIssued is the type of the log entry of an issued card
// (subject: its mandate).
const LogAgentCardIssued = "agent_card.issued"

// IssuedCard is a new agent card as its user sees it once: the number is
// never shown again.
type IssuedCard struct {
	pb.AgentCard
	Number string `json:"number"`
	// ExpMonth and ExpYear as card forms write them ("07", "2029"), which
	// is how delegate_payment takes them.
	ExpMonth string `json:"exp_month"`
	ExpYear  string `json:"exp_year"`
}

type cardData struct {
	AgentID  string `json:"agent_id"`
	CardID   string `json:"card_id"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	Last4    string `json:"last4"`
}

// IssueCard (the user who granted mandateID) issues an agent card bound to
// the mandate and its agent. The card expires with the mandate (or within
// three years), and dies when the mandate is revoked.
func (s *Service) IssueCard(ctx context.Context, caller pb.Principal, idem *service.Idempotency, mandateID string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	noMandate := pb.Errorf(pb.ErrNotFound, "id", "no such mandate: %s", mandateID)
	if !pb.HasPrefix(mandateID, pb.PrefixMandate) {
		return service.Result{Err: noMandate}
	}
	m, err := s.st.Mandate(ctx, mandateID)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && m.UserID != caller.ID) {
		return service.Result{Err: noMandate}
	}
	if err != nil {
		return service.Result{Err: err}
	}
	release, err := s.exclusive(ctx, mandateID, idem) // the count below must see every card issued
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	issued, err := s.st.CountAgentCards(ctx, mandateID)
	if err != nil {
		return service.Result{Err: fmt.Errorf("couldn't count the mandate's cards: %w", err)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		m, err := tx.Mandate(mandateID) // as of this batch: a revocation before it counts
		if err != nil {
			return nil, err
		}
		now := tx.Now().Truncate(time.Second)
		if code := m.InForce(now); code != "" {
			return nil, pb.Errorf(pb.ErrMandateNotInForce, "", "mandate %s is %s; a card needs a mandate in force", m.ID, strings.TrimPrefix(string(code), "mandate_"))
		}
		for _, c := range ledger.Added(tx, cards) {
			if c.MandateID == m.ID {
				issued++
			}
		}
		if issued >= pb.MaxCardsPerMandate {
			return nil, pb.Errorf(pb.ErrCardLimit, "", "mandate %s has %d agent cards, the most one mandate may have; grant another mandate", m.ID, issued)
		}
		exp := now.Add(cardLife)
		if m.ExpiresAt != nil && m.ExpiresAt.Before(exp) {
			exp = m.ExpiresAt.Add(-time.Second) // the month of its last valid instant
		}
		number, hash := "", ""
		for range 8 {
			number = newCardNumber()
			hash = s.numberHash(number)
			if _, err := s.st.AgentCardByHash(tx.Context(), hash); pb.ErrorCode(err) == pb.ErrNotFound {
				break
			} else if err != nil {
				return nil, err
			}
		}
		c := pb.AgentCard{ID: pb.NewID(pb.PrefixAgentCard, tx.Now()), Object: "agent_card", MandateID: m.ID, AgentID: m.AgentID,
			UserID: m.UserID, NumberHash: hash, Last4: number[len(number)-4:], ExpMonth: int(exp.UTC().Month()), ExpYear: exp.UTC().Year(), CreatedAt: now}
		ledger.Add(tx, cards, c)
		if err := tx.Log(pb.LogEvent{Type: LogAgentCardIssued, Subject: m.ID, Actor: pb.ActorOf(caller),
			Data: cardData{AgentID: c.AgentID, CardID: c.ID, ExpMonth: c.ExpMonth, ExpYear: c.ExpYear, Last4: c.Last4}}); err != nil {
			return nil, err
		}
		return &IssuedCard{AgentCard: c, Number: number, ExpMonth: c.ExpMonthText(), ExpYear: c.ExpYearText()}, nil
	})
}

// newCardNumber returns a random agent card number.
func newCardNumber() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000_000_000))
	body := CardIIN + fmt.Sprintf("%012d", n)
	return body + strconv.Itoa(luhnDigit(body))
}

// luhnDigit is the check digit that makes body+digit Luhn-valid.
func luhnDigit(body string) int {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}

// LuhnValid reports whether number is all digits with a valid Luhn check
// digit.
func LuhnValid(number string) bool {
	if len(number) < 2 {
		return false
	}
	for i := 0; i < len(number); i++ {
		if number[i] < '0' || number[i] > '9' {
			return false
		}
	}
	return luhnDigit(number[:len(number)-1]) == int(number[len(number)-1]-'0')
}

// DelegateParams is delegate_payment's request: an agent card, the
// allowance it is delegated under, and the request's signature.
type DelegateParams struct {
	Number, ExpMonth, ExpYear string
	Allowance                 Allowance
	Metadata                  map[string]string
	// Signature and Timestamp are the request's headers; Body the exact
	// bytes they sign (see VerifyDelegation).
	Signature, Timestamp string
	Body                 []byte
	// IdempotencyKey is echoed in the token's metadata.
	IdempotencyKey string
}

// Allowance is what the token allows: at most MaxAmount of Currency, at
// MerchantID, for CheckoutSessionID, until ExpiresAt, once.
type Allowance struct {
	Reason            string
	MaxAmount         int64
	Currency          string
	CheckoutSessionID string
	MerchantID        string
	ExpiresAt         time.Time
}

// SignatureWindow is how far a delegate_payment Timestamp may be from now.
const SignatureWindow = 300 * time.Second

// DelegatePayment (an agent) turns one of its agent cards into a vault
// token bound to the allowance. The request must be signed by one of the
// agent's keys: with ACP's Signature and Timestamp (VerifyDelegation), or
// as a whole, an RFC 9421 signed request (caller.Signed). The two cannot
// travel together, since both name their header Signature; a signed
// request proves what ACP's Signature does (the agent's key in force, over
// this exact body through Content-Digest, fresh within 5 minutes) and its
// nonce also makes it unrepeatable. The card must be the agent's, live, its
// mandate in force; the allowance must be one the mandate allows (currency,
// per-payment limit, budget, merchant, schedule), for an open session of
// this agent at that merchant, ending within a day and before the card.
// No money moves: the charge happens when the session is completed.
func (s *Service) DelegatePayment(ctx context.Context, caller pb.Principal, idem *service.Idempotency, p DelegateParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	if !caller.Signed {
		if err := s.VerifyDelegation(ctx, caller, p.Signature, p.Timestamp, p.Body); err != nil {
			return service.Result{Err: err}
		}
	}
	if err := checkTokenMetadata(p.Metadata); err != nil {
		return service.Result{Err: err}
	}
	card, m, err := s.liveCard(ctx, caller, p)
	if err == nil {
		err = s.checkAllowance(ctx, caller, card, m, &p.Allowance)
	}
	if err != nil {
		return s.refuse(ctx, idem, err)
	}
	a := p.Allowance
	// The session's tokens are counted with the session held, so that the
	// count sees every token delegated for it.
	release, err := s.exclusive(ctx, a.CheckoutSessionID, idem)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	n, err := s.st.CountVaultTokens(ctx, a.CheckoutSessionID)
	if err != nil {
		return service.Result{Err: fmt.Errorf("couldn't count the session's tokens: %w", err)}
	}
	if n >= pb.MaxSessionTokens {
		return s.refuse(ctx, idem, pb.Errorf(pb.ErrAllowanceInvalid, "allowance.checkout_session_id",
			"checkout session %s has %d payment tokens already, the most one may have", a.CheckoutSessionID, n))
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		md := map[string]string{}
		for k, v := range p.Metadata {
			md[k] = v
		}
		md["merchant_id"], md["checkout_session_id"], md["card_last4"] = a.MerchantID, a.CheckoutSessionID, card.Last4
		if p.IdempotencyKey != "" {
			md["idempotency_key"] = p.IdempotencyKey
		}
		t := pb.VaultToken{ID: pb.NewID(pb.PrefixVaultToken, tx.Now()), CardID: card.ID, MandateID: card.MandateID, AgentID: caller.ID,
			UserID: card.UserID, MerchantID: a.MerchantID, CheckoutSessionID: a.CheckoutSessionID, MaxAmount: a.MaxAmount,
			Currency: a.Currency, ExpiresAt: a.ExpiresAt, Metadata: md, CreatedAt: tx.Now().Truncate(time.Second)}
		ledger.Add(tx, tokens, t)
		return &t, nil
	})
}

// VerifyDelegation checks delegate_payment's Signature and Timestamp
// headers, both required: Timestamp is RFC 3339 within SignatureWindow of
// now, and Signature the base64 (standard or URL alphabet, padded or not)
// Ed25519 signature of "<Timestamp>.<body>" by one of the agent's keys in
// force. It returns ErrSignatureMissing, ErrSignatureExpired or
// ErrSignatureInvalid.
func (s *Service) VerifyDelegation(ctx context.Context, caller pb.Principal, signature, timestamp string, body []byte) error {
	if signature == "" || timestamp == "" {
		return pb.Errorf(pb.ErrSignatureMissing, "Signature", "delegate_payment requires the Signature and Timestamp headers: Signature is the base64 Ed25519 signature of \"<Timestamp>.<body>\" by one of the agent's keys")
	}
	ts, err := time.Parse(time.RFC3339, timestamp)
	if err != nil {
		return pb.Errorf(pb.ErrSignatureInvalid, "Timestamp", "Timestamp must be an RFC 3339 time such as 2026-04-17T10:30:00Z")
	}
	now := s.clock.Now()
	if d := now.Sub(ts); d > SignatureWindow || d < -SignatureWindow {
		return pb.Errorf(pb.ErrSignatureExpired, "Timestamp", "Timestamp %s is more than %s from the server's time %s", timestamp, SignatureWindow, now.UTC().Format(time.RFC3339))
	}
	sig, err := decodeBase64(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return pb.Errorf(pb.ErrSignatureInvalid, "Signature", "Signature must be a base64 Ed25519 signature (64 bytes)")
	}
	keys, err := s.core.AgentKeys(ctx, caller.ID)
	if err != nil {
		return fmt.Errorf("couldn't read the agent's keys: %w", err)
	}
	msg := append([]byte(timestamp+"."), body...)
	for _, k := range keys {
		if !k.ValidAt(now) {
			continue
		}
		if pub, err := k.Ed25519(); err == nil && ed25519.Verify(pub, msg, sig) {
			return nil
		}
	}
	if len(keys) == 0 {
		return pb.Errorf(pb.ErrSignatureInvalid, "Signature", "agent %s has no signing key; add one (POST /v1/agents/{id}/keys) to sign delegate_payment", caller.ID)
	}
	return pb.Errorf(pb.ErrSignatureInvalid, "Signature", "the Signature does not verify with any key of agent %s in force over \"<Timestamp>.<body>\"", caller.ID)
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64")
}

// liveCard returns the caller's card with p's number and its mandate, if
// the card is live: ErrCardInvalid names what is wrong with it.
func (s *Service) liveCard(ctx context.Context, caller pb.Principal, p DelegateParams) (*pb.AgentCard, *pb.Mandate, error) {
	const param = "payment_method.number"
	if len(p.Number) != CardLength || !strings.HasPrefix(p.Number, CardIIN) || !LuhnValid(p.Number) {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, param, "Paybound accepts only its agent cards: %d-digit numbers starting %s, issued with POST /v1/mandates/{id}/card", CardLength, CardIIN)
	}
	// As the last revocation left it, on every process (card).
	c, err := s.card(ctx, s.numberHash(p.Number), "")
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, param, "no agent card has the number ending %s", p.Number[len(p.Number)-4:])
	}
	if err != nil {
		return nil, nil, err
	}
	if c.AgentID != caller.ID {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, param, "the agent card ending %s was issued to another agent; an agent delegates only its own cards", c.Last4)
	}
	if p.ExpMonth != "" && p.ExpMonth != c.ExpMonthText() && p.ExpMonth != strconv.Itoa(c.ExpMonth) {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, "payment_method.exp_month", "exp_month does not match the card ending %s", c.Last4)
	}
	if p.ExpYear != "" && p.ExpYear != c.ExpYearText() {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, "payment_method.exp_year", "exp_year does not match the card ending %s", c.Last4)
	}
	if c.RevokedAt != nil {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, param, "the agent card ending %s was revoked by its user at %s", c.Last4, c.RevokedAt.Format(time.RFC3339))
	}
	now := s.clock.Now()
	if !now.Before(c.ExpiresAt()) {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, param, "the agent card ending %s expired at the end of %s/%s", c.Last4, c.ExpMonthText(), c.ExpYearText())
	}
	m, err := s.st.Mandate(ctx, c.MandateID)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read the card's mandate: %w", err)
	}
	if code := m.InForce(now); code != "" {
		return nil, nil, pb.Errorf(pb.ErrCardInvalid, param, "the agent card ending %s is dead: its mandate %s is %s", c.Last4, m.ID, strings.TrimPrefix(string(code), "mandate_"))
	}
	return c, m, nil
}

// checkAllowance refuses an allowance that mandate m does not allow or
// that does not fit its session, with ErrAllowanceInvalid naming the field.
func (s *Service) checkAllowance(ctx context.Context, caller pb.Principal, c *pb.AgentCard, m *pb.Mandate, a *Allowance) error {
	bad := func(field, format string, args ...any) error {
		return pb.Errorf(pb.ErrAllowanceInvalid, "allowance."+field, format, args...)
	}
	if a.Reason != "one_time" {
		return bad("reason", "reason must be one_time")
	}
	if err := pb.ValidateAmount(a.MaxAmount, "allowance.max_amount"); err != nil {
		return err
	}
	if err := pb.ValidateCurrency(a.Currency, "allowance.currency"); err != nil {
		return err
	}
	now := s.clock.Now()
	switch {
	case !a.ExpiresAt.After(now):
		return bad("expires_at", "expires_at %s is not in the future", a.ExpiresAt.Format(time.RFC3339))
	case a.ExpiresAt.Sub(now) > pb.MaxAllowanceTTL:
		return bad("expires_at", "expires_at must be within %s of now", pb.MaxAllowanceTTL)
	case a.ExpiresAt.After(c.ExpiresAt()):
		return bad("expires_at", "expires_at is after the card ending %s expires", c.Last4)
	case m.ExpiresAt != nil && a.ExpiresAt.After(*m.ExpiresAt):
		return bad("expires_at", "expires_at is after mandate %s ends (%s)", m.ID, m.ExpiresAt.Format(time.RFC3339))
	}
	a.ExpiresAt = a.ExpiresAt.UTC().Truncate(time.Second)
	merchant, err := s.core.Merchant(ctx, a.MerchantID)
	if err != nil {
		return err
	}
	if merchant == nil {
		return bad("merchant_id", "no such merchant: %.100s", a.MerchantID)
	}
	sess, err := s.visibleSession(ctx, caller, a.MerchantID, a.CheckoutSessionID)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return bad("checkout_session_id", "agent %s has no checkout session %.100s at merchant %s", caller.ID, a.CheckoutSessionID, a.MerchantID)
	}
	if err != nil {
		return err
	}
	if err := openAt(sess, now); err != nil {
		return bad("checkout_session_id", "%s", messageOf(err))
	}
	if sess.Currency != a.Currency {
		return bad("currency", "the allowance is in %s, checkout session %s in %s", a.Currency, sess.ID, sess.Currency)
	}
	// Every check of the mandate that a payment of max_amount would face
	// now, but its usage: the budget left is the charge's to check.
	if code := m.Check(caller.ID, a.MaxAmount, a.Currency, merchant, now, pb.MandateUsage{PeriodKey: m.PeriodKey(now)}); code != "" {
		return bad(allowanceField(code), "mandate %s does not allow this allowance (%s)%s", m.ID, code, mandateDetail(m, code, now))
	}
	return nil
}

// allowanceField is the allowance field a mandate's refusal is about.
func allowanceField(code pb.Code) string {
	switch code {
	case pb.DeclineMandateCurrencyMismatch:
		return "currency"
	case pb.DeclineMandateAmountExceeded, pb.DeclineMandateBudgetExhausted:
		return "max_amount"
	case pb.DeclineMandateMerchant:
		return "merchant_id"
	}
	return "expires_at"
}

func mandateDetail(m *pb.Mandate, code pb.Code, now time.Time) string {
	switch code {
	case pb.DeclineMandateCurrencyMismatch:
		return ": it pays in " + m.Currency
	case pb.DeclineMandateAmountExceeded:
		return fmt.Sprintf(": at most %s %s per payment", pb.FormatAmount(m.MaxAmount, m.Currency), m.Currency)
	case pb.DeclineMandateBudgetExhausted:
		return fmt.Sprintf(": its budget is %s %s per %s", pb.FormatAmount(m.Budget.Amount, m.Currency), m.Currency, m.Budget.Period)
	case pb.DeclineMandateSchedule:
		return ": " + m.ScheduleText(now)
	}
	return ""
}

// checkTokenMetadata bounds delegate_payment's metadata as payments'.
func checkTokenMetadata(md map[string]string) error {
	if len(md) > pb.MaxTokenMetadata {
		return pb.Errorf(pb.ErrParameterInvalid, "metadata", "metadata has %d keys; at most %d are allowed", len(md), pb.MaxTokenMetadata)
	}
	for k, v := range md {
		if k == "" || len(k) > pb.MaxMetadataKeyLength || len(v) > pb.MaxMetadataValueLength || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return pb.Errorf(pb.ErrParameterInvalid, "metadata", "metadata keys must be 1-%d bytes and values at most %d bytes of UTF-8", pb.MaxMetadataKeyLength, pb.MaxMetadataValueLength)
		}
	}
	return nil
}

// messageOf is err's message for a person, without its code.
func messageOf(err error) string {
	var e *pb.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// CardView is an agent card as its mandate's list shows it: never the
// number, and its state now: "active"; "expired" past its expiry month;
// or, while its mandate is no longer in force, "mandate_revoked",
// "mandate_expired" (and the like), since a card dies with its mandate.
type CardView struct {
	pb.AgentCard
	State string `json:"state"`
}

// MandateCards (the user who granted mandateID) lists the agent cards
// issued under it, oldest first. Another user's mandate is not found.
func (s *Service) MandateCards(ctx context.Context, caller pb.Principal, mandateID string) ([]CardView, error) {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return nil, err
	}
	noMandate := pb.Errorf(pb.ErrNotFound, "id", "no such mandate: %s", mandateID)
	if !pb.HasPrefix(mandateID, pb.PrefixMandate) {
		return nil, noMandate
	}
	m, err := s.st.Mandate(ctx, mandateID)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && m.UserID != caller.ID) {
		return nil, noMandate
	}
	if err != nil {
		return nil, err
	}
	cards, err := s.st.MandateAgentCards(ctx, mandateID)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	out := make([]CardView, len(cards))
	for i, c := range cards {
		out[i] = cardView(c, m, now)
	}
	return out, nil
}

func cardView(c pb.AgentCard, m *pb.Mandate, now time.Time) CardView {
	state := "active"
	if code := m.InForce(now); code != "" {
		state = string(code)
	}
	if !now.Before(c.ExpiresAt()) {
		state = "expired"
	}
	if c.RevokedAt != nil {
		state = "revoked"
	}
	return CardView{AgentCard: c, State: state}
}

// LogAgentCardRevoked is the type of the log entry of a card revoked
// alone (subject: its mandate).
const LogAgentCardRevoked = "agent_card.revoked"

// RevokeCard (the user who granted mandateID) revokes one agent card of
// the mandate, say one an agent leaked, while the mandate and its other
// cards stay in force. From the moment the call returns, on every process,
// delegate_payment refuses the card and complete refuses the tokens it
// was delegated as (each reads the card from the store on a shared store,
// and from memory this call updates on SQLite: see card); a checkout
// being completed at that very moment may finish. It is idempotent: a
// revoked card is answered as it is.
func (s *Service) RevokeCard(ctx context.Context, caller pb.Principal, idem *service.Idempotency, mandateID, cardID string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	noCard := pb.Errorf(pb.ErrNotFound, "card_id", "mandate %.40s has no agent card %.40s", mandateID, cardID)
	if !pb.HasPrefix(cardID, pb.PrefixAgentCard) || !pb.HasPrefix(mandateID, pb.PrefixMandate) {
		return service.Result{Err: noCard}
	}
	release, err := s.exclusive(ctx, cardID, idem) // a second revocation reads the first's
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	var hash string // the revoked card's number hash, to forget it by
	res := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		c, err := inTx(tx, cards, func(c *pb.AgentCard) string { return c.ID }, cardID, s.st.AgentCard)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && (c.MandateID != mandateID || c.UserID != caller.ID)) {
			return nil, noCard
		}
		if err != nil {
			return nil, err
		}
		hash = c.NumberHash
		m, err := tx.Mandate(mandateID)
		if err != nil {
			return nil, err
		}
		if c.RevokedAt == nil {
			now := tx.Now().Truncate(time.Second)
			c.RevokedAt = &now
			ledger.Add(tx, cards, *c)
			if err := tx.Log(pb.LogEvent{Type: LogAgentCardRevoked, Subject: mandateID, Actor: pb.ActorOf(caller),
				Data: cardData{AgentID: c.AgentID, CardID: c.ID, ExpMonth: c.ExpMonth, ExpYear: c.ExpYear, Last4: c.Last4}}); err != nil {
				return nil, err
			}
		}
		v := cardView(*c, &m, tx.Now())
		return &v, nil
	})
	if res.Err == nil {
		s.cards.Forget(cardKey{v: cardID}, cardKey{byHash: true, v: hash})
	}
	return res
}
