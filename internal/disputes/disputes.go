// Package disputes is the disputes capability: the payer claims a captured
// payment went wrong; the server reads the payment's history back from the
// transparency log and proposes where the fault lies; the operator resolves
// it with a refund from the merchant, a compensation from the platform's
// fund, or a rejection. It runs over the payments core (Core) and its own
// store interface, and offers its routes to the REST API (Routes).
package disputes

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Core is what disputes needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// Payment returns payment id if caller is a party to it.
	Payment(ctx context.Context, caller pb.Principal, id string) (*pb.Payment, error)
	// Returnable is what may still be returned to p's payer.
	Returnable(tx *ledger.Tx, p *pb.Payment) (int64, error)
	// ApplyRefund refunds amt of p from its merchant, inside tx; the caller
	// puts p.
	ApplyRefund(tx *ledger.Tx, p *pb.Payment, actor pb.Actor, amt int64, reason string) (*pb.Refund, error)
	// Credited tells risk control that payer's wallet was credited.
	Credited(payer string)
}

// Log is what disputes needs of the transparency log (translog.Service).
type Log interface {
	// Integrate places every entry logged so far in the log's tree.
	Integrate(ctx context.Context) error
}

// Store is what disputes reads: its own rows, a payment's log entries (the
// evidence) and the payer's latest payments (a possible duplicate).
type Store interface {
	pb.DisputeStore
	SubjectLog(ctx context.Context, subject string, limit int) ([]pb.LogEntry, error)
	ListPayments(ctx context.Context, f pb.PaymentFilter) ([]pb.Payment, bool, error)
}

// Service is the disputes capability. Safe for concurrent use.
type Service struct {
	core Core
	log  Log
	st   Store
}

// New returns the disputes capability over core, the log and st.
func New(core Core, log Log, st Store) *Service { return &Service{core: core, log: log, st: st} }

// disputeData and compensationData are the data of the entries disputes
// logs (dispute.opened, dispute.resolved, compensation.paid); their fields
// are in JSON-name order, so they encode canonically as they are.
type disputeData struct {
	Amount      int64            `json:"amount"`
	Attribution pb.Attribution   `json:"attribution,omitempty"`
	Check       string           `json:"check,omitempty"`
	Details     string           `json:"details,omitempty"`
	DisputeID   string           `json:"dispute_id"`
	LiableParty string           `json:"liable_party,omitempty"`
	Outcome     string           `json:"outcome,omitempty"`
	Reason      pb.DisputeReason `json:"reason,omitempty"`
}

type compensationData struct {
	Amount         int64  `json:"amount"`
	CompensationID string `json:"compensation_id"`
	DisputeID      string `json:"dispute_id"`
	LiableParty    string `json:"liable_party"`
}

func noDispute(id string) error { return pb.Errorf(pb.ErrNotFound, "id", "no such dispute: %s", id) }

