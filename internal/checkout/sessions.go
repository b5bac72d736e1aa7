package checkout

import (
	"context"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// LineParams is one product of a session and how many of it.
type LineParams struct {
	ProductID string
	Quantity  int64
}

// SessionParams is a new session, or (with nil fields kept) a change to
// one. Lines replace the session's lines whole.
type SessionParams struct {
	Currency           string
	Lines              []LineParams // nil: unchanged (update)
	Buyer              *pb.Buyer
	FulfillmentDetails *pb.FulfillmentDetails
	// Selected are the fulfillment option IDs the buyer chose (update);
	// each must be one the session offers.
	Selected []string
}

// The fulfillment options the checkout offers, one per kind: Paybound
// carries no shipping rates, so both are free, and a shipped line only
// needs an address.
var fulfillmentOptions = map[pb.Fulfillment]pb.FulfillmentOption{
	pb.FulfillmentDigital:  {ID: "fo_digital", Type: pb.FulfillmentDigital, Title: "Digital delivery"},
	pb.FulfillmentShipping: {ID: "fo_shipping_standard", Type: pb.FulfillmentShipping, Title: "Standard shipping"},
}

func noSession(id string) error {
	return pb.Errorf(pb.ErrNotFound, "checkout_session_id", "no such checkout session: %s", id)
}

// CreateSession (an agent, for its user) opens a session at merchantID,
// priced from its catalog: each line's product must be active, the
// merchant's, and priced in the session's currency.
func (s *Service) CreateSession(ctx context.Context, caller pb.Principal, idem *service.Idempotency, merchantID string, p SessionParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	m, err := s.core.Merchant(ctx, merchantID)
	if err != nil {
		return service.Result{Err: err}
	}
	if m == nil {
		return service.Result{Err: pb.Errorf(pb.ErrNotFound, "merchant_id", "no such merchant: %s", merchantID)}
	}
	if p.Currency == "" {
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "currency", "currency is required: an ISO 4217 code such as usd")}
	}
	if err := pb.ValidateCurrency(p.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	if len(p.Lines) == 0 {
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "line_items", "line_items needs at least one item")}
	}
	if len(p.Selected) > 0 {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "selected_fulfillment_options", "fulfillment options are chosen by updating the session")}
	}
	if err := checkContact(p.Buyer, p.FulfillmentDetails); err != nil {
		return service.Result{Err: err}
	}
	now := s.now()
	sess := &pb.CheckoutSession{ID: pb.NewID(pb.PrefixCheckoutSession, now), MerchantID: merchantID, AgentID: caller.ID, UserID: caller.UserID,
		Currency: p.Currency, Buyer: p.Buyer, FulfillmentDetails: p.FulfillmentDetails, CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(pb.CheckoutSessionTTL)}
	if err := s.setLines(ctx, sess, p.Lines); err != nil {
		return service.Result{Err: err}
	}
	price(sess, nil)
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		putSession(tx, sess)
		return sess, nil
	})
}

// UpdateSession (its agent) changes an open session's lines, buyer,
// fulfillment details or chosen options, and prices it again from the
// catalog.
func (s *Service) UpdateSession(ctx context.Context, caller pb.Principal, idem *service.Idempotency, merchantID, id string, p SessionParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	if p.Currency != "" {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "currency", "a session's currency cannot change; open another session")}
	}
	if p.Lines != nil && len(p.Lines) == 0 {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "line_items", "line_items needs at least one item; cancel the session to buy nothing")}
	}
	if err := checkContact(p.Buyer, p.FulfillmentDetails); err != nil {
		return service.Result{Err: err}
	}
	release, err := s.exclusive(ctx, id, idem)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	found, err := s.agentSession(ctx, caller, merchantID, id)
	if err != nil {
		return s.refuse(ctx, idem, err)
	}
	next := *found
	if p.Lines != nil {
		if err := s.setLines(ctx, &next, p.Lines); err != nil {
			return service.Result{Err: err}
		}
	}
	if p.Buyer != nil {
		next.Buyer = p.Buyer
	}
	if p.FulfillmentDetails != nil {
		next.FulfillmentDetails = p.FulfillmentDetails
	}
	for i, o := range p.Selected {
		if !slices.ContainsFunc(next.Options, func(x pb.FulfillmentOption) bool { return x.ID == o }) {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, fmt.Sprintf("selected_fulfillment_options[%d].option_id", i),
				"fulfillment option %q is not one this session offers", o)}
		}
	}
	price(&next, nil)
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		cur, err := s.openIn(tx, id)
		if err != nil {
			return nil, err
		}
		if !cur.UpdatedAt.Equal(found.UpdatedAt) || cur.Status != found.Status {
			return nil, pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s changed while this update was priced; send it again", id)
		}
		next.UpdatedAt = tx.Now().Truncate(time.Second)
		if !next.UpdatedAt.After(found.UpdatedAt) {
			next.UpdatedAt = found.UpdatedAt.Add(time.Second) // updates stay ordered within a second
		}
		next.Version = cur.Version
		putSession(tx, &next)
		return &next, nil
	})
}

