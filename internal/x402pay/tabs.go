package x402pay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/x402/wire"
)

// tabs picks the facilitator's list of a batch.
func tabs(b *pb.Batch) *[]pb.Tab { return &b.Tabs }

// metadataTab is the deposit payment's metadata key that names its tab.
const metadataTab = "x402_tab"

func noTab(id string) error { return pb.Errorf(pb.ErrNotFound, "id", "no such tab: %s", id) }

// openTab settles a deposit: a payment of the deposit under the mandate,
// captured manually (a hold) and expiring at the tab's end, whose own
// operation spends the deposit's nonce and writes the tab. A payment that
// would wait for the user is refused; a declined one opens no tab.
func (s *Service) openTab(ctx context.Context, c *checked, idem *service.Idempotency) service.Result {
	au := &c.auth.Authorization
	caller := pb.Principal{Role: pb.RoleAgent, ID: c.agent.ID, UserID: c.agent.UserID, Signed: true}
	exp := s.cfg.Clock.Now().Add(s.cfg.TabLifetime)
	params := service.CreatePaymentParams{Amount: c.minor, Currency: au.Asset, MerchantID: au.To,
		Description: "x402 tab " + c.tab, MandateID: au.Mandate, CaptureMethod: pb.CaptureManual,
		AuthorizationExpiresAt: exp,
		Metadata:               map[string]string{pb.MetadataX402Nonce: au.Nonce, metadataTab: c.tab},
		Within: func(tx *ledger.Tx, p *pb.Payment) error {
			if p.Status == pb.StatusRequiresConfirmation {
				return pb.Errorf(pb.ErrX402ConfirmationRequired, "", "this deposit needs the user's confirmation under mandate %s, and no one is there to confirm during an x402 request; no tab was opened", au.Mandate)
			}
			if err := tx.UseNonce(pb.Nonce{KeyID: au.From, Nonce: pb.NoncePrefixX402 + au.Nonce, Expires: c.validTil.Add(s.cfg.Skew)}); err == ledger.ErrNonceUsed {
				return pb.Errorf(pb.ErrX402AuthorizationUsed, "", "this deposit (nonce %s) was settled before; it opens one tab", au.Nonce)
			} else if err != nil {
				return err
			}
			if p.Status != pb.StatusAuthorized {
				return nil // declined: recorded, no tab
			}
			now := tx.Now().Truncate(time.Second)
			ledger.Add(tx, tabs, pb.Tab{ID: c.tab, Object: "x402_tab", MerchantID: au.To, AgentID: c.agent.ID,
				UserID: c.agent.UserID, MandateID: au.Mandate, KeyID: au.From,
				PublicKey: base64.RawURLEncoding.EncodeToString(c.key), PaymentID: p.ID, Network: s.cfg.Network,
				Currency: au.Asset, Deposit: c.minor, DepositAtomic: c.settle, ChainHead: wire.ChainStart(c.tab),
				Status: pb.TabOpen, ExpiresAt: p.AuthorizationExpiresAt.UTC(), CreatedAt: now, Version: 1})
			return nil
		}}
	return s.core.CreatePayment(ctx, caller, idem, params)
}

// tabExtension is the tab's state in a deposit's settlement response.
func tabExtension(c *checked, p *pb.Payment) map[string]json.RawMessage {
	st := wire.TabState{ChannelID: c.tab, ChargedCumulativeAmount: "0", Balance: strconv.FormatInt(c.settle, 10),
		PayerKey: base64.RawURLEncoding.EncodeToString(c.key), ChainHead: wire.ChainStart(c.tab)}
	if p.AuthorizationExpiresAt != nil {
		st.ExpiresAt = p.AuthorizationExpiresAt.Unix()
	}
	b, _ := json.Marshal(st)
	return map[string]json.RawMessage{wire.ExtensionTab: b}
}

// current is tab id as of this point in tx's batch.
func (s *Service) current(tx *ledger.Tx, id string) (pb.Tab, error) {
	if t, ok := ledger.Latest(tx, tabs, func(t *pb.Tab) string { return t.ID }, id); ok {
		return t, nil
	}
	t, err := s.st.Tab(tx.Context(), id)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return pb.Tab{}, noTab(id)
	}
	if err != nil {
		return pb.Tab{}, err
	}
	return *t, nil
}