// Open (the payer) disputes a captured payment that is not wholly
// refunded; a payment has at most one open dispute. The dispute carries the
// server's proposal, made from the payment's log entries.
func (s *Service) Open(ctx context.Context, caller pb.Principal, idem *service.Idempotency, paymentID string, reason pb.DisputeReason, details string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	if !slices.Contains(pb.DisputeReasons, reason) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "reason", "reason must be one of not_as_intended, unauthorized, merchant_error, duplicate, other")}
	}
	if len(details) > pb.MaxDisputeDetails || !utf8.ValidString(details) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "details", "details must be valid UTF-8 of at most %d bytes", pb.MaxDisputeDetails)}
	}
	found, err := s.core.Payment(ctx, caller, paymentID)
	if err != nil {
		return service.Result{Err: err}
	}
	// The evidence: every entry of the payment, placed in the tree.
	if err := s.log.Integrate(ctx); err != nil {
		return service.Result{Err: err}
	}
	entries, err := s.st.SubjectLog(ctx, found.ID, pb.MaxLogRead) // as many as a payment's trace holds
	if err != nil {
		return service.Result{Err: err}
	}
	twin, err := s.twin(ctx, found)
	if err != nil {
		return service.Result{Err: err}
	}
	proposal := propose(found, entries, reason, twin)
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := tx.Payment(found.ID)
		if err != nil {
			return nil, err
		}
		left, err := s.core.Returnable(tx, &p)
		if err != nil {
			return nil, err
		}
		if p.Status != pb.StatusCaptured || left == 0 {
			return nil, pb.Errorf(pb.ErrPaymentState, "", "payment %s is %s with nothing left to return; only a captured payment not yet refunded or compensated in full can be disputed (cancel an authorized one instead)", p.ID, p.Status)
		}
		ds, err := tx.PaymentDisputes(p.ID)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Status == pb.DisputeOpen {
				return nil, pb.Errorf(pb.ErrDisputeState, "", "payment %s already has an open dispute, %s", p.ID, d.ID)
			}
		}
		d := pb.Dispute{ID: pb.NewID(pb.PrefixDispute, tx.Now()), Object: "dispute", PaymentID: p.ID, PayerID: p.PayerID,
			MerchantID: p.MerchantID, AgentID: p.AgentID, Status: pb.DisputeOpen, Reason: reason, Details: details,
			Amount: left, Currency: p.Currency, Proposal: proposal,
			CreatedAt: tx.Now().Truncate(time.Second)}
		service.LogPayment(tx, &p, pb.ActorOf(caller), pb.LogDisputeOpened, disputeData{DisputeID: d.ID, Reason: reason, Details: details,
			Amount: d.Amount, Attribution: proposal.Attribution, Check: proposal.Check})
		tx.PutPayment(p)
		tx.PutDispute(d)
		return &d, nil
	})
}

// ResolveParams is the operator's decision on a dispute.
type ResolveParams struct {
	Outcome     string
	Amount      *int64 // refund_partial only
	LiableParty string
}

// Resolve (operator) decides an open dispute. A refund with the
// merchant liable is a refund from the merchant; with the platform or the
// agent's operator liable, a compensation from the platform's compensation
// fund (the platform pays now, and recovers from an agent operator outside
// Paybound). A rejection moves nothing. Each is in the ledger and the log.
func (s *Service) Resolve(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, in ResolveParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(id, pb.PrefixDispute) {
		return service.Result{Err: noDispute(id)}
	}
	if err := checkDecision(in); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		d, err := tx.Dispute(id)
		if pb.ErrorCode(err) == pb.ErrNotFound {
			return nil, noDispute(id)
		}
		if err != nil {
			return nil, err
		}
		if d.Status != pb.DisputeOpen {
			return nil, pb.Errorf(pb.ErrDisputeState, "", "dispute %s is already resolved (%s)", d.ID, d.Resolution.Outcome)
		}
		p, err := tx.Payment(d.PaymentID)
		if err != nil {
			return nil, err
		}
		res, err := s.resolution(tx, &p, in)
		if err != nil {
			return nil, err
		}
		actor := pb.ActorOf(caller)
		if err := s.settle(tx, &p, actor, &d, res); err != nil {
			return nil, err
		}
		d.Status, d.Resolution = pb.DisputeResolved, res
		service.LogPayment(tx, &p, actor, pb.LogDisputeResolved, disputeData{DisputeID: d.ID, Amount: res.Amount,
			Outcome: res.Outcome, LiableParty: res.LiableParty, Attribution: d.Proposal.Attribution})
		tx.PutPayment(p)
		tx.PutDispute(d)
		return &d, nil
	})
}

// checkDecision checks the decision on its own, before the writer reads
// anything: an outcome with an amount only for refund_partial (and a valid
// one there), and a liable party, the user only with reject. It returns
// ErrParameterInvalid or ErrParameterMissing naming the field, or the
// amount's validation error.
func checkDecision(in ResolveParams) error {
	switch in.Outcome {
	case pb.OutcomeRefundFull, pb.OutcomeReject:
		if in.Amount != nil {
			return pb.Errorf(pb.ErrParameterInvalid, "amount", "amount is only for refund_partial")
		}
	case pb.OutcomeRefundPartial:
		if in.Amount == nil {
			return pb.Errorf(pb.ErrParameterMissing, "amount", "refund_partial needs an amount")
		}
		if err := pb.ValidateAmount(*in.Amount, "amount"); err != nil {
			return err
		}
	default:
		return pb.Errorf(pb.ErrParameterInvalid, "outcome", "outcome must be refund_full, refund_partial or reject")
	}
	switch in.LiableParty {
	case pb.LiableMerchant, pb.LiableAgentOperator, pb.LiablePlatform:
	case pb.LiableUser:
		if in.Outcome != pb.OutcomeReject {
			return pb.Errorf(pb.ErrParameterInvalid, "liable_party", "when the user is liable nobody pays them back: resolve with reject")
		}
	default:
		return pb.Errorf(pb.ErrParameterInvalid, "liable_party", "liable_party must be merchant, agent_operator, platform or user")
	}
	return nil
}

