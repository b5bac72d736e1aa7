package checkout

import (
	"context"
	"fmt"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// LogCheckoutCompleted is the type of the log entry of a completed session
// (subject: the session), which the webhooks turn into the merchant's
// checkout_session.completed event and the agent platform's ACP
// order_create event.
const LogCheckoutCompleted = pb.LogCheckoutCompleted

// CompleteParams is how the agent pays a session: a vault token from
// delegate_payment, and the buyer when the session has none yet.
type CompleteParams struct {
	Token string
	Buyer *pb.Buyer
}

// completedData is the data of a checkout_session.completed entry, fields
// in JSON-name order.
type completedData struct {
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	MerchantID string `json:"merchant_id"`
	OrderID    string `json:"order_id"`
	PaymentID  string `json:"payment_id"`
	TokenID    string `json:"token_id"`
}

// CompleteSession (its agent) pays an open, ready session with a vault
// token: the token must be the agent's, for this merchant and session,
// unused, unexpired, its allowance at least the session's total. It
// charges through the payments core as the agent under the card's mandate
// (capture automatic), so every mandate, confirmation and risk rule of the
// payment path applies; the token's use, the session's completion and its
// order commit with the payment, so that the session is paid once however
// often complete is retried. A payment that waits for the user's approval
// leaves the session pending_approval with the confirmation link; a
// declined one leaves it ready_for_payment with a payment_declined message
// (and no error: the session is the answer).
func (s *Service) CompleteSession(ctx context.Context, caller pb.Principal, idem *service.Idempotency, merchantID, id string, p CompleteParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	if p.Buyer != nil {
		if err := checkContact(p.Buyer, nil); err != nil {
			return service.Result{Err: err}
		}
	}
	release, err := s.exclusive(ctx, id, idem)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	sess, err := s.agentSession(ctx, caller, merchantID, id)
	if err == nil && sess.Status != pb.CheckoutReady {
		err = pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s is not ready for payment: %s", id, messagesText(sess))
	}
	var tok *pb.VaultToken
	if err == nil {
		tok, err = s.usableToken(ctx, caller, sess, p.Token)
	}
	if err != nil {
		return s.refuse(ctx, idem, err)
	}
	var out *pb.CheckoutSession
	params := service.CreatePaymentParams{Amount: sess.Total, Currency: sess.Currency, MerchantID: merchantID,
		Description: "Checkout session " + id, MandateID: tok.MandateID, CaptureMethod: pb.CaptureAutomatic,
		Metadata: map[string]string{pb.MetadataCheckoutSession: id, pb.MetadataPaymentToken: tok.ID},
		Within: func(tx *ledger.Tx, pay *pb.Payment) error {
			var err error
			out, err = s.completeIn(tx, caller, id, sess, *tok, p.Buyer, pay)
			return err
		}}
	wrapRender(idem, func(err error) (any, error) {
		if out != nil {
			return out, nil
		}
		return nil, err
	})
	res := s.core.CreatePayment(ctx, caller, idem, params)
	if res.Replayed || out == nil || (res.Err != nil && pb.ErrorCode(res.Err).Type() != pb.TypeDeclined) {
		return service.Result{Err: res.Err, Replayed: res.Replayed}
	}
	return service.Result{Value: out}
}

// refuse answers err under idem through the writer, where a request
// already answered under its key is replayed first: a complete retried
// after its lost response gets that response, not the error its own
// success now causes. The refusal is stored under the key, as every
// outcome is.
func (s *Service) refuse(ctx context.Context, idem *service.Idempotency, err error) service.Result {
	if idem == nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(*ledger.Tx) (any, error) { return nil, err })
}

// usableToken returns token id if caller may pay sess with it now.
func (s *Service) usableToken(ctx context.Context, caller pb.Principal, sess *pb.CheckoutSession, id string) (*pb.VaultToken, error) {
	const param = "payment_data.instrument.credential.token"
	if id == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, param, "a payment token is required: the id that delegate_payment returned (vt_…)")
	}
	if !pb.HasPrefix(id, pb.PrefixVaultToken) {
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "%.100q is not a Paybound payment token (vt_…)", id)
	}
	t, err := s.st.VaultToken(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && t.AgentID != caller.ID) {
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "no payment token %s was delegated by this agent", id)
	}
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	switch {
	case t.MerchantID != sess.MerchantID:
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "payment token %s is delegated to merchant %s, not %s", id, t.MerchantID, sess.MerchantID)
	case t.CheckoutSessionID != sess.ID:
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "payment token %s is delegated for checkout session %s, not %s", id, t.CheckoutSessionID, sess.ID)
	case t.UsedBy != "":
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "payment token %s was used already (payment %s); delegate the card again", id, t.UsedBy)
	case !now.Before(t.ExpiresAt):
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "payment token %s expired at %s; delegate the card again", id, t.ExpiresAt.Format(time.RFC3339))
	case t.Currency != sess.Currency:
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "payment token %s is in %s, the session in %s", id, t.Currency, sess.Currency)
	case t.MaxAmount < sess.Total:
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "payment token %s allows at most %s %s; the session's total is %s %s",
			id, pb.FormatAmount(t.MaxAmount, t.Currency), t.Currency, pb.FormatAmount(sess.Total, sess.Currency), sess.Currency)
	}
	m, err := s.st.Mandate(ctx, t.MandateID)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the card's mandate: %w", err)
	}
	if code := m.InForce(now); code != "" {
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "the agent card behind payment token %s is dead: its mandate %s is %s", id, m.ID, strings.TrimPrefix(string(code), "mandate_"))
	}
	c, err := s.card(ctx, "", t.CardID) // as the last revocation left it: see RevokeCard
	if err != nil {
		return nil, fmt.Errorf("couldn't read the token's agent card: %w", err)
	}
	if c.RevokedAt != nil {
		return nil, pb.Errorf(pb.ErrTokenInvalid, param, "the agent card ending %s behind payment token %s was revoked by its user at %s; nothing was charged", c.Last4, id, c.RevokedAt.Format(time.RFC3339))
	}
	return t, nil
}