// Session returns session id at merchantID to its agent, its user, its
// merchant or the operator, with its status as of now. It writes nothing:
// a session waiting for its user's approval is settled by the approval's
// own operation (Observe).
func (s *Service) Session(ctx context.Context, caller pb.Principal, merchantID, id string) (*pb.CheckoutSession, error) {
	sess, err := s.visibleSession(ctx, caller, merchantID, id)
	if err != nil {
		return nil, err
	}
	sess.Status = sess.StatusAt(s.clock.Now())
	return sess, nil
}

// SessionJSON is Session as ACP shows it; a completed session's order
// shows what its payment refunded so far.
func (s *Service) SessionJSON(ctx context.Context, caller pb.Principal, merchantID, id string) (*SessionJSON, error) {
	sess, err := s.Session(ctx, caller, merchantID, id)
	if err != nil {
		return nil, err
	}
	var pay *pb.Payment
	if sess.Order != nil {
		if pay, err = s.core.Payment(ctx, pb.Principal{Role: pb.RoleOperator, ID: "operator"}, sess.PaymentID); err != nil {
			return nil, err
		}
	}
	return s.Wire(sess, pay), nil
}

// CancelSession (its agent) cancels an open session: it can no longer be
// completed. A completed or canceled session cannot be canceled.
func (s *Service) CancelSession(ctx context.Context, caller pb.Principal, idem *service.Idempotency, merchantID, id string) service.Result {
	if err := service.RequireRole(caller, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	release, err := s.exclusive(ctx, id, idem)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	if _, err := s.agentSession(ctx, caller, merchantID, id); err != nil {
		return s.refuse(ctx, idem, err)
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		cur, err := s.openIn(tx, id)
		if err != nil {
			return nil, err
		}
		now := tx.Now().Truncate(time.Second)
		cur.Status, cur.CanceledAt, cur.UpdatedAt = pb.CheckoutCanceled, &now, now
		cur.Messages = []pb.CheckoutMessage{{Type: "info", Content: "Checkout session has been canceled."}}
		putSession(tx, cur)
		return cur, nil
	})
}

// openIn returns session id as of this point in the batch if it can still
// change.
func (s *Service) openIn(tx *ledger.Tx, id string) (*pb.CheckoutSession, error) {
	cur, err := s.sessionIn(tx, id)
	if err != nil {
		return nil, err
	}
	return cur, openAt(cur, tx.Now())
}

// openAt refuses a session that can no longer change at now.
func openAt(sess *pb.CheckoutSession, now time.Time) error {
	switch st := sess.StatusAt(now); st {
	case pb.CheckoutNotReady, pb.CheckoutReady:
		return nil
	case pb.CheckoutCompleted:
		return pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s is completed (order %s, payment %s); it cannot change", sess.ID, sess.Order.ID, sess.PaymentID)
	case pb.CheckoutPendingApproval:
		return pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s waits for its user to approve payment %s; it cannot change", sess.ID, sess.PaymentID)
	default:
		return pb.Errorf(pb.ErrCheckoutState, "", "checkout session %s is %s; it cannot change", sess.ID, st)
	}
}