// resolution is the decision in against payment p as the writer sees it:
// a full refund returns what is left to return, a partial one its amount,
// a rejection nothing. It returns ErrAmountTooLarge when the amount exceeds
// what is left, or a full refund finds nothing left, and the ledger's
// errors.
func (s *Service) resolution(tx *ledger.Tx, p *pb.Payment, in ResolveParams) (*pb.Resolution, error) {
	left, err := s.core.Returnable(tx, p)
	if err != nil {
		return nil, err
	}
	res := &pb.Resolution{Outcome: in.Outcome, LiableParty: in.LiableParty, ResolvedAt: tx.Now().Truncate(time.Second)}
	switch in.Outcome {
	case pb.OutcomeRefundFull:
		res.Amount = left
	case pb.OutcomeRefundPartial:
		res.Amount = *in.Amount
	}
	if res.Amount > left || (in.Outcome == pb.OutcomeRefundFull && left == 0) {
		return nil, pb.Errorf(pb.ErrAmountTooLarge, "amount", "%s %s of payment %s is left to return; the merchant refunded the rest already",
			pb.FormatAmount(left, p.Currency), p.Currency, p.ID)
	}
	return res, nil
}

// settle moves res.Amount back to the payer, in tx: nothing for a zero
// amount, a refund from the merchant when the merchant is liable, else a
// compensation from the fund. It sets res.RefundID or res.CompensationID.
// A merchant who can't cover the refund is DeclineInsufficientFunds on
// liable_party; other errors are the ledger's.
func (s *Service) settle(tx *ledger.Tx, p *pb.Payment, actor pb.Actor, d *pb.Dispute, res *pb.Resolution) error {
	switch {
	case res.Amount == 0:
	case res.LiableParty == pb.LiableMerchant:
		r, err := s.core.ApplyRefund(tx, p, actor, res.Amount, "dispute "+d.ID)
		if pb.ErrorCode(err) == pb.DeclineInsufficientFunds {
			return pb.Errorf(pb.DeclineInsufficientFunds, "liable_party", "the merchant's balance cannot cover the refund; the platform may compensate instead (liable_party platform)")
		}
		if err != nil {
			return err
		}
		res.RefundID = r.ID
	default:
		var err error
		if res.CompensationID, err = s.compensate(tx, p, actor, d, res); err != nil {
			return err
		}
	}
	return nil
}

// compensate pays res.Amount to the payer from the compensation fund.
func (s *Service) compensate(tx *ledger.Tx, p *pb.Payment, actor pb.Actor, d *pb.Dispute, res *pb.Resolution) (string, error) {
	id := pb.NewID(pb.PrefixCompensation, tx.Now())
	s.core.Credited(p.PayerID)
	err := tx.Atomic(func() error {
		wallet, err := tx.Account(p.PayerID, p.Currency)
		if err != nil {
			return err
		}
		// The fund may go negative: the platform pays what it promised.
		fund, err := tx.EnsureAccount(pb.OwnerCompensation, p.Currency, 0)
		if err != nil {
			return err
		}
		_, err = tx.Transfer(fund, wallet, res.Amount, id)
		return err
	})
	if err != nil {
		return "", err
	}
	service.LogPayment(tx, p, actor, pb.LogCompensationPaid, compensationData{CompensationID: id, DisputeID: d.ID, Amount: res.Amount, LiableParty: res.LiableParty})
	return id, nil
}

// Dispute returns dispute id to the payer, the merchant or the operator.
func (s *Service) Dispute(ctx context.Context, caller pb.Principal, id string) (*pb.Dispute, error) {
	if !pb.HasPrefix(id, pb.PrefixDispute) {
		return nil, noDispute(id)
	}
	d, err := s.st.Dispute(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !disputeParty(d, caller)) {
		return nil, noDispute(id)
	}
	return d, err
}