// completeIn records, inside the payment's operation, what payment pay did
// to session id (as sess was when the payment was decided): completed with
// its order, waiting for approval, or declined. It refuses, undoing the
// payment, a session that another operation completed or changed first, or
// a token used meanwhile.
//
// The session is as of the batch (sessionAt); its completion and the token's use
// need no read of their own: both change the session's status in the same
// batch (a completion from another process sharing the store fails this
// batch's commit on their unique keys, and it is computed again).
func (s *Service) completeIn(tx *ledger.Tx, caller pb.Principal, id string, sess *pb.CheckoutSession, tok pb.VaultToken, buyer *pb.Buyer, pay *pb.Payment) (*pb.CheckoutSession, error) {
	cur, err := s.sessionAt(tx, id, sess)
	if err != nil {
		return nil, err
	}
	done := completedIn(tx, id)
	if done || cur.StatusAt(tx.Now()) != pb.CheckoutReady {
		if cur.Status == pb.CheckoutCompleted {
			return nil, pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s is completed already (order %s, payment %s); nothing was charged again", id, cur.Order.ID, cur.PaymentID)
		}
		return nil, pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s is %s; nothing was charged", id, cur.StatusAt(tx.Now()))
	}
	if !cur.UpdatedAt.Equal(sess.UpdatedAt) {
		return nil, pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s changed while it was being paid; nothing was charged, complete it again", id)
	}
	if tokenUsedIn(tx, &tok) {
		return nil, pb.Errorf(pb.ErrTokenInvalid, "payment_data.instrument.credential.token", "payment token %s was used already; nothing was charged", tok.ID)
	}
	now := tx.Now().Truncate(time.Second)
	if buyer != nil {
		cur.Buyer = buyer
	}
	cur.UpdatedAt = now
	switch pay.Status {
	case pb.StatusCaptured, pb.StatusAuthorized:
		tok.UsedBy = pay.ID
		ledger.Add(tx, tokens, tok)
		if err := s.finish(tx, caller, cur, tok.ID, pay); err != nil {
			return nil, err
		}
	case pb.StatusRequiresConfirmation:
		tok.UsedBy = pay.ID
		ledger.Add(tx, tokens, tok)
		cur.Status, cur.PaymentID = pb.CheckoutPendingApproval, pay.ID
		if pay.Confirmation != nil {
			cur.ConfirmationURL = s.cfg.BaseURL + pay.Confirmation.URL
		}
		cur.Messages = []pb.CheckoutMessage{{Type: "info", Resolution: "requires_buyer_review",
			Content: fmt.Sprintf("The buyer must approve this payment of %s %s before the order is placed: %s (until %s).",
				pb.FormatAmount(pay.Amount, pay.Currency), pay.Currency, cur.ConfirmationURL, confirmationExpiry(pay))}}
	default: // declined: the session stays payable with another token
		cur.DeclinedPaymentID = pay.ID
		price(cur, []pb.CheckoutMessage{{Type: "error", Code: "payment_declined", Resolution: "requires_buyer_input",
			Content: fmt.Sprintf("The payment was declined (%s); payment %s. Nothing was charged.", pay.DeclineCode, pay.ID)}})
	}
	putSession(tx, cur)
	return cur, nil
}

func confirmationExpiry(p *pb.Payment) string {
	if p.Confirmation == nil {
		return "its expiry"
	}
	return p.Confirmation.ExpiresAt.Format(time.RFC3339)
}

// finish completes cur, paid by pay with token tokenID: its order, the
// completion row (which a store refuses twice) and the log entry the
// webhooks announce.
func (s *Service) finish(tx *ledger.Tx, actor pb.Principal, cur *pb.CheckoutSession, tokenID string, pay *pb.Payment) error {
	now := tx.Now().Truncate(time.Second)
	orderID := pb.NewID(pb.PrefixOrder, tx.Now())
	cur.Status, cur.PaymentID, cur.Messages = pb.CheckoutCompleted, pay.ID, []pb.CheckoutMessage{}
	cur.Order = &pb.Order{ID: orderID, Number: strings.ToUpper(orderID[len(orderID)-8:]), PaymentID: pay.ID,
		PermalinkURL: s.cfg.BaseURL + "/acp/" + cur.MerchantID + "/checkout_sessions/" + cur.ID, CreatedAt: now}
	ledger.Add(tx, completions, pb.CheckoutCompletion{SessionID: cur.ID, TokenID: tokenID, PaymentID: pay.ID, CreatedAt: now})
	return tx.Log(pb.LogEvent{Type: LogCheckoutCompleted, Subject: cur.ID, Actor: pb.ActorOf(actor),
		Data:   completedData{Amount: cur.Total, Currency: cur.Currency, MerchantID: cur.MerchantID, OrderID: orderID, PaymentID: pay.ID, TokenID: tokenID},
		Notice: &pb.Notice{Object: s.Wire(cur, nil), Parties: []string{cur.MerchantID, cur.UserID, cur.AgentID}, ACP: OrderEvent("order_create", cur, nil)}})
}

// messagesText joins a session's messages, for an error that says why it
// cannot be paid.
func messagesText(sess *pb.CheckoutSession) string {
	var parts []string
	for _, m := range sess.Messages {
		parts = append(parts, m.Content)
	}
	if len(parts) == 0 {
		return string(sess.Status)
	}
	return strings.Join(parts, " ")
}