// visibleSession returns the session if caller is a party to it and it is
// at merchantID; anything else is not found.
func (s *Service) visibleSession(ctx context.Context, caller pb.Principal, merchantID, id string) (*pb.CheckoutSession, error) {
	if !pb.HasPrefix(id, pb.PrefixCheckoutSession) {
		return nil, noSession(id)
	}
	sess, err := s.st.CheckoutSession(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, noSession(id)
	}
	if err != nil {
		return nil, err
	}
	party := false
	switch caller.Role {
	case pb.RoleOperator:
		party = true
	case pb.RoleAgent:
		party = sess.AgentID == caller.ID
	case pb.RoleUser:
		party = sess.UserID == caller.ID
	case pb.RoleMerchant:
		party = sess.MerchantID == caller.ID
	}
	if !party || sess.MerchantID != merchantID {
		return nil, noSession(id)
	}
	return sess, nil
}

// Parties returns the IDs of the parties to session id (its merchant, its
// user and its agent), who may read its log entries as they read it; a
// session that does not exist is ErrNotFound.
func (s *Service) Parties(ctx context.Context, id string) ([]string, error) {
	if !pb.HasPrefix(id, pb.PrefixCheckoutSession) {
		return nil, noSession(id)
	}
	sess, err := s.st.CheckoutSession(ctx, id)
	if err != nil {
		return nil, err
	}
	return []string{sess.MerchantID, sess.UserID, sess.AgentID}, nil
}

// agentSession is visibleSession for the session's own agent.
func (s *Service) agentSession(ctx context.Context, caller pb.Principal, merchantID, id string) (*pb.CheckoutSession, error) {
	sess, err := s.visibleSession(ctx, caller, merchantID, id)
	if err != nil {
		return nil, err
	}
	if err := openAt(sess, s.clock.Now()); err != nil {
		return nil, err
	}
	return sess, nil
}

// setLines prices lines from the catalog into sess: one line per product
// (quantities of a product named twice add up), each product active, the
// merchant's and in the session's currency. A line keeps its ID while its
// product stays in the session.
func (s *Service) setLines(ctx context.Context, sess *pb.CheckoutSession, lines []LineParams) error {
	var out []pb.CheckoutLine
	for i, l := range lines {
		param := fmt.Sprintf("line_items[%d]", i)
		if l.Quantity < 1 || l.Quantity > pb.MaxLineQuantity {
			return pb.Errorf(pb.ErrParameterInvalid, param+".quantity", "quantity must be from 1 to %d", pb.MaxLineQuantity)
		}
		if j := slices.IndexFunc(out, func(x pb.CheckoutLine) bool { return x.ProductID == l.ProductID }); j >= 0 {
			if out[j].Quantity += l.Quantity; out[j].Quantity > pb.MaxLineQuantity {
				return pb.Errorf(pb.ErrParameterInvalid, param, "at most %d of one product per session", pb.MaxLineQuantity)
			}
			continue
		}
		if len(out) == pb.MaxSessionLines {
			return pb.Errorf(pb.ErrParameterInvalid, "line_items", "a session holds at most %d products", pb.MaxSessionLines)
		}
		if !pb.HasPrefix(l.ProductID, pb.PrefixProduct) {
			return pb.Errorf(pb.ErrProductUnavailable, param+".id", "%.100q is not a product ID (prod_…)", l.ProductID)
		}
		p, err := s.st.Product(ctx, l.ProductID)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && p.MerchantID != sess.MerchantID) {
			return pb.Errorf(pb.ErrProductUnavailable, param+".id", "merchant %s sells no product %s", sess.MerchantID, l.ProductID)
		}
		if err != nil {
			return err
		}
		switch {
		case !p.Active:
			return pb.Errorf(pb.ErrProductUnavailable, param+".id", "product %s (%s) is no longer sold", p.ID, p.Name)
		case p.Currency != sess.Currency:
			return pb.Errorf(pb.ErrProductUnavailable, param+".id", "product %s is priced in %s, the session in %s", p.ID, p.Currency, sess.Currency)
		}
		id := pb.NewID(pb.PrefixLineItem, s.clock.Now())
		if k := slices.IndexFunc(sess.Lines, func(x pb.CheckoutLine) bool { return x.ProductID == p.ID }); k >= 0 {
			id = sess.Lines[k].ID
		}
		out = append(out, pb.CheckoutLine{ID: id, ProductID: p.ID, Name: p.Name, SKU: p.SKU, Fulfillment: p.Fulfillment,
			Quantity: l.Quantity, UnitAmount: p.Price})
	}
	total := int64(0)
	for i := range out {
		out[i].Total = out[i].UnitAmount * out[i].Quantity // ≤ 10^15 × 1000: no overflow
		if total += out[i].Total; total > pb.MaxAmount {
			return pb.Errorf(pb.ErrAmountTooLarge, "line_items", "the session's total would exceed %s %s", pb.FormatAmount(pb.MaxAmount, sess.Currency), sess.Currency)
		}
	}
	sess.Lines = out
	return nil
}

