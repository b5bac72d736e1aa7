// Package paylinks is the payment links capability: a merchant's standing
// offer of a fixed amount at a URL (<public base>/l/{id}). A person or an
// agent reads the offer there (a machine-readable JSON offer for an agent,
// a small page for a browser) and pays it through the API, as a payment
// made by the payments core, under a mandate or with the user's own key.
// The link's use is counted in the payment's own ledger operation
// (service.CreatePaymentParams.Within), so the limits of a link (its
// expiry, its max_uses, its deactivation) hold however many payers pay at
// once, and each payment records the link it was made through.
package paylinks

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Core is what payment links need of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// CreatePayment makes a payment (its Within runs in the same operation).
	CreatePayment(ctx context.Context, caller pb.Principal, idem *service.Idempotency, params service.CreatePaymentParams) service.Result
	// Merchant returns merchant id, or nil when there is none.
	Merchant(ctx context.Context, id string) (*pb.Merchant, error)
	// Payment returns payment id if caller is a party to it.
	Payment(ctx context.Context, caller pb.Principal, id string) (*pb.Payment, error)
}

// Store is what payment links read: their own rows and a link's usage row.
type Store interface {
	pb.PayLinkStore
	MandateUsage(ctx context.Context, mandateID, periodKey string) (*pb.MandateUsageRow, error)
}

// Config is the capability's configuration.
type Config struct {
	// PublicURL is the server's address as payers reach it (scheme, host,
	// optional path prefix, no trailing slash): a link's URL is
	// PublicURL/l/{id}, and the offer tells an agent to pay at
	// PublicURL/v1/payment_links/{id}/payments.
	PublicURL string
	Clock     pb.Clock
}

// Service is the payment links capability. Safe for concurrent use.
type Service struct {
	core Core
	st   Store
	cfg  Config
}

// New returns the capability over core and st. It refuses a PublicURL that
// is not an absolute http(s) URL.
func New(core Core, st Store, cfg Config) (*Service, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("paylinks: the public URL %q must be an absolute http(s) URL such as https://pay.example.com", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	return &Service{core: core, st: st, cfg: cfg}, nil
}

// links and linkPayments pick the capability's lists of a batch.
func links(b *pb.Batch) *[]pb.PayLink               { return &b.PayLinks }
func linkPayments(b *pb.Batch) *[]pb.PayLinkPayment { return &b.LinkPayments }

func noLink(id string) error {
	return pb.Errorf(pb.ErrNotFound, "id", "no such payment link: %s", id)
}

// CreateParams is a new link's terms.
type CreateParams struct {
	Amount      int64
	Currency    string
	Description string
	// ExpiresAt, when not zero, is when the link stops accepting payments:
	// in the future, at most pb.MaxPayLinkLifetime away.
	ExpiresAt time.Time
	// MaxUses, when not 0, is how many payments the link accepts.
	MaxUses int64
}

// check validates p against now: ErrInvalidAmount, ErrInvalidCurrency,
// ErrParameterMissing or ErrParameterInvalid naming the field.
func (p *CreateParams) check(now time.Time) error {
	if err := pb.ValidateAmount(p.Amount, "amount"); err != nil {
		return err
	}
	if err := pb.ValidateCurrency(p.Currency, "currency"); err != nil {
		return err
	}
	if strings.TrimSpace(p.Description) == "" {
		return pb.Errorf(pb.ErrParameterMissing, "description", "description is required: it tells the payer what the link sells")
	}
	if len(p.Description) > pb.MaxDescriptionLength || !utf8.ValidString(p.Description) {
		return pb.Errorf(pb.ErrParameterInvalid, "description", "description must be valid UTF-8 of at most %d bytes", pb.MaxDescriptionLength)
	}
	if !p.ExpiresAt.IsZero() && (!p.ExpiresAt.After(now) || p.ExpiresAt.Sub(now) > pb.MaxPayLinkLifetime) {
		return pb.Errorf(pb.ErrParameterInvalid, "expires_at", "expires_at must be in the future and at most %d days away", pb.MaxPayLinkLifetime/(24*time.Hour))
	}
	if p.MaxUses < 0 || p.MaxUses > pb.MaxPayLinkUses {
		return pb.Errorf(pb.ErrParameterInvalid, "max_uses", "max_uses must be from 1 to %d (or omitted: no limit)", pb.MaxPayLinkUses)
	}
	return nil
}

// Create (merchant) creates a payment link, active at once.
func (s *Service) Create(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in CreateParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return service.Result{Err: err}
	}
	if err := in.check(s.cfg.Clock.Now()); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		l := pb.PayLink{ID: pb.NewID(pb.PrefixPayLink, tx.Now()), Object: "payment_link", MerchantID: caller.ID,
			Amount: in.Amount, Currency: in.Currency, Description: in.Description, Active: true,
			MaxUses: in.MaxUses, CreatedAt: tx.Now().Truncate(time.Second), Version: 1}
		if !in.ExpiresAt.IsZero() {
			exp := in.ExpiresAt.UTC().Truncate(time.Second)
			l.ExpiresAt = &exp
		}
		ledger.Add(tx, links, l)
		return s.shown(l), nil
	})
}

