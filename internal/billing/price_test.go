package billing

import (
	"fmt"
	"math/big"
	"testing"

	pb "github.com/paybound/paybound"
	"pgregory.net/rapid"
)

func TestParseUnitPrice(t *testing.T) {
	for in, want := range map[string]int64{"2.50": 2_500_000_000, "0.000000001": 1, "10": 10_000_000_000, "0": 0,
		"1000000": pb.MaxUnitPriceNanos, "0.123456789": 123_456_789} {
		if got, err := ParseUnitPrice(in); err != nil || got != want {
			t.Errorf("ParseUnitPrice(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".5", "1.", "-1", "+1", "1e3", "1.0000000001", "1000000.000000001", "10000000", "1,5", " 1", "0x10", "½"} {
		if got, err := ParseUnitPrice(in); pb.ErrorCode(err) != pb.ErrParameterInvalid {
			t.Errorf("ParseUnitPrice(%q) = %d, %v; want parameter_invalid", in, got, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{2_500_000_000: "2.50", 1: "0.000000001", 0: "0.00", 123_456_789_000: "123.456789"} {
		if got := FormatNanos(n); got != want {
			t.Errorf("FormatNanos(%d) = %q, want %q", n, got, want)
		}
	}
	for f, want := range map[string]string{"1": "0.000000000000001", "1000000000000000": "1.00", "20000000000000000001": "20000.000000000000001", "0": "0.00"} {
		v, _ := new(big.Int).SetString(f, 10)
		if got := FormatFemtos(v); got != want {
			t.Errorf("FormatFemtos(%s) = %q, want %q", f, got, want)
		}
	}
}

// TestChargeRoundsOnce: whatever the events, the minor units charged sum
// to the exact total rounded down, the carry stays below a minor unit, and
// a hold covers its estimate.
func TestChargeRoundsOnce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		exp := rapid.SampledFrom([]int{0, 2, 3}).Draw(t, "exp")
		unit := new(big.Int).SetUint64(femtosPerMinor(exp))
		carry, charged := int64(0), int64(0)
		total := new(big.Int)
		for i := range rapid.IntRange(1, 50).Draw(t, "events") {
			q := rapid.Int64Range(0, pb.MaxEventQuantity).Draw(t, "q")
			p := rapid.Int64Range(0, pb.MaxUnitPriceNanos).Draw(t, "p")
			if rapid.Bool().Draw(t, "small") {
				q, p = q%5000, p%10_000_000
			}
			var minor int64
			minor, carry = Charge(carry, q, p, exp)
			charged += minor
			total.Add(total, ExactCost(q, p))
			want := new(big.Int).Quo(total, unit)
			if !want.IsInt64() || want.Int64() != charged || carry < 0 || uint64(carry) >= femtosPerMinor(exp) {
				t.Fatalf("after %d events: charged %d, carry %d; exact total %s femtos, want %s charged", i+1, charged, carry, total, want)
			}
			if charged > pb.MaxAmount*1000 {
				return
			}
			h := HoldAmount(q, p, exp)
			if c := ExactCost(q, p); new(big.Int).Mul(big.NewInt(h), unit).Cmp(c) < 0 || new(big.Int).Mul(big.NewInt(h-1), unit).Cmp(c) >= 0 && h > 0 {
				t.Fatalf("HoldAmount(%d, %d) = %d does not cover %s femtos by less than a minor unit", q, p, h, c)
			}
		}
	})
}

// FuzzParseUnitPrice: any input is refused or read exactly, and what is
// read formats back to a price that reads the same.
func FuzzParseUnitPrice(f *testing.F) {
	for _, s := range []string{"2.50", "0.000000001", "1000000", "1e3", "-1", "", "01.10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseUnitPrice(s)
		if err != nil {
			if pb.ErrorCode(err) != pb.ErrParameterInvalid {
				t.Fatalf("ParseUnitPrice(%q): %v", s, err)
			}
			return
		}
		if n < 0 || n > pb.MaxUnitPriceNanos {
			t.Fatalf("ParseUnitPrice(%q) = %d, out of range", s, n)
		}
		if m, err := ParseUnitPrice(FormatNanos(n)); err != nil || m != n {
			t.Fatalf("%q read %d, formatted %q, read back %d, %v", s, n, FormatNanos(n), m, err)
		}
	})
}

func i64(v int64) *int64 { return &v }

// TestGraduate: units are split into the tiers they fall in, counted from
// the month's units before them; any split of a month's units into events
// puts the same units in each tier.
func TestGraduate(t *testing.T) {
	tiers, err := parseTiers([]TierParams{{i64(100), "3"}, {i64(250), "2"}, {nil, "1"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &pb.Price{Tiers: tiers, UnitPriceNanos: tiers[0].UnitPriceNanos}
	for _, c := range []struct {
		used, q int64
		want    string
	}{
		{0, 50, "[{1 50 3000000000}]"},
		{80, 50, "[{1 20 3000000000} {2 30 2000000000}]"},
		{0, 1000, "[{1 100 3000000000} {2 150 2000000000} {3 750 1000000000}]"},
		{250, 5, "[{3 5 1000000000}]"},
		{100, 150, "[{2 150 2000000000}]"},
	} {
		if got := fmt.Sprint(graduate(p, c.used, c.q)); got != c.want {
			t.Errorf("graduate(%d, %d) = %s, want %s", c.used, c.q, got, c.want)
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		qs := rapid.SliceOfN(rapid.Int64Range(0, 200), 1, 20).Draw(rt, "events")
		per := map[int]int64{}
		used := int64(0)
		for _, q := range qs {
			for _, s := range graduate(p, used, q) {
				per[s.tier] += s.quantity
			}
			used += q
		}
		want := map[int]int64{1: min(used, 100), 2: min(max(used-100, 0), 150), 3: max(used-250, 0)}
		for tier := 1; tier <= 3; tier++ {
			if per[tier] != want[tier] {
				rt.Fatalf("tier %d holds %d units of %v, want %d", tier, per[tier], qs, want[tier])
			}
		}
	})
	for _, c := range []struct {
		in    []TierParams
		param string
	}{
		{[]TierParams{{i64(100), "3"}}, "tiers[0].up_to"},
		{[]TierParams{{nil, "3"}, {nil, "2"}}, "tiers[0].up_to"},
		{[]TierParams{{i64(100), "3"}, {i64(100), "2"}, {nil, "1"}}, "tiers[1].up_to"},
		{[]TierParams{{i64(0), "3"}, {nil, "1"}}, "tiers[0].up_to"},
		{[]TierParams{{i64(100), "3"}, {nil, "1.0000000001"}}, "tiers[1].unit_price"},
		{make([]TierParams, pb.MaxPriceTiers+1), "tiers"},
	} {
		if _, err := parseTiers(c.in); err == nil || err.(*pb.Error).Param != c.param {
			t.Errorf("parseTiers(%v) = %v, want an error of %s", c.in, err, c.param)
		}
	}
}
