package checkout

import (
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// LogOrderUpdated is the type of the log entry of a completed session's
// order changed by a refund of its payment (subject: the session), which
// the webhooks turn into the merchant's event and the agent platform's
// ACP order_update event.
const LogOrderUpdated = pb.LogCheckoutOrderUpdated

type orderUpdatedData struct {
	AmountRefunded int64  `json:"amount_refunded"`
	OrderID        string `json:"order_id"`
	PaymentID      string `json:"payment_id"`
	RefundAmount   int64  `json:"refund_amount"`
	RefundID       string `json:"refund_id"`
}

// Observe is the checkout's ledger observer (ledger.Config.Observers). It
// keeps a session in step with its payment in the payment's own operation,
// so that no read has to finish what a write left undone:
//   - the user's approval of a pending_approval session's payment
//     (payment.authorized or payment.captured) completes the session: its
//     order, its completion and its checkout_session.completed entry;
//   - the user's denial, the confirmation's expiry, or a decline after the
//     approval makes the session payable again and frees its payment token;
//   - a refund of a completed session's payment updates its order, logged
//     with ACP's order_update event for the webhooks.
//
// An error fails the operation that logged the entry (an approval whose
// session cannot be read is not approved); a refund is never failed for
// want of a read, and is then not announced.
func (s *Service) Observe(tx *ledger.Tx, ev pb.LogEvent) error {
	switch ev.Type {
	case pb.LogPaymentRefunded:
		return s.observeRefund(tx, ev)
	case pb.LogConfirmationApproved:
		s.noteApproval(tx, ev.Subject)
	case pb.LogPaymentAuthorized, pb.LogPaymentCaptured, pb.LogPaymentDeclined:
		// Only the outcome of an approval noted just before concerns a
		// session: every other payment's outcome passes without a read.
		if sid, ok := s.approving.LoadAndDelete(ev.Subject); ok {
			return s.settle(tx, ev, sid.(string))
		}
	case pb.LogConfirmationDenied, pb.LogPaymentExpired, pb.LogPaymentCanceled:
		return s.settle(tx, ev, "")
	}
	return nil
}

// noteApproval remembers that the payment approved in this operation is a
// session's, for its outcome, logged next in the same operation. A note
// whose outcome never comes (the operation failed) is dropped by the
// payment's next outcome, which finds nothing to do.
func (s *Service) noteApproval(tx *ledger.Tx, paymentID string) {
	p, err := tx.Payment(paymentID) // read already by the approval
	if err != nil {
		return
	}
	if sid := p.Metadata[pb.MetadataCheckoutSession]; pb.HasPrefix(sid, pb.PrefixCheckoutSession) {
		s.approving.Store(p.ID, sid)
	}
}

// settle applies ev, an entry about the payment of a pending_approval
// session, to the session: completed when the payment was approved,
// payable again otherwise. sid is the session when known. A payment that
// is no such session's is left alone.
func (s *Service) settle(tx *ledger.Tx, ev pb.LogEvent, sid string) error {
	pay, err := tx.Payment(ev.Subject) // as before ev: its operation puts it after logging
	if err != nil || pay.Status != pb.StatusRequiresConfirmation {
		return nil
	}
	if sid == "" {
		sid = pay.Metadata[pb.MetadataCheckoutSession]
	}
	if !pb.HasPrefix(sid, pb.PrefixCheckoutSession) {
		return nil
	}
	cur, err := s.sessionIn(tx, sid)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't read checkout session %s of payment %s: %w", sid, pay.ID, err)
	}
	if cur.Status != pb.CheckoutPendingApproval || cur.PaymentID != pay.ID || completedIn(tx, sid) {
		return nil // a payment whose metadata merely names the session
	}
	cur.UpdatedAt = laterThan(tx.Now(), cur.UpdatedAt)
	switch ev.Type {
	case pb.LogPaymentAuthorized, pb.LogPaymentCaptured:
		agent := pb.Principal{Role: pb.RoleAgent, ID: cur.AgentID, UserID: cur.UserID}
		if err := s.finish(tx, agent, cur, pay.Metadata[pb.MetadataPaymentToken], &pay); err != nil {
			return err
		}
	default:
		if err := s.freeToken(tx, pay.Metadata[pb.MetadataPaymentToken], pay.ID); err != nil {
			return err
		}
		cur.PaymentID, cur.DeclinedPaymentID, cur.ConfirmationURL = "", pay.ID, ""
		price(cur, []pb.CheckoutMessage{{Type: "error", Code: "payment_declined", Resolution: "requires_buyer_input",
			Content: unapproved(ev, &pay)}})
	}
	putSession(tx, cur)
	return nil
}