// party reports whether caller may read tab t: its merchant, its agent,
// its agent's user, or the operator.
func party(caller pb.Principal, t *pb.Tab) bool {
	switch caller.Role {
	case pb.RoleOperator:
		return true
	case pb.RoleMerchant:
		return caller.ID == t.MerchantID
	case pb.RoleAgent:
		return caller.ID == t.AgentID
	case pb.RoleUser:
		return caller.ID == t.UserID
	}
	return false
}

// Tab returns tab id to a party to it: its receipt (what was claimed and
// captured, the count and hash chain of the vouchers the claim stated).
func (s *Service) Tab(ctx context.Context, caller pb.Principal, id string) (*pb.Tab, error) {
	if !pb.HasPrefix(id, pb.PrefixTab) || len(id) > 100 {
		return nil, noTab(id)
	}
	t, err := s.st.Tab(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !party(caller, t)) {
		return nil, noTab(id)
	}
	return t, err
}

// ClaimParams is a seller's claim of a tab: Amount atomic units charged
// in all (at most the voucher's), the payer's latest voucher, and the
// count and hash chain of the vouchers the seller accepted.
type ClaimParams struct {
	Amount    int64
	Voucher   wire.Voucher
	Vouchers  int64
	ChainHead string
}

// Claim (merchant) settles a tab: the hold is captured for Amount rounded
// up to the minor unit (0: released) and the rest released, once. The
// voucher must be the payer's, for this tab, at least Amount and at most
// the deposit (ErrVoucherInvalid). A tab already claimed for the same
// Amount answers as it is (a retried claim); any other state, or a claim
// past the tab's expiry, is ErrTabState. The claim is recorded first
// (claiming) and the capture's log entry, which the transparency log
// keeps, marks the tab claimed in its own commit (Observe), so a claim
// interrupted between the two is finished by claiming again.
func (s *Service) Claim(ctx context.Context, caller pb.Principal, id string, in ClaimParams) (*pb.Tab, error) {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return nil, err
	}
	t, err := s.Tab(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if (t.Status == pb.TabClaimed || t.Status == pb.TabReleased) && t.Claimed == in.Amount && t.ChainHead == in.ChainHead {
		return t, nil
	}
	if err := s.checkClaim(t, &in); err != nil {
		return nil, err
	}
	res := s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		cur, err := s.current(tx, id)
		if err != nil {
			return nil, err
		}
		if err := s.checkClaim(&cur, &in); err != nil {
			return nil, err
		}
		if !tx.Now().Before(cur.ExpiresAt) {
			return nil, pb.Errorf(pb.ErrTabState, "", "tab %s expired at %s; its deposit was released", id, cur.ExpiresAt.Format(time.RFC3339))
		}
		cur.Status, cur.Claimed, cur.Vouchers, cur.ChainHead = pb.TabClaiming, in.Amount, in.Vouchers, in.ChainHead
		cur.Version++
		ledger.Add(tx, tabs, cur)
		return nil, nil
	})
	if res.Err != nil {
		return nil, res.Err
	}
	minor, _, _ := wire.MinorUnits(in.Amount, t.Currency)
	if minor == 0 {
		res = s.core.Cancel(ctx, caller, nil, t.PaymentID)
	} else {
		res = s.core.Capture(ctx, caller, nil, t.PaymentID, &minor)
	}
	if res.Err != nil {
		return nil, fmt.Errorf("couldn't settle tab %s: %w", id, res.Err)
	}
	return s.Tab(ctx, caller, id)
}

// checkClaim checks a claim of t: its state and the voucher.
func (s *Service) checkClaim(t *pb.Tab, in *ClaimParams) error {
	switch t.Status {
	case pb.TabOpen, pb.TabClosing, pb.TabClaiming:
	default:
		return pb.Errorf(pb.ErrTabState, "", "tab %s is %s; it can't be claimed (again)", t.ID, t.Status)
	}
	if t.Status == pb.TabClaiming && (t.Claimed != in.Amount || t.ChainHead != in.ChainHead) {
		return pb.Errorf(pb.ErrTabState, "", "tab %s is being claimed for %d; claim the same again", t.ID, t.Claimed)
	}
	pub, err := wire.PublicKeyOf(t.PublicKey)
	if err != nil {
		return fmt.Errorf("tab %s has an unreadable key: %w", t.ID, err)
	}
	if in.Voucher.ChannelID != t.ID {
		return pb.Errorf(pb.ErrVoucherInvalid, "voucher", "the voucher is for %q, not tab %s", in.Voucher.ChannelID, t.ID)
	}
	n, err := in.Voucher.Verify(pub)
	switch {
	case err != nil:
		return pb.Errorf(pb.ErrVoucherInvalid, "voucher", "%v", err)
	case n > t.DepositAtomic:
		return pb.Errorf(pb.ErrVoucherInvalid, "voucher", "the voucher (%d) is above the deposit (%d)", n, t.DepositAtomic)
	case in.Amount < 0 || in.Amount > n:
		return pb.Errorf(pb.ErrVoucherInvalid, "amount", "amount %d must be from 0 to the voucher's %d", in.Amount, n)
	case in.Vouchers < 0 || len(in.ChainHead) != 64:
		return pb.Errorf(pb.ErrParameterInvalid, "chain_head", "vouchers must be a count and chain_head a SHA-256 in hex")
	}
	return nil
}

