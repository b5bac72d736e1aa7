package billing

import (
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// The pricing rule (docs/tokenpay.md):
//
//   - A unit price is an exact decimal of the currency's major unit per 1M
//     units, with at most 9 fractional digits: an integer p of 10^-9 major
//     units (nanos) per 10^6 units.
//   - q units at p cost exactly q·p units of 10^-15 of the major unit
//     ("femtos"): an integer, computed in 128 bits, never a float.
//   - The ledger moves whole minor units. Per provider, customer and
//     currency, the exact costs of all usage are summed; the ledger is
//     charged the whole minor units of that running sum, and the fraction
//     (less than one minor unit) is carried to the next event (an
//     Accrual). So amounts are rounded once, down, on the running total:
//     no event is charged a rounding of its own, and what the ledger
//     charged is the customer's exact total rounded down.
//   - A reservation's hold for an estimate is rounded up (ceil(q·p) minor
//     units), so that it covers the usage it stands for.

// ParseUnitPrice reads a unit price, "2.5" or "0.000000001", into nanos
// of the major unit (per 1M units). It refuses a sign, an exponent, more
// than 9 fractional digits, and more than pb.MaxUnitPriceNanos.
func ParseUnitPrice(s string) (int64, error) {
	bad := pb.Errorf(pb.ErrParameterInvalid, "unit_price", "unit_price must be a decimal string of the currency's major unit per 1M units with at most 9 decimal places, such as \"2.50\" or \"0.000000150\"; got %q", s)
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || len(frac) > 9 || len(whole) > 7 {
		return 0, bad
	}
	var n int64
	for _, c := range whole + frac + strings.Repeat("0", 9-len(frac)) {
		if c < '0' || c > '9' {
			return 0, bad
		}
		n = n*10 + int64(c-'0')
	}
	if n > pb.MaxUnitPriceNanos {
		return 0, pb.Errorf(pb.ErrParameterInvalid, "unit_price", "unit_price is at most %s per 1M units", FormatNanos(pb.MaxUnitPriceNanos))
	}
	return n, nil
}

// FormatNanos writes nanos of the major unit as the shortest exact decimal
// with at least 2 fractional digits ("2.50", "0.000000001").
func FormatNanos(n int64) string { return decimal(strconv.FormatInt(n, 10), 9) }

// femtosPerMinor is how many 10^-15 major units make one minor unit.
func femtosPerMinor(exp int) uint64 {
	u := uint64(1)
	for range 15 - exp {
		u *= 10
	}
	return u
}

// Charge adds the exact cost of q units at nanos per 1M to carry (in
// femtos, less than one minor unit) and returns the whole minor units to
// charge and the new carry. q ≤ pb.MaxEventQuantity and nanos ≤
// pb.MaxUnitPriceNanos keep the 128-bit sum's quotient within int64.
func Charge(carry, q, nanos int64, exp int) (minor, newCarry int64) {
	hi, lo := bits.Mul64(uint64(q), uint64(nanos))
	var c uint64
	lo, c = bits.Add64(lo, uint64(carry), 0)
	hi += c
	quo, rem := bits.Div64(hi, lo, femtosPerMinor(exp))
	return int64(quo), int64(rem)
}

// HoldAmount is the minor units a reservation of q units at nanos holds:
// the exact cost rounded up.
func HoldAmount(q, nanos int64, exp int) int64 {
	minor, rem := Charge(0, q, nanos, exp)
	if rem > 0 {
		minor++
	}
	return minor
}

// ExactCost is the exact cost of q units at nanos, in femtos.
func ExactCost(q, nanos int64) *big.Int {
	return new(big.Int).Mul(big.NewInt(q), big.NewInt(nanos))
}

// matches reports how specifically price p matches model and tokenType,
// or -1 when it does not: a token type named beats any; then an exact
// model beats a longer prefix beats a shorter one beats "*".
func matches(p *pb.Price, model, tokenType string) int {
	score := 0
	switch p.TokenType {
	case tokenType:
		if tokenType != "" {
			score += 1 << 20
		}
	case "":
	default:
		return -1
	}
	switch {
	case p.Model == model:
		score += 1 << 19
	case strings.HasSuffix(p.Model, "*") && strings.HasPrefix(model, strings.TrimSuffix(p.Model, "*")):
		score += len(p.Model)
	default:
		return -1
	}
	return score
}

// pickPrice returns the price of ps for meter, model and tokenType at t:
// the most specific match (matches), and of its versions the latest
// effective at t; nil when none.
func pickPrice(ps []pb.Price, meter, model, tokenType string, t time.Time) *pb.Price {
	var best *pb.Price
	bestScore := -1
	for i := range ps {
		p := &ps[i]
		if p.Meter != meter || p.EffectiveFrom.After(t) {
			continue
		}
		sc := matches(p, model, tokenType)
		if sc < 0 {
			continue
		}
		if sc > bestScore || (sc == bestScore && p.EffectiveFrom.After(best.EffectiveFrom)) {
			best, bestScore = p, sc
		}
	}
	return best
}

// priceFor returns the provider's price for meter (m, nil for the LLM
// meter), model and tokenType at t, or ErrNoPrice; from the prices read
// before the operation when pr is set.
func (s *Service) priceFor(tx *ledger.Tx, pr *preread, provider, meter string, m *pb.Meter, model, tokenType string, t time.Time) (*pb.Price, error) {
	var ps []pb.Price
	var err error
	if pr != nil {
		ps, err = pr.pricesIn(tx, provider)
	} else {
		ps, _, err = listCurrent[pb.Price](s, tx, provider, "", kindPrice, pb.MaxProviderPrices)
	}
	if err != nil {
		return nil, err
	}
	if m != nil {
		model, tokenType = "", ""
	}
	p := pickPrice(ps, meter, model, tokenType, t)
	if p == nil {
		what := meter
		if m == nil {
			what = "model " + model + ", " + tokenType + " tokens"
		}
		return nil, pb.Errorf(pb.ErrNoPrice, "", "no price applies to %s at %s: create one (POST /v1/billing/prices)", what, t.UTC().Format(time.RFC3339))
	}
	return p, nil
}

// TierParams is one tier of a graduated price as a provider sends it.
type TierParams struct {
	UpTo      *int64
	UnitPrice string
}

// parseTiers checks a graduated price's tiers: 1 to pb.MaxPriceTiers,
// each up_to above the one before, the last without one, every unit price
// as ParseUnitPrice reads it.
func parseTiers(in []TierParams) ([]pb.PriceTier, error) {
	if len(in) > pb.MaxPriceTiers {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "tiers", "a price has at most %d tiers", pb.MaxPriceTiers)
	}
	out := make([]pb.PriceTier, len(in))
	prev := int64(0)
	for i, t := range in {
		param := "tiers[" + strconv.Itoa(i) + "]"
		last := i == len(in)-1
		switch {
		case last && t.UpTo != nil:
			return nil, pb.Errorf(pb.ErrParameterInvalid, param+".up_to", "the last tier has no up_to: it takes every unit past the tier before")
		case !last && t.UpTo == nil:
			return nil, pb.Errorf(pb.ErrParameterMissing, param+".up_to", "every tier but the last needs up_to")
		case !last && (*t.UpTo <= prev || *t.UpTo > pb.MaxEventQuantity):
			return nil, pb.Errorf(pb.ErrParameterInvalid, param+".up_to", "up_to must be above the tier before's (%d) and at most %d units", prev, int64(pb.MaxEventQuantity))
		}
		nanos, err := ParseUnitPrice(t.UnitPrice)
		if err != nil {
			e := err.(*pb.Error)
			e.Param = param + ".unit_price"
			return nil, e
		}
		out[i] = pb.PriceTier{UpTo: t.UpTo, UnitPrice: FormatNanos(nanos), UnitPriceNanos: nanos}
		if t.UpTo != nil {
			prev = *t.UpTo
		}
	}
	return out, nil
}