// unapproved says why a session's payment that waited for its user was
// not made, and what the agent can do.
func unapproved(ev pb.LogEvent, pay *pb.Payment) string {
	again := "; complete the session again with its payment token (or delegate the card again) to ask once more."
	switch ev.Type {
	case pb.LogConfirmationDenied:
		return fmt.Sprintf("The buyer denied payment %s; nothing was charged%s", pay.ID, again)
	case pb.LogPaymentExpired:
		return fmt.Sprintf("The buyer did not approve payment %s before its confirmation expired; nothing was charged%s", pay.ID, again)
	case pb.LogPaymentDeclined:
		var d struct {
			DeclineCode string `json:"decline_code"`
		}
		if b, err := json.Marshal(ev.Data); err == nil {
			json.Unmarshal(b, &d) //nolint:errcheck // a code is only a detail of the message
		}
		return fmt.Sprintf("The buyer approved payment %s, but it was declined (%s); nothing was charged%s", pay.ID, d.DeclineCode, again)
	}
	return fmt.Sprintf("Payment %s was %s before the buyer approved it; nothing was charged%s", pay.ID, ev.Type, again)
}

// freeToken gives token id back for another completion when payment
// paymentID, which held it, was not made: the token's allowance was never
// spent. Its expiry still holds.
func (s *Service) freeToken(tx *ledger.Tx, id, paymentID string) error {
	if !pb.HasPrefix(id, pb.PrefixVaultToken) {
		return nil
	}
	t, err := inTx(tx, tokens, func(t *pb.VaultToken) string { return t.ID }, id, s.st.VaultToken)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't read payment token %s: %w", id, err)
	}
	if t.UsedBy == paymentID {
		t.UsedBy = ""
		ledger.Add(tx, tokens, *t)
	}
	return nil
}

// laterThan is now to the second, and after prev: a session's updates stay
// ordered within a second (UpdatedAt is what an update checks it priced).
func laterThan(now, prev time.Time) time.Time {
	now = now.Truncate(time.Second)
	if !now.After(prev) {
		now = prev.Add(time.Second)
	}
	return now
}

// observeRefund logs the update of a completed session's order by a refund
// of its payment.
func (s *Service) observeRefund(tx *ledger.Tx, ev pb.LogEvent) error {
	p, err := tx.Payment(ev.Subject) // as before this refund: the refund puts it after logging
	if err != nil {
		return nil
	}
	sid := p.Metadata[pb.MetadataCheckoutSession]
	if !pb.HasPrefix(sid, pb.PrefixCheckoutSession) {
		return nil
	}
	sess, err := s.sessionIn(tx, sid)
	if err != nil || sess.Order == nil || sess.PaymentID != p.ID {
		return nil
	}
	var refund struct {
		Amount   int64  `json:"amount"`
		RefundID string `json:"refund_id"`
	}
	if b, err := json.Marshal(ev.Data); err != nil || json.Unmarshal(b, &refund) != nil {
		return nil
	}
	p.AmountRefunded += refund.Amount
	return tx.Log(pb.LogEvent{Type: LogOrderUpdated, Subject: sid, Actor: ev.Actor,
		Data: orderUpdatedData{AmountRefunded: p.AmountRefunded, OrderID: sess.Order.ID, PaymentID: p.ID, RefundAmount: refund.Amount, RefundID: refund.RefundID},
		Notice: &pb.Notice{Object: s.Wire(sess, &p), Parties: []string{sess.MerchantID, sess.UserID, sess.AgentID},
			ACP: OrderEvent("order_update", sess, &p)}})
}
