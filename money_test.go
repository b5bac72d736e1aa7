package paybound

import (
	"testing"
)

func TestParseAmount(t *testing.T) {
	ok := []struct {
		in, cur string
		want    int64
	}{
		{"12.50", "USD", 1250}, {"12.5", "USD", 1250}, {"12", "USD", 1200}, {"0.01", "USD", 1},
		{"500", "JPY", 500}, {"1.234", "KWD", 1234}, {"0.001", "BHD", 1}, {"10000000000000.00", "USD", MaxAmount},
		{"007.10", "EUR", 710}, {"1000000000000000", "JPY", MaxAmount},
	}
	for _, c := range ok {
		got, err := ParseAmount(c.in, c.cur)
		if err != nil || got != c.want {
			t.Errorf("ParseAmount(%q, %s) = %d, %v; want %d", c.in, c.cur, got, err, c.want)
		}
	}
	bad := []struct {
		in, cur string
		code    Code
	}{
		{"0.001", "USD", ErrInvalidAmount}, {"1.5", "JPY", ErrInvalidAmount}, {"0", "USD", ErrInvalidAmount},
		{"0.00", "USD", ErrInvalidAmount}, {"-1.00", "USD", ErrInvalidAmount}, {"+1.00", "USD", ErrInvalidAmount},
		{"1e3", "USD", ErrInvalidAmount}, {"", "USD", ErrInvalidAmount}, {".5", "USD", ErrInvalidAmount},
		{"5.", "USD", ErrInvalidAmount}, {"1,00", "USD", ErrInvalidAmount}, {"10000000000000.01", "USD", ErrInvalidAmount},
		{"99999999999999999999", "USD", ErrInvalidAmount}, {" 1.00", "USD", ErrInvalidAmount},
		{"1.00", "usd", ErrInvalidCurrency}, {"1.00", "XXX", ErrInvalidCurrency}, {"1.00", "", ErrInvalidCurrency},
	}
	for _, c := range bad {
		got, err := ParseAmount(c.in, c.cur)
		if ErrorCode(err) != c.code {
			t.Errorf("ParseAmount(%q, %s) = %d, %v; want code %s", c.in, c.cur, got, err, c.code)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	cases := []struct {
		v    int64
		cur  string
		want string
	}{
		{1250, "USD", "12.50"}, {1, "USD", "0.01"}, {0, "USD", "0.00"}, {-5, "USD", "-0.05"}, {-1250, "EUR", "-12.50"},
		{500, "JPY", "500"}, {1234, "KWD", "1.234"}, {1, "BHD", "0.001"}, {MaxAmount, "CNY", "10000000000000.00"},
		{-9223372036854775808, "USD", "-92233720368547758.08"},
	}
	for _, c := range cases {
		if got := FormatAmount(c.v, c.cur); got != c.want {
			t.Errorf("FormatAmount(%d, %s) = %q; want %q", c.v, c.cur, got, c.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, cur := range []string{"USD", "JPY", "KWD", "CNY"} {
		for _, v := range []int64{1, 9, 10, 99, 100, 101, 123456789, MaxAmount} {
			got, err := ParseAmount(FormatAmount(v, cur), cur)
			if err != nil || got != v {
				t.Errorf("%s %d: round trip gave %d, %v", cur, v, got, err)
			}
		}
	}
}

func TestValidateAmount(t *testing.T) {
	for _, v := range []int64{0, -1, MaxAmount + 1, 1e16} {
		if ErrorCode(ValidateAmount(v, "amount")) != ErrInvalidAmount {
			t.Errorf("ValidateAmount(%d) accepted", v)
		}
	}
	for _, v := range []int64{1, MaxAmount} {
		if err := ValidateAmount(v, "amount"); err != nil {
			t.Errorf("ValidateAmount(%d) = %v", v, err)
		}
	}
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.50", "0.001", "1e3", "-1", "99999999999999999999", "١٢"} {
		f.Add(s, "USD")
	}
	f.Fuzz(func(t *testing.T, s, cur string) {
		v, err := ParseAmount(s, cur)
		if err != nil {
			if ErrorCode(err) == ErrInternal {
				t.Fatalf("uncoded error %v", err)
			}
			return
		}
		if v <= 0 || v > MaxAmount {
			t.Fatalf("ParseAmount(%q) = %d out of range", s, v)
		}
		if back, err := ParseAmount(FormatAmount(v, cur), cur); err != nil || back != v {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, v, FormatAmount(v, cur), back, err)
		}
	})
}