// segment is the units of one event line that fall in one tier.
type segment struct {
	tier     int // 1-based
	quantity int64
	nanos    int64
}

// graduate splits q units, counted from the month's used units on, into
// the tiers of p they fall in (q units at p's one price when p has no
// tiers). Units are counted in arrival order: the month's first
// tiers[0].up_to units are in tier 1, and so on.
func graduate(p *pb.Price, used, q int64) []segment {
	if len(p.Tiers) == 0 {
		return []segment{{1, q, p.UnitPriceNanos}}
	}
	var out []segment
	from, lo := used, int64(0)
	for i, t := range p.Tiers {
		hi := int64(math.MaxInt64)
		if t.UpTo != nil {
			hi = *t.UpTo
		}
		if from < hi && q > 0 {
			n := min(q, hi-max(from, lo))
			out = append(out, segment{i + 1, n, t.UnitPriceNanos})
			q -= n
			from += n
		}
		lo = hi
	}
	return out
}

// maxNanos is p's highest unit price: what a reservation's estimate is
// held at, so that it covers the usage whichever tier it falls in.
func maxNanos(p *pb.Price) int64 {
	n := p.UnitPriceNanos
	for _, t := range p.Tiers {
		n = max(n, t.UnitPriceNanos)
	}
	return n
}