// Close (agent, user) closes a tab from the payer's side: its seller may
// still claim it for TabCloseGrace, after which the deposit is released
// (the facilitator's loop, Start). Closing a closing tab answers it.
func (s *Service) Close(ctx context.Context, caller pb.Principal, id string) (*pb.Tab, error) {
	if err := service.RequireRole(caller, pb.RoleAgent, pb.RoleUser); err != nil {
		return nil, err
	}
	if _, err := s.Tab(ctx, caller, id); err != nil {
		return nil, err
	}
	res := s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		t, err := s.current(tx, id)
		if err != nil {
			return nil, err
		}
		switch t.Status {
		case pb.TabClosing:
			return &t, nil
		case pb.TabOpen:
		default:
			return nil, pb.Errorf(pb.ErrTabState, "", "tab %s is %s; it can't be closed", id, t.Status)
		}
		at := tx.Now().Add(s.cfg.TabCloseGrace).UTC().Truncate(time.Second)
		t.Status, t.CloseAt = pb.TabClosing, &at
		t.Version++
		ledger.Add(tx, tabs, t)
		return &t, nil
	})
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Value.(*pb.Tab), nil
}

// Start runs the loop that releases the tabs whose payer closed them once
// their grace ended; Close stops it.
func (s *Service) Start() {
	s.wg.Add(1)
	go service.Every(s.stop, &s.wg, s.cfg.Logger, time.Second, "x402: releasing closed tabs", s.releaseClosed)
}

// Stop stops the loop.
func (s *Service) Stop() {
	close(s.stop)
	s.wg.Wait()
}

// releaseClosed releases the deposits of tabs whose grace ended, as their
// payer asked.
func (s *Service) releaseClosed(ctx context.Context) error {
	ts, err := s.st.TabsClosingBefore(ctx, s.cfg.Clock.Now(), 100)
	if err != nil {
		return err
	}
	for _, t := range ts {
		agent := pb.Principal{Role: pb.RoleAgent, ID: t.AgentID, UserID: t.UserID}
		if res := s.core.Cancel(ctx, agent, nil, t.PaymentID); res.Err != nil && pb.ErrorCode(res.Err) != pb.ErrPaymentState {
			return fmt.Errorf("couldn't release tab %s: %w", t.ID, res.Err)
		}
	}
	return nil
}

// Observe is the facilitator's ledger observer (ledger.Config.Observers):
// when a tab's deposit is captured, canceled or expires, the tab is
// marked claimed, released or expired in that same operation, so a tab's
// state and its hold never disagree.
func (s *Service) Observe(tx *ledger.Tx, ev pb.LogEvent) error {
	var to pb.TabStatus
	switch ev.Type {
	case pb.LogPaymentCaptured:
		to = pb.TabClaimed
	case pb.LogPaymentCanceled:
		to = pb.TabReleased
	case pb.LogPaymentExpired:
		to = pb.TabExpired
	default:
		return nil
	}
	p, err := tx.Payment(ev.Subject)
	if err != nil || p.Metadata[metadataTab] == "" {
		return nil
	}
	t, err := s.current(tx, p.Metadata[metadataTab])
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil // metadata is the payer's; the tab is the facilitator's
	}
	if err != nil {
		return fmt.Errorf("couldn't read the tab of payment %s: %w", p.ID, err)
	}
	if t.PaymentID != p.ID {
		return nil
	}
	if to == pb.TabClaimed {
		t.Captured, _, _ = wire.MinorUnits(t.Claimed, t.Currency)
	}
	t.Status = to
	t.Version++
	ledger.Add(tx, tabs, t)
	return nil
}