// price computes sess's options, totals, messages and status from its
// lines and details; extra messages come first.
func price(sess *pb.CheckoutSession, extra []pb.CheckoutMessage) {
	sess.Options = nil
	sess.ItemsAmount, sess.FulfillmentAmount = 0, 0
	for _, kind := range []pb.Fulfillment{pb.FulfillmentDigital, pb.FulfillmentShipping} {
		o := fulfillmentOptions[kind]
		o.LineIDs = nil
		for _, l := range sess.Lines {
			if l.Fulfillment == kind {
				o.LineIDs = append(o.LineIDs, l.ID)
			}
		}
		if len(o.LineIDs) > 0 {
			sess.Options = append(sess.Options, o)
			sess.FulfillmentAmount += o.Amount
		}
	}
	for _, l := range sess.Lines {
		sess.ItemsAmount += l.Total
	}
	sess.Total = sess.ItemsAmount + sess.FulfillmentAmount
	sess.Messages = append([]pb.CheckoutMessage{}, extra...)
	sess.Status = pb.CheckoutReady
	if slices.ContainsFunc(sess.Lines, func(l pb.CheckoutLine) bool { return l.Fulfillment == pb.FulfillmentShipping }) &&
		(sess.FulfillmentDetails == nil || sess.FulfillmentDetails.Address == nil) {
		sess.Status = pb.CheckoutNotReady
		sess.Messages = append(sess.Messages, pb.CheckoutMessage{Type: "error", Code: "missing", Param: "$.fulfillment_details.address",
			Resolution: "requires_buyer_input", Content: "Shipped items need a delivery address: update the session with fulfillment_details.address."})
	}
}

// checkContact validates a buyer and fulfillment details.
func checkContact(b *pb.Buyer, fd *pb.FulfillmentDetails) error {
	if b != nil {
		if err := checkEmail(b.Email, "buyer.email", true); err != nil {
			return err
		}
		for _, f := range []struct{ v, name string }{{b.FirstName, "first_name"}, {b.LastName, "last_name"}, {b.FullName, "full_name"}, {b.PhoneNumber, "phone_number"}, {b.CustomerID, "customer_id"}} {
			if err := checkText(f.v, "buyer."+f.name, pb.MaxBuyerField, false); err != nil {
				return err
			}
		}
	}
	if fd == nil {
		return nil
	}
	if err := checkEmail(fd.Email, "fulfillment_details.email", false); err != nil {
		return err
	}
	for _, f := range []struct{ v, name string }{{fd.Name, "name"}, {fd.PhoneNumber, "phone_number"}} {
		if err := checkText(f.v, "fulfillment_details."+f.name, pb.MaxBuyerField, false); err != nil {
			return err
		}
	}
	if a := fd.Address; a != nil {
		for _, f := range []struct {
			v, name  string
			required bool
		}{{a.Name, "name", true}, {a.LineOne, "line_one", true}, {a.LineTwo, "line_two", false}, {a.City, "city", true},
			{a.State, "state", true}, {a.Country, "country", true}, {a.PostalCode, "postal_code", true}, {a.Company, "company", false}} {
			if err := checkText(f.v, "fulfillment_details.address."+f.name, pb.MaxBuyerField, f.required); err != nil {
				return err
			}
		}
		if len(a.Country) != 2 || strings.ToUpper(a.Country) != a.Country {
			return pb.Errorf(pb.ErrParameterInvalid, "fulfillment_details.address.country", "country must be an ISO 3166-1 alpha-2 code such as US")
		}
	}
	return nil
}

func checkEmail(v, param string, required bool) error {
	if err := checkText(v, param, pb.MaxBuyerField, required); err != nil || v == "" {
		return err
	}
	if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
		return pb.Errorf(pb.ErrParameterInvalid, param, "%s must be an email address such as jane@example.com", param)
	}
	return nil
}