const kindTierCount = "tiercount"

// TierCount counts a customer's units of one graduated price version in
// one calendar month (UTC, by the events' own time), in the order the
// events were acknowledged: which tier the next unit falls in.
type TierCount struct {
	ID         string `json:"id"`
	ProviderID string `json:"provider_id"`
	CustomerID string `json:"customer_id"`
	PriceID    string `json:"price_id"`
	Month      string `json:"month"` // "2026-11"
	Used       int64  `json:"used"`
	Version    int64  `json:"-"`
}

func tierCountID(price, customer, month string) string {
	return "tiers:" + price + ":" + customer + ":" + month
}

type countState struct {
	n     TierCount // its Version is the one read
	dirty bool
}

// count returns the counter of price for customer in month, read once.
func (s *Service) count(tx *ledger.Tx, c *ingestCache, provider, customer, price, month string) (*countState, error) {
	id := tierCountID(price, customer, month)
	if n, ok := c.counts[id]; ok {
		return n, nil
	}
	n := &countState{}
	o, err := s.current(tx, id, &n.n)
	switch {
	case pb.ErrorCode(err) == pb.ErrNotFound:
		n.n = TierCount{ID: id, ProviderID: provider, CustomerID: customer, PriceID: price, Month: month}
	case err != nil:
		return nil, err
	default:
		n.n.Version = o.Version
	}
	c.counts[id] = n
	c.order = append(c.order, id)
	return n, nil
}

// graduate splits each of e's lines priced by a graduated price into a
// line per tier its units fall in (UsageLineKey), counting them in the
// month's counter; the others are returned as they are.
func (s *Service) graduate(tx *ledger.Tx, c *ingestCache, provider string, e *Event, lines []*line) ([]*line, error) {
	if !slices.ContainsFunc(lines, func(l *line) bool { return l.graduated != nil }) {
		return lines, nil
	}
	var out []*line
	for _, l := range lines {
		if l.graduated == nil {
			out = append(out, l)
			continue
		}
		n, err := s.count(tx, c, provider, e.Customer, l.PriceID, e.Timestamp.UTC().Format("2006-01"))
		if err != nil {
			return nil, err
		}
		old, wasDirty := n.n.Used, n.dirty
		c.undo = append(c.undo, func() { n.n.Used, n.dirty = old, wasDirty })
		for _, sg := range graduate(l.graduated, n.n.Used, l.Quantity) {
			part := *l
			part.Line, part.Quantity, part.nanos = pb.UsageLineKey(l.Line, sg.tier), sg.quantity, sg.nanos
			out = append(out, &part)
		}
		if l.Quantity == 0 {
			out = append(out, l) // a line of no units still says they were reported
		}
		n.n.Used = min(n.n.Used, math.MaxInt64-l.Quantity) + l.Quantity // saturates: past any tier
		n.dirty = true
	}
	return out, nil
}

// lineNanos is the unit price stored line l was charged at under p: its
// tier's, for a graduated price.
func lineNanos(p *pb.Price, l *pb.UsageLine) int64 {
	if len(p.Tiers) == 0 {
		return p.UnitPriceNanos
	}
	return p.Tiers[min(l.Tier(), len(p.Tiers))-1].UnitPriceNanos
}
