package service

import (
	"context"

	pb "github.com/paybound/paybound"
)

// RiskControl is what the payments core asks of risk control
// (internal/riskctl's Control). CreatePayment asks it to assess an attempt
// before the ledger writer, records the assessment in the payment (a
// blocked one declines it, with Message), and tells it the outcome once
// the operation committed; the core tells it whenever a payer's wallet is
// credited, and asks it to open a payment's logged risk commitment.
// Config.Risk is required.
type RiskControl interface {
	// Assess evaluates an attempt, outside the writer: it reads the
	// payer's recent payments, the wallet's balance and the operator's
	// rules, and returns the assessment (with its commitment, and the
	// input it saw less the payment's own fields) and the decision counted
	// in Decisions. The attempt stays counted, as a provisional entry
	// named token, until the caller settles it with Note, whatever the
	// outcome; on an error there is nothing to settle.
	Assess(ctx context.Context, a RiskAttempt) (r *pb.Risk, token string, err error)
	// Note records p, just committed (a new payment, or one approved,
	// denied, captured or canceled), in its payer's book, in place of the
	// provisional entry token when there is one ("" for none); p may be
	// nil (the attempt made no payment, or replayed one). category is p's
	// merchant's. It reads no store.
	Note(payer string, p *pb.Payment, category, token string)
	// Credited tells risk control that payer's wallet is being credited,
	// inside the ledger operation that credits it: the balance it keeps
	// is read again. It takes no lock held across a read of the store.
	Credited(payer string)
	// Message explains a risk decline (r's decision is block) to whoever
	// asked for the payment, in the writer.
	Message(r *pb.Risk) string
	// Opening opens p's risk commitment, logged as commitment, for a party
	// that may read it (partial: an agent), or returns nil (and logs why).
	Opening(ctx context.Context, p *pb.Payment, commitment string, partial bool) *pb.RiskOpening
	// Decisions returns how many payments were assessed, by decision,
	// since start.
	Decisions() map[pb.RiskDecision]int64
}

// RiskAttempt is the payment attempt CreatePayment asks risk control to
// assess: the validated parameters, the merchant (which exists), the payer,
// the agent ("" for the user) and the request's assurance.
type RiskAttempt struct {
	Params                  *CreatePaymentParams
	Merchant                *pb.Merchant
	Payer, Agent, Assurance string
}

// noted records the payment a committed operation returned (a new one, or
// one the user approved or denied, captured or canceled) in its payer's
// book, and passes the outcome on.
func (s *Service) noted(v any, replayed bool, err error) Result {
	if p, ok := v.(*pb.Payment); ok && !replayed {
		s.noteRisk(p.PayerID, p, "")
	}
	return result(v, replayed, err)
}

// Noted records the payment r carries, committed by a capability's
// operation (one its user approved or denied, through step-up), in its
// payer's book as noted does the core's own, and returns r unchanged.
func (s *Service) Noted(r Result) Result { return s.noted(r.Value, r.Replayed, r.Err) }

// noteRisk tells risk control p's outcome (RiskControl.Note), with its
// merchant's category.
func (s *Service) noteRisk(payer string, p *pb.Payment, token string) {
	var category string
	if p != nil {
		s.keyMu.RLock()
		category = s.merchants[p.MerchantID].Category
		s.keyMu.RUnlock()
	}
	s.cfg.Risk.Note(payer, p, category, token)
}

// Credited makes risk control read payer's balance from the store again:
// call it wherever this process adds to a payer's wallet (a top-up, a
// refund, a released hold, a compensation), inside the ledger operation.
// It is RiskControl.Credited, for the capabilities that credit a wallet.
func (s *Service) Credited(payer string) { s.cfg.Risk.Credited(payer) }

// RiskOpening opens p's risk commitment, logged as commitment, for a
// party that may read it (partial: an agent): the transparency log's trace
// and receipt give it. It is RiskControl.Opening, for the log.
func (s *Service) RiskOpening(ctx context.Context, p *pb.Payment, commitment string, partial bool) *pb.RiskOpening {
	return s.cfg.Risk.Opening(ctx, p, commitment, partial)
}

// RiskDecisions returns how many payments risk control assessed, by
// decision, since start (RiskControl.Decisions, for metrics).
func (s *Service) RiskDecisions() map[pb.RiskDecision]int64 { return s.cfg.Risk.Decisions() }

// validProvenance checks a request's provenance field.
func validProvenance(v, param string) error {
	switch v {
	case "", pb.ProvenanceUnknown, pb.ProvenanceUser, pb.ProvenanceUntrusted:
		return nil
	}
	return pb.Errorf(pb.ErrParameterInvalid, param, "%s must be user, untrusted or unknown", param)
}