// shown is l as the API shows it: with its URL.
func (s *Service) shown(l pb.PayLink) *pb.PayLink {
	l.URL = s.cfg.PublicURL + "/l/" + l.ID
	return &l
}

// read returns link id with its uses counted, or ErrNotFound.
func (s *Service) read(ctx context.Context, id string) (*pb.PayLink, error) {
	if !pb.HasPrefix(id, pb.PrefixPayLink) {
		return nil, noLink(id)
	}
	l, err := s.st.PayLink(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, noLink(id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.countUses(ctx, l); err != nil {
		return nil, err
	}
	return s.shown(*l), nil
}

// countUses sets l.Uses from the link's usage row, as committed.
func (s *Service) countUses(ctx context.Context, l *pb.PayLink) error {
	u, err := s.st.MandateUsage(ctx, l.ID, pb.PayLinkUsage)
	switch {
	case err == nil:
		l.Uses = u.Payments
	case pb.ErrorCode(err) != pb.ErrNotFound:
		return fmt.Errorf("couldn't read the uses of payment link %s: %w", l.ID, err)
	}
	return nil
}

// Link returns link id to its merchant (or the operator).
func (s *Service) Link(ctx context.Context, caller pb.Principal, id string) (*pb.PayLink, error) {
	if err := service.RequireRole(caller, pb.RoleMerchant, pb.RoleOperator); err != nil {
		return nil, err
	}
	l, err := s.read(ctx, id)
	if err == nil && caller.Role == pb.RoleMerchant && l.MerchantID != caller.ID {
		return nil, noLink(id)
	}
	return l, err
}

// List lists the merchant's links, newest first.
func (s *Service) List(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]pb.PayLink, bool, error) {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return nil, false, err
	}
	ls, more, err := s.st.ListPayLinks(ctx, pb.PayLinkFilter{MerchantID: caller.ID, StartingAfter: startingAfter, Limit: limit})
	if err != nil {
		return nil, false, err
	}
	for i := range ls {
		if err := s.countUses(ctx, &ls[i]); err != nil {
			return nil, false, err
		}
		ls[i] = *s.shown(ls[i])
	}
	return ls, more, nil
}

// Payments lists the payments made through link id, newest first, to the
// link's merchant.
func (s *Service) Payments(ctx context.Context, caller pb.Principal, id, startingAfter string, limit int) ([]pb.Payment, bool, error) {
	if _, err := s.Link(ctx, caller, id); err != nil {
		return nil, false, err
	}
	ids, more, err := s.st.PayLinkPayments(ctx, pb.PayLinkFilter{LinkID: id, StartingAfter: startingAfter, Limit: limit})
	if err != nil {
		return nil, false, err
	}
	out := make([]pb.Payment, 0, len(ids))
	for _, pid := range ids {
		p, err := s.core.Payment(ctx, caller, pid)
		if err != nil {
			return nil, false, err
		}
		out = append(out, *p)
	}
	return out, more, nil
}

// current is link id as of this point in tx's batch.
func (s *Service) current(tx *ledger.Tx, id string) (pb.PayLink, error) {
	if l, ok := ledger.Latest(tx, links, func(l *pb.PayLink) string { return l.ID }, id); ok {
		return l, nil
	}
	l, err := s.st.PayLink(tx.Context(), id)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return pb.PayLink{}, noLink(id)
	}
	if err != nil {
		return pb.PayLink{}, err
	}
	return *l, nil
}

// Deactivate (merchant) stops link id from accepting payments; its
// payments so far are untouched. Deactivating an inactive link answers it
// as it is.
func (s *Service) Deactivate(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(id, pb.PrefixPayLink) {
		return service.Result{Err: noLink(id)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		l, err := s.current(tx, id)
		if err == nil && l.MerchantID != caller.ID {
			err = noLink(id)
		}
		if err != nil {
			return nil, err
		}
		if l.Active {
			l.Active = false
			l.Version++
			ledger.Add(tx, links, l)
		}
		u, err := tx.Usage(l.ID, pb.PayLinkUsage, 0, l.MaxUses)
		if err != nil {
			return nil, err
		}
		l.Uses = u.Payments
		return s.shown(l), nil
	})
}