func disputeParty(d *pb.Dispute, c pb.Principal) bool {
	switch c.Role {
	case pb.RoleOperator:
		return true
	case pb.RoleUser:
		return d.PayerID == c.ID
	case pb.RoleMerchant:
		return d.MerchantID == c.ID
	}
	return false
}

// List lists, newest first, the disputes caller is a party to,
// optionally only those with status.
func (s *Service) List(ctx context.Context, caller pb.Principal, status, startingAfter string, limit int) ([]pb.Dispute, bool, error) {
	f := pb.DisputeFilter{Status: status, StartingAfter: startingAfter, Limit: limit}
	switch caller.Role {
	case pb.RoleOperator:
	case pb.RoleUser:
		f.PayerID = caller.ID
	case pb.RoleMerchant:
		f.MerchantID = caller.ID
	default:
		return nil, false, pb.Errorf(pb.ErrForbidden, "", "agents cannot see disputes; the user who paid can")
	}
	if status != "" && status != pb.DisputeOpen && status != pb.DisputeResolved {
		return nil, false, pb.Errorf(pb.ErrParameterInvalid, "status", "status must be open or resolved")
	}
	return s.st.ListDisputes(ctx, f)
}

// twinWindow is how close in time two equal payments must be for one to
// look like a duplicate of the other.
const twinWindow = 10 * time.Minute

// twin returns another captured payment of p's payer to the same merchant,
// of the same amount, made within twinWindow of p, if the payer's latest
// payments hold one.
func (s *Service) twin(ctx context.Context, p *pb.Payment) (*pb.Payment, error) {
	ps, _, err := s.st.ListPayments(ctx, pb.PaymentFilter{PayerID: p.PayerID, Limit: pb.MaxListLimit})
	if err != nil {
		return nil, err
	}
	for i := range ps {
		q := &ps[i]
		d := q.CreatedAt.Sub(p.CreatedAt)
		if q.ID != p.ID && q.MerchantID == p.MerchantID && q.Amount == p.Amount && q.Currency == p.Currency &&
			q.AmountCaptured > 0 && d < twinWindow && d > -twinWindow {
			return q, nil
		}
	}
	return nil, nil
}

// The fields of the core's entries that a proposal reads: the log's entry
// format, as any auditor reads it.
type (
	capturedEntry struct {
		Amount int64 `json:"amount"`
	}
	authorizedEntry struct {
		Basis string `json:"basis"`
	}
	askedEntry struct {
		Reason string `json:"reason"`
	}
	approvedEntry struct {
		Factor string `json:"factor"`
	}
)

// event is a log entry as the proposal reads it.
type event struct {
	Index int64
	Type  string          `json:"type"`
	Time  time.Time       `json:"time"`
	Actor pb.Actor        `json:"actor"`
	Data  json.RawMessage `json:"data"`
}

