package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
)

type linkIn struct {
	Amount      int64  `json:"amount" jsonschema:"integer count of the currency's minor units"`
	Currency    string `json:"currency" jsonschema:"ISO 4217 code in upper case"`
	Description string `json:"description" jsonschema:"what the link sells, as the payer reads it"`
	ExpiresAt   string `json:"expires_at,omitempty" jsonschema:"RFC 3339 time the link stops accepting payments (default: never)"`
	MaxUses     int64  `json:"max_uses,omitempty" jsonschema:"how many payments the link accepts (default: no limit)"`
	Key         string `json:"idempotency_key" jsonschema:"a unique string for this link; the same key retries it safely"`
}

// LinkOut is a payment link as the tools show it.
type LinkOut struct {
	ID              string `json:"id"`
	URL             string `json:"url" jsonschema:"where payers pay"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	AmountFormatted string `json:"amount_formatted"`
	Description     string `json:"description"`
	Active          bool   `json:"active"`
	MaxUses         int64  `json:"max_uses"`
	Uses            int64  `json:"uses"`
	ExpiresAt       string `json:"expires_at,omitempty"`
}

type captureIn struct {
	PaymentID string `json:"payment_id" jsonschema:"the authorized payment, pay_…"`
	Amount    *int64 `json:"amount,omitempty" jsonschema:"minor units to capture, at most the hold (default: all of it; the rest is released)"`
	Key       string `json:"idempotency_key" jsonschema:"a unique string for this capture; the same key retries it safely"`
}

type cancelIn struct {
	PaymentID string `json:"payment_id" jsonschema:"the authorized payment whose hold to release, pay_…"`
	Key       string `json:"idempotency_key" jsonschema:"a unique string for this cancel; the same key retries it safely"`
}

type refundIn struct {
	PaymentID string `json:"payment_id" jsonschema:"the captured payment, pay_…"`
	Amount    *int64 `json:"amount,omitempty" jsonschema:"minor units to refund (default: all that is left)"`
	Reason    string `json:"reason,omitempty" jsonschema:"why, for the payer"`
	Key       string `json:"idempotency_key" jsonschema:"a unique string for this refund; the same key retries it safely, a new key refunds again"`
}

// RefundOut is a refund as the tools show it.
type RefundOut struct {
	ID              string `json:"id"`
	PaymentID       string `json:"payment_id"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	AmountFormatted string `json:"amount_formatted"`
	Status          string `json:"status"`
}

type balanceIn struct{}

type balancesOut struct {
	Balances []BalanceOut `json:"balances"`
}

// BalanceOut is one currency's balance.
type BalanceOut struct {
	Currency  string `json:"currency"`
	Available int64  `json:"available" jsonschema:"minor units available"`
	Pending   int64  `json:"pending" jsonschema:"minor units held, not yet settled"`
	Formatted string `json:"available_formatted"`
}

type settlementIn struct {
	From string `json:"from,omitempty" jsonschema:"RFC 3339 start (default: the server's default window)"`
	To   string `json:"to,omitempty" jsonschema:"RFC 3339 end (default: now)"`
}

// SettlementOut is settlement_report's summary, per currency.
type SettlementOut struct {
	MerchantID string       `json:"merchant_id"`
	From       string       `json:"from"`
	To         string       `json:"to"`
	Rows       int          `json:"rows" jsonschema:"how many ledger transfers the window holds"`
	Summaries  []SummaryOut `json:"summaries" jsonschema:"per currency: the report's totals, in minor units"`
}

// SummaryOut is one currency's totals of a settlement report.
type SummaryOut struct {
	Totals       pb.SettlementSummary `json:"totals"`
	NetFormatted string               `json:"net_formatted"`
}

type disputesIn struct {
	Status        string `json:"status,omitempty" jsonschema:"only disputes in this status (default: all)"`
	Limit         int    `json:"limit,omitempty" jsonschema:"page size, 1 to 100 (default 10)"`
	StartingAfter string `json:"starting_after,omitempty" jsonschema:"the last ID of the previous page"`
}

