package checkout

import (
	"encoding/json"

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

// Observe is the checkout's ledger observer (ledger.Config.Observers): a
// refund of a completed session's payment updates its order, which it logs
// in the refund's own batch, with ACP's order_update event for the
// webhooks. It never fails a refund for want of a read: a refund whose
// session cannot be read is not announced.
func (s *Service) Observe(tx *ledger.Tx, ev pb.LogEvent) error {
	if ev.Type != pb.LogPaymentRefunded {
		return nil
	}
	p, err := tx.Payment(ev.Subject) // as before this refund: the refund puts it after logging
	if err != nil {
		return nil
	}
	sid := p.Metadata["checkout_session_id"]
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