// Pay (user, agent) pays link id: a payment of the link's amount to its
// merchant, captured at once, under mandateID when an agent pays under its
// user's mandate. It answers as POST /v1/payments does (the payment, or a
// decline that carries the payment's ID), and the payment's metadata names
// the link. A link that is deactivated, expired or used up is refused
// with ErrPayLinkInactive, ErrPayLinkExpired or ErrPayLinkUsedUp, and no
// payment is made; the check is made again inside the payment's ledger
// operation, where the use is counted, so that concurrent payers never
// pass max_uses.
func (s *Service) Pay(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id, mandateID string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	l, err := s.read(ctx, id)
	if err != nil {
		return service.Result{Err: err}
	}
	if code := l.Payable(s.cfg.Clock.Now()); code != "" && idem == nil {
		// With a key, the writer decides, so that the refusal is stored with it.
		return service.Result{Err: unpayable(l, code)}
	}
	params := service.CreatePaymentParams{Amount: l.Amount, Currency: l.Currency, MerchantID: l.MerchantID,
		Description: l.Description, MandateID: mandateID, CaptureMethod: pb.CaptureAutomatic,
		Metadata: map[string]string{pb.MetadataPayLink: l.ID},
		Within:   func(tx *ledger.Tx, p *pb.Payment) error { return s.use(tx, id, p) }}
	return s.core.CreatePayment(ctx, caller, idem, params)
}

// use counts p's use of link id inside p's own operation, and records the
// link's payment: refused, undoing p, when the link can't be paid as of
// this batch. A declined payment is recorded but uses nothing.
func (s *Service) use(tx *ledger.Tx, id string, p *pb.Payment) error {
	l, err := s.current(tx, id)
	if err != nil {
		return err
	}
	u, err := tx.Usage(l.ID, pb.PayLinkUsage, 0, l.MaxUses)
	if err != nil {
		return err
	}
	l.Uses = u.Payments
	if code := l.Payable(tx.Now()); code != "" {
		return unpayable(&l, code)
	}
	if p.Status != pb.StatusDeclined {
		if err := tx.AdjustUsage(u, 0, 1); err == ledger.ErrUsageCap {
			l.Uses = l.MaxUses
			return unpayable(&l, pb.ErrPayLinkUsedUp)
		} else if err != nil {
			return err
		}
	}
	ledger.Add(tx, linkPayments, pb.PayLinkPayment{LinkID: l.ID, PaymentID: p.ID, CreatedAt: tx.Now().Truncate(time.Second)})
	return nil
}

// unpayable is the refusal of a payment of l for code.
func unpayable(l *pb.PayLink, code pb.Code) error {
	switch code {
	case pb.ErrPayLinkInactive:
		return pb.Errorf(code, "", "payment link %s was deactivated by its merchant; it accepts no more payments", l.ID)
	case pb.ErrPayLinkExpired:
		return pb.Errorf(code, "", "payment link %s expired at %s; it accepts no more payments", l.ID, l.ExpiresAt.Format(time.RFC3339))
	}
	return pb.Errorf(code, "", "payment link %s was paid its %d times already; it accepts no more payments", l.ID, l.MaxUses)
}

// Observe is the payment links' ledger observer (ledger.Config.Observers).
// A link payment that waits for its user's confirmation takes one of the
// link's uses when it is made; when the user denies it, its confirmation
// expires, a party cancels it, or it is declined once approved, the use is
// given back in that same operation, so that max_uses counts only payments that can still be
// paid. A payment whose metadata names a link without the link's own row
// (PayLinkOfPayment) is not the link's: its metadata is the payer's.
//
// An error (a store read failing) fails the operation that logged the
// entry: the use and the payment stay consistent.
func (s *Service) Observe(tx *ledger.Tx, ev pb.LogEvent) error {
	switch ev.Type {
	case pb.LogConfirmationDenied, pb.LogPaymentExpired, pb.LogPaymentCanceled:
	case pb.LogPaymentDeclined:
		if ev.Actor.Role != pb.RoleUser {
			return nil // a payment that waited is declined only by its user's approval
		}
	default:
		return nil
	}
	p, err := tx.Payment(ev.Subject) // as before ev: its operation puts it after logging
	if err != nil || p.Status != pb.StatusRequiresConfirmation || p.Metadata[pb.MetadataPayLink] == "" {
		return nil
	}
	linkID, err := s.linkOf(tx, p.ID)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't read the payment link of payment %s: %w", p.ID, err)
	}
	l, err := s.current(tx, linkID)
	if err != nil {
		return err
	}
	u, err := tx.Usage(l.ID, pb.PayLinkUsage, 0, l.MaxUses)
	if err != nil || u.Payments <= 0 {
		return err
	}
	return tx.AdjustUsage(u, 0, -1)
}

// linkOf returns the link payment id was made through, as of this point in
// tx's batch.
func (s *Service) linkOf(tx *ledger.Tx, paymentID string) (string, error) {
	for _, lp := range ledger.Added(tx, linkPayments) {
		if lp.PaymentID == paymentID {
			return lp.LinkID, nil
		}
	}
	return s.st.PayLinkOfPayment(tx.Context(), paymentID)
}