// propose reads a payment's entries and places the fault. The order of the
// rules is the order of certainty: a merchant's capture that the log shows
// was wrong, then an agent that got past its mandate, then a payment the
// mandate allowed as written, then nothing.
func propose(p *pb.Payment, entries []pb.LogEntry, reason pb.DisputeReason, twin *pb.Payment) pb.Proposal {
	var evs []event
	prop := pb.Proposal{Evidence: []int64{}}
	for _, e := range entries {
		var ev event
		if json.Unmarshal(e.Body, &ev) != nil {
			continue // the server's own entries always decode
		}
		ev.Index = e.Index
		evs = append(evs, ev)
		prop.Evidence = append(prop.Evidence, e.Index)
	}
	amt := func(v int64) string { return pb.FormatAmount(v, p.Currency) + " " + p.Currency }
	var created, asked, approved, authorized *event
	var captures []*event
	var ended *event // canceled or expired
	capturedSum := int64(0)
	for i := range evs {
		ev := &evs[i]
		switch ev.Type {
		case pb.LogPaymentCreated:
			created = ev
		case pb.LogConfirmationAsked:
			asked = ev
		case pb.LogConfirmationApproved:
			approved = ev
		case pb.LogPaymentAuthorized:
			authorized = ev
		case pb.LogPaymentCaptured:
			var c capturedEntry
			json.Unmarshal(ev.Data, &c)
			capturedSum += c.Amount
			if ended != nil {
				prop.Attribution, prop.Check = pb.AttributionMerchantError, "capture_after_"+ended.Type
				prop.Explanation = fmt.Sprintf("the merchant captured %s at %s after the payment was %s at %s (entries %d and %d)",
					amt(c.Amount), stampOf(ev.Time), ended.Type, stampOf(ended.Time), ended.Index, ev.Index)
				return prop
			}
			captures = append(captures, ev)
		case pb.LogPaymentCanceled, pb.LogPaymentExpired:
			ended = ev
		}
	}
	switch {
	case len(captures) > 1:
		prop.Attribution, prop.Check = pb.AttributionMerchantError, "duplicate_capture"
		prop.Explanation = fmt.Sprintf("the merchant captured the payment %d times (entries %d and %d)", len(captures), captures[0].Index, captures[1].Index)
		return prop
	case capturedSum > p.Amount:
		prop.Attribution, prop.Check = pb.AttributionMerchantError, "capture_above_authorized"
		prop.Explanation = fmt.Sprintf("the merchant captured %s, more than the %s ordered", amt(capturedSum), amt(p.Amount))
		return prop
	}
	byAgent := created != nil && created.Actor.Role == pb.RoleAgent
	basis := ""
	if authorized != nil {
		var a authorizedEntry
		json.Unmarshal(authorized.Data, &a)
		basis = a.Basis
	}
	twinNote := ""
	if reason == pb.ReasonDuplicate && twin != nil {
		twinNote = fmt.Sprintf("; payment %s of the same amount to the same merchant was made %s apart", twin.ID, absDuration(twin.CreatedAt.Sub(p.CreatedAt)))
	}
	var q askedEntry
	var a approvedEntry
	if asked != nil && approved != nil {
		json.Unmarshal(asked.Data, &q)
		json.Unmarshal(approved.Data, &a)
	}
	switch {
	case byAgent && basis == pb.BasisConfirmation && asked != nil && approved != nil && q.Reason == pb.ConfirmRiskReview:
		// Within the mandate, flagged by risk control, and the user
		// confirmed it anyway: what they asked for is what happened.
		prop.Attribution, prop.Check = pb.AttributionUserIntentUnclear, "risk_review"
		prop.Explanation = fmt.Sprintf("risk control asked the user to confirm this payment (entry %d) and the user confirmed it with %s (entry %d)%s",
			asked.Index, a.Factor, approved.Index, twinNote)
	case byAgent && basis == pb.BasisConfirmation && asked != nil && approved != nil:
		why := "no mandate covered it"
		if q.Reason == pb.ConfirmAboveConfirm {
			why = "it was above the mandate's confirm_above"
		}
		prop.Attribution, prop.Check = pb.AttributionAgentOutOfScope, "user_confirmation"
		prop.Explanation = fmt.Sprintf("agent %s asked for a payment its mandate did not allow (%s); the user's confirmation with %s let it through, %s after it was asked (entries %d and %d)%s",
			created.Actor.ID, why, a.Factor, approved.Time.Sub(asked.Time).Round(time.Second), asked.Index, approved.Index, twinNote)
	case byAgent && reason == pb.ReasonUnauthorized && created.Actor.Assurance == pb.AssuranceBearer:
		prop.Attribution, prop.Check = pb.AttributionAgentOutOfScope, "bearer_key"
		prop.Explanation = fmt.Sprintf("the request came with agent %s's bearer key, not a signature (entry %d): whoever held the key could make it%s",
			created.Actor.ID, created.Index, twinNote)
	case byAgent && basis == pb.BasisMandate:
		prop.Attribution, prop.Check = pb.AttributionUserIntentUnclear, "mandate"
		prop.Explanation = fmt.Sprintf("every check of mandate %s passed (entry %d): the payment of %s was within the mandate as the user wrote it%s",
			p.MandateID, authorized.Index, amt(p.Amount), twinNote)
	default:
		prop.Attribution, prop.Check = pb.AttributionNone, basis
		prop.Explanation = "the log shows the payment made and captured as authorized" + twinNote
		if basis == pb.BasisUser {
			prop.Explanation = "the user made this payment with their own key, and the merchant captured it as authorized" + twinNote
		}
	}
	return prop
}

func stampOf(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
