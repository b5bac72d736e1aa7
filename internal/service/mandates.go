package service

import (
	"errors"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// MandatePolicy is what the payments core asks of mandates
// (internal/mandates' Policy) while it authorizes a payment an agent makes
// under a mandate, and while it releases what such a payment held. Every
// method runs in the ledger writer, inside tx, and writes only through tx
// (a mandate's usage rows), so that the core's Atomic undoes it with the
// rest. The core itself finds the mandate (tx.Mandate), declines it when it
// is not its payer's or not in force (pb.Mandate.InForce), relies on it
// (tx.RelyOnMandate), asks for the user's confirmation
// (pb.Mandate.NeedsConfirmation) and places the hold; the policy does the
// rest. Config.Mandates is required.
type MandatePolicy interface {
	// Check runs m's checks for p, to merchant, in order, and m's
	// condition last; it returns the decline code, or "" when m allows p.
	// A budget or max_payments decline is confirmed against the stored
	// usage rows first (tx.RefreshUsage): this writer's may lag what other
	// processes gave back. It is not run for a payment its user approved.
	Check(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment, merchant *pb.Merchant) (pb.Code, error)
	// Reserve takes p's amount from m's budget and counts the payment,
	// inside the core's Atomic with the hold; it fails with an error that
	// is ledger.ErrUsageCap when a cap was reached meanwhile (by this batch,
	// or another process's).
	Reserve(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment) error
	// CapDecline names the cap a failed Reserve hit, once the core's
	// Atomic undid it: pb.DeclineMandateMaxPayments or
	// pb.DeclineMandateBudgetExhausted.
	CapDecline(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment) pb.Code
	// GiveBack returns amount of p's reservation to its mandate's budget
	// (in the period p was made in): the part of a hold that was voided,
	// expired or not captured, and what was refunded. It does nothing for
	// a payment without a mandate, or an amount that is not positive; the
	// payment still counts towards max_payments.
	GiveBack(tx *ledger.Tx, p *pb.Payment, amount int64) error
	// Message explains decline code of m for p in m's own terms (now is
	// the writer's time, for a schedule).
	Message(code pb.Code, m *pb.Mandate, p *pb.Payment, now time.Time) string
}

// usageDecline names the cap a reservation hit.
func usageDecline(err error) bool { return errors.Is(err, ledger.ErrUsageCap) }