func (s *server) merchantTools(ms *mcp.Server) error {
	return firstErr(
		addTool(s, ms, "create_payment_link", "Create a payment link: a URL where payers (people or agents) pay a fixed amount.",
			moves("Create a payment link", false), func(ctx context.Context, b Backend, in linkIn) (LinkOut, string, error) {
				p := LinkParams{Amount: in.Amount, Currency: in.Currency, Description: in.Description, MaxUses: in.MaxUses}
				if in.ExpiresAt != "" {
					t, err := time.Parse(time.RFC3339, in.ExpiresAt)
					if err != nil {
						return LinkOut{}, "", pb.Errorf(pb.ErrParameterInvalid, "expires_at", "expires_at must be an RFC 3339 time such as 2026-12-01T09:00:00Z")
					}
					p.ExpiresAt = t
				}
				l, err := b.CreatePaymentLink(ctx, in.Key, p)
				if err != nil {
					return LinkOut{}, "", err
				}
				o := LinkOut{ID: l.ID, URL: l.URL, Amount: l.Amount, Currency: l.Currency, AmountFormatted: money(l.Amount, l.Currency).Formatted,
					Description: l.Description, Active: l.Active, MaxUses: l.MaxUses, Uses: l.Uses, ExpiresAt: stamp(l.ExpiresAt)}
				return o, fmt.Sprintf("Payment link %s for %s: %s", l.ID, o.AmountFormatted, l.URL), nil
			}),
		addTool(s, ms, "capture_payment", "Capture an authorized payment (all or part of its hold); the rest is released to the payer.",
			moves("Capture a payment", false), func(ctx context.Context, b Backend, in captureIn) (PaymentOut, string, error) {
				p, err := b.Capture(ctx, in.Key, in.PaymentID, in.Amount)
				if err != nil {
					return PaymentOut{}, "", err
				}
				return paymentOut(p), paymentText(p), nil
			}),
		addTool(s, ms, "cancel_payment", "Cancel an authorized payment: its hold is released to the payer and it can no longer be captured.",
			moves("Cancel a payment", true), func(ctx context.Context, b Backend, in cancelIn) (PaymentOut, string, error) {
				p, err := b.Cancel(ctx, in.Key, in.PaymentID)
				if err != nil {
					return PaymentOut{}, "", err
				}
				return paymentOut(p), paymentText(p), nil
			}),
		addTool(s, ms, "refund_payment", "Refund a captured payment, wholly or in part, to the payer's wallet.",
			moves("Refund a payment", true), func(ctx context.Context, b Backend, in refundIn) (RefundOut, string, error) {
				r, err := b.Refund(ctx, in.Key, in.PaymentID, in.Amount, in.Reason)
				if err != nil {
					return RefundOut{}, "", err
				}
				o := RefundOut{ID: r.ID, PaymentID: r.PaymentID, Amount: r.Amount, Currency: r.Currency,
					AmountFormatted: money(r.Amount, r.Currency).Formatted, Status: r.Status}
				return o, fmt.Sprintf("Refund %s of %s on payment %s is %s.", r.ID, o.AmountFormatted, r.PaymentID, r.Status), nil
			}),
		addTool(s, ms, "list_payments", "The payments made to you, newest first.", readOnly("List payments"), listPayments),
		addTool(s, ms, "get_balance", "Your balances, one per currency: available and pending.", readOnly("Get the balance"),
			func(ctx context.Context, b Backend, _ balanceIn) (balancesOut, string, error) {
				bs, err := b.Balances(ctx)
				if err != nil {
					return balancesOut{}, "", err
				}
				out := balancesOut{Balances: make([]BalanceOut, len(bs))}
				var lines []string
				for i, x := range bs {
					out.Balances[i] = BalanceOut{x.Currency, x.Available, x.Pending, money(x.Available, x.Currency).Formatted}
					lines = append(lines, fmt.Sprintf("%s available, %s pending", out.Balances[i].Formatted, money(x.Pending, x.Currency).Formatted))
				}
				if len(lines) == 0 {
					return out, "No balance yet.", nil
				}
				return out, strings.Join(lines, "\n"), nil
			}),
		addTool(s, ms, "settlement_report", "Your settlement report for a window: the ledger's transfers on your accounts, summed per currency.",
			readOnly("Settlement report"), s.settlement),
		addTool(s, ms, "list_disputes", "Disputes of payments made to you, newest first.", readOnly("List disputes"),
			listTool(pb.PrefixDispute, "disputes", func(in disputesIn) (int, string) { return in.Limit, in.StartingAfter },
				func(ctx context.Context, b Backend, in disputesIn, limit int) ([]pb.Dispute, bool, error) {
					return b.Disputes(ctx, in.Status, in.StartingAfter, limit)
				}, func(d *pb.Dispute) (DisputeOut, string) {
					o := disputeOut(d)
					return o, fmt.Sprintf("- %s (%s) on %s: %s, %s", d.ID, d.Status, d.PaymentID, d.Reason, o.AmountFormatted)
				})),
	)
}

func (s *server) settlement(ctx context.Context, b Backend, in settlementIn) (SettlementOut, string, error) {
	var bounds [2]time.Time
	for i, v := range []struct{ name, val string }{{"from", in.From}, {"to", in.To}} {
		if v.val == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v.val)
		if err != nil {
			return SettlementOut{}, "", pb.Errorf(pb.ErrParameterInvalid, v.name, "%s must be an RFC 3339 time such as 2026-12-01T09:00:00Z", v.name)
		}
		bounds[i] = t
	}
	rep, err := b.Settlement(ctx, bounds[0], bounds[1])
	if err != nil {
		return SettlementOut{}, "", err
	}
	out := SettlementOut{MerchantID: rep.MerchantID, From: stamp(&rep.From), To: stamp(&rep.To), Rows: len(rep.Rows), Summaries: []SummaryOut{}}
	lines := []string{fmt.Sprintf("Settlement of %s from %s to %s: %d transfers.", rep.MerchantID, out.From, out.To, len(rep.Rows))}
	for _, sum := range rep.Summary {
		o := SummaryOut{Totals: sum, NetFormatted: money(sum.Net, sum.Currency).Formatted}
		out.Summaries = append(out.Summaries, o)
		lines = append(lines, fmt.Sprintf("- %s: %d transfers, captures %s, refunds %s, fees %s, net %s", sum.Currency, sum.Count,
			money(sum.Captures, sum.Currency).Formatted, money(sum.Refunds, sum.Currency).Formatted, money(sum.Fees, sum.Currency).Formatted, o.NetFormatted))
	}
	return out, strings.Join(lines, "\n"), nil
}
