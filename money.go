package paybound

import (
	"strconv"
	"strings"
)

// MaxAmount is the largest amount, in minor units, that any single money
// movement may carry (10^15). It keeps every sum of a realistic number of
// movements far inside int64, so balance arithmetic never overflows.
const MaxAmount int64 = 1_000_000_000_000_000

// currencyExponents maps each active ISO 4217 code to its minor-unit exponent.
// Funds codes and precious metals are left out on purpose: nobody pays an
// agent in XAU.
var currencyExponents = func() map[string]int {
	m := map[string]int{}
	two := "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD " +
		"CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ " +
		"GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA " +
		"MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR " +
		"RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD " +
		"TWD TZS UAH USD UYU UZS VES WST XCD XCG YER ZAR ZMW ZWG"
	for _, c := range strings.Fields(two) {
		m[c] = 2
	}
	for _, c := range strings.Fields("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF") {
		m[c] = 0
	}
	for _, c := range strings.Fields("BHD IQD JOD KWD LYD OMR TND") {
		m[c] = 3
	}
	return m
}()

// CurrencyExponent reports the ISO 4217 minor-unit exponent of code (2 for
// USD: 1.00 USD is 100 minor units; 0 for JPY). ok is false for anything that
// is not an upper-case active ISO 4217 code.
func CurrencyExponent(code string) (exp int, ok bool) {
	exp, ok = currencyExponents[code]
	return exp, ok
}

// ValidateCurrency returns an invalid_request error naming param unless code
// is an active upper-case ISO 4217 code.
func ValidateCurrency(code, param string) error {
	if _, ok := currencyExponents[code]; !ok {
		return Errorf(ErrInvalidCurrency, param, "%q is not an ISO 4217 currency code; use an upper-case code such as USD, EUR, CNY or JPY", code)
	}
	return nil
}

// ValidateAmount returns an invalid_request error naming param unless
// 0 < amount <= MaxAmount.
func ValidateAmount(amount int64, param string) error {
	if amount <= 0 {
		return Errorf(ErrInvalidAmount, param, "amount must be a positive integer number of the currency's minor units (12.50 USD is 1250); got %d", amount)
	}
	if amount > MaxAmount {
		return Errorf(ErrInvalidAmount, param, "amount %d is above the limit of %d minor units", amount, MaxAmount)
	}
	return nil
}

// ParseAmount converts a human decimal such as "12.50" in currency to minor
// units (1250 for USD). It accepts at most the currency's exponent of
// fraction digits and never rounds: "0.001" USD is an error, not 0. The
// result is validated with ValidateAmount.
func ParseAmount(s, currency string) (int64, error) {
	exp, ok := CurrencyExponent(currency)
	if !ok {
		return 0, ValidateCurrency(currency, "currency")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || strings.ContainsAny(whole, "+-") {
		return 0, Errorf(ErrInvalidAmount, "amount", "%q is not a positive decimal amount such as 12.50", s)
	}
	if len(frac) > exp {
		return 0, Errorf(ErrInvalidAmount, "amount", "%q has more than %d decimal places, the most %s allows", s, exp, currency)
	}
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	if len(digits) > 19 {
		return 0, Errorf(ErrInvalidAmount, "amount", "%q is above the limit of %s", s, FormatAmount(MaxAmount, currency))
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, Errorf(ErrInvalidAmount, "amount", "%q is not a positive decimal amount such as 12.50", s)
		}
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, Errorf(ErrInvalidAmount, "amount", "%q is above the limit of %s", s, FormatAmount(MaxAmount, currency))
	}
	if err := ValidateAmount(v, "amount"); err != nil {
		return 0, err
	}
	return v, nil
}

// FormatAmount renders minor units as a decimal in currency's exponent:
// FormatAmount(1250, "USD") == "12.50", FormatAmount(-5, "USD") == "-0.05",
// FormatAmount(500, "JPY") == "500". Unknown currencies format with exponent 2.
func FormatAmount(amount int64, currency string) string {
	exp, ok := CurrencyExponent(currency)
	if !ok {
		exp = 2
	}
	neg := amount < 0
	u := uint64(amount)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if exp > 0 {
		if len(s) <= exp {
			s = strings.Repeat("0", exp-len(s)+1) + s
		}
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
