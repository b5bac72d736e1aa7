package billing

import (
	"context"
	"math/big"
	"slices"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// UsageQuery selects a customer's usage: events in [From, To), grouped by
// meter and currency and by GroupBy's keys: model, token_type, price (the
// price version), or a generic meter's group_by path.
type UsageQuery struct {
	Provider string
	Customer string
	From, To time.Time
	GroupBy  []string
}

// Usage is a customer's usage in a range, exact: it includes every event
// acknowledged before the call.
type Usage struct {
	Object     string       `json:"object"` // "billing_usage"
	ProviderID string       `json:"provider_id"`
	CustomerID string       `json:"customer_id"`
	From       time.Time    `json:"from"`
	To         time.Time    `json:"to"`
	GroupBy    []string     `json:"group_by"`
	Data       []UsageGroup `json:"data"`
}

// UsageGroup is one group's usage. Events counts the usage events with a
// line in the group (an event of input and output tokens is one, unless
// grouped by token_type); Quantity is the meter's aggregation of its
// events (a sum for the LLM meter); AmountExact is the exact cost of
// the priced usage in the currency's major unit (a decimal string, up to
// 15 fractional digits), Charged what the ledger took from the credit for
// it, Overdraft what it took from the overdraft, and Uncollected what
// neither covered (whole minor units: the
// fractions are carried per customer, see docs/tokenpay.md).
type UsageGroup struct {
	Meter       string            `json:"meter"`
	Currency    string            `json:"currency"`
	Keys        map[string]string `json:"keys"`
	Events      int64             `json:"events"`
	Quantity    int64             `json:"quantity"`
	AmountExact string            `json:"amount_exact"`
	Charged     int64             `json:"charged"`
	Overdraft   int64             `json:"overdraft"`
	Uncollected int64             `json:"uncollected"`
}

// maxUsageRange bounds a usage query's range.
const maxUsageRange = 366 * 24 * time.Hour

// Usage returns q's usage to the provider or the customer.
func (s *Service) Usage(ctx context.Context, caller pb.Principal, q UsageQuery) (*Usage, error) {
	provider, customer, err := s.readAccess(ctx, caller, q.Provider, q.Customer)
	if err != nil {
		return nil, err
	}
	q.Customer = customer
	if q.To.IsZero() {
		q.To = s.cfg.Clock.Now().Add(maxFutureSkew + time.Millisecond)
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-30 * 24 * time.Hour)
	}
	if !q.From.Before(q.To) || q.To.Sub(q.From) > maxUsageRange {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "from", "from must be before to, at most %d days apart", int(maxUsageRange/(24*time.Hour)))
	}
	if len(q.GroupBy) > pb.MaxGroupBy {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "group_by", "group_by takes at most %d keys", pb.MaxGroupBy)
	}
	for _, g := range q.GroupBy {
		if err := checkName(g, "group_by"); err != nil {
			return nil, err
		}
	}
	lines, prices, err := s.usageLines(ctx, provider, q.Customer, q.From, q.To, "from")
	if err != nil {
		return nil, err
	}
	ms, _, err := listCurrent[pb.Meter](s, nil, provider, "", kindMeter, pb.MaxProviderPrices)
	if err != nil {
		return nil, err
	}
	aggOf := map[string]string{pb.MeterLLMTokens: "sum"}
	for _, m := range ms {
		aggOf[m.ID] = m.Aggregation
	}
	type acc struct {
		g      UsageGroup
		exact  *big.Int
		unique map[string]bool
		latest time.Time
		// last is the event whose line the group counted last: an event's
		// lines (a token type each, a tier each) come together, and count
		// as one event.
		last struct {
			id      string
			created time.Time
		}
	}
	groups := map[string]*acc{}
	var order []string
	for _, l := range lines {
		p := prices[l.PriceID]
		cur, nanos := "", int64(0)
		if p != nil {
			cur, nanos = p.Currency, lineNanos(p, &l)
		}
		keys := map[string]string{}
		for _, g := range q.GroupBy {
			switch g {
			case "model":
				keys[g] = l.Model
			case "token_type":
				keys[g] = l.TokenType()
			case "price":
				keys[g] = l.PriceID
			default:
				keys[g] = l.Dims[g]
			}
		}
		k := l.Meter + "\x00" + cur
		for _, g := range q.GroupBy {
			k += "\x00" + keys[g]
		}
		a := groups[k]
		if a == nil {
			a = &acc{g: UsageGroup{Meter: l.Meter, Currency: cur, Keys: keys}, exact: new(big.Int), unique: map[string]bool{}}
			groups[k] = a
			order = append(order, k)
		}
		if a.last.id != l.EventID || !a.last.created.Equal(l.CreatedAt) {
			a.g.Events++
			a.last.id, a.last.created = l.EventID, l.CreatedAt
		}
		a.g.Charged += l.Charged
		a.g.Overdraft += l.Overdraft
		a.g.Uncollected += l.Uncollected
		switch agg := aggOf[l.Meter]; agg {
		case "sum", "count":
			a.g.Quantity += l.Quantity
			a.exact.Add(a.exact, ExactCost(l.Quantity, nanos))
		case "max":
			a.g.Quantity = max(a.g.Quantity, l.Quantity)
		case "unique_count":
			if !a.unique[l.Dims["_value"]] {
				a.unique[l.Dims["_value"]] = true
				a.g.Quantity++
			}
		case "latest":
			if !l.Time.Before(a.latest) {
				a.g.Quantity, a.latest = l.Quantity, l.Time
			}
		}
	}
	out := &Usage{Object: "billing_usage", ProviderID: provider, CustomerID: q.Customer, From: q.From, To: q.To,
		GroupBy: slices.Clip(append([]string{}, q.GroupBy...)), Data: []UsageGroup{}}
	slices.Sort(order)
	for _, k := range order {
		a := groups[k]
		a.g.AmountExact = FormatFemtos(a.exact)
		out.Data = append(out.Data, a.g)
	}
	return out, nil
}

// usageLines reads customer's usage lines with provider in [from, to),
// at most pb.MaxUsageEvents (more is ErrParameterInvalid on param), and
// the provider's prices by ID.
func (s *Service) usageLines(ctx context.Context, provider, customer string, from, to time.Time, param string) ([]pb.UsageLine, map[string]*pb.Price, error) {
	lines, err := s.st.UsageLines(ctx, pb.UsageFilter{ProviderID: provider, CustomerID: customer, From: from, To: to, Limit: pb.MaxUsageEvents})
	if err != nil {
		return nil, nil, err
	}
	if len(lines) > pb.MaxUsageEvents {
		return nil, nil, pb.Errorf(pb.ErrParameterInvalid, param, "more than %d usage lines from %s to %s: narrow the range", pb.MaxUsageEvents,
			from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	ps, _, err := listCurrent[pb.Price](s, nil, provider, "", kindPrice, pb.MaxProviderPrices)
	if err != nil {
		return nil, nil, err
	}
	prices := map[string]*pb.Price{}
	for i := range ps {
		prices[ps[i].ID] = &ps[i]
	}
	return lines, prices, nil
}

// FormatFemtos writes an amount of 10^-15 major units as an exact decimal
// of the major unit, with at least 2 fractional digits.
func FormatFemtos(f *big.Int) string { return decimal(f.String(), 15) }

// decimal places a decimal point places digits from the right of the
// non-negative integer digits, keeping at least 2 fractional digits.
func decimal(digits string, places int) string {
	for len(digits) < places+1 {
		digits = "0" + digits
	}
	whole, frac := digits[:len(digits)-places], strings.TrimRight(digits[len(digits)-places:], "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return whole + "." + frac
}
