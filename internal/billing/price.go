package billing

import (
	"math/big"
	"math/bits"
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
