package stepup

import (
	"strings"
	"testing"
	"time"
)

// RFC 6238 appendix B, SHA-1 column, with the last 6 of its 8 digits
// (truncation modulo 10^6 of the same value).
func TestTOTPRFC6238(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, c := range []struct {
		unix int64
		want string
	}{
		{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"},
		{1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
	} {
		if got := TOTPCode(secret, time.Unix(c.unix, 0)); got != c.want {
			t.Errorf("T=%d: %s, want %s", c.unix, got, c.want)
		}
	}
	// The 8-digit values themselves, through hotp.
	if got := hotp(secret, 59/30, 8); got != "94287082" {
		t.Errorf("8 digits at T=59: %s", got)
	}
}

func TestVerifyTOTP(t *testing.T) {
	secret, enc := NewTOTPSecret()
	back, err := DecodeTOTPSecret(strings.ToLower(enc))
	if err != nil || string(back) != string(secret) {
		t.Fatalf("secret round trip: %v", err)
	}
	now := time.Unix(1_800_000_015, 0)
	code := TOTPCode(secret, now)
	step, ok := VerifyTOTP(secret, code, now, 0)
	if !ok {
		t.Fatal("the current code is refused")
	}
	if _, ok := VerifyTOTP(secret, code, now, step); ok {
		t.Fatal("a code was accepted twice")
	}
	if _, ok := VerifyTOTP(secret, code, now.Add(TOTPStep), 0); !ok {
		t.Fatal("one step of drift is refused")
	}
	if _, ok := VerifyTOTP(secret, code, now.Add(3*TOTPStep), 0); ok {
		t.Fatal("a code three steps old is accepted")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := VerifyTOTP(secret, bad, now, 0); ok {
			t.Fatalf("%q accepted", bad)
		}
	}
	other, _ := NewTOTPSecret()
	if _, ok := VerifyTOTP(other, code, now, 0); ok {
		t.Fatal("another secret's code accepted")
	}
	if _, err := DecodeTOTPSecret("not base32!"); err == nil {
		t.Fatal("a bad secret decoded")
	}
	u := TOTPURL("Paybound", "ada@example.com", secret)
	if !strings.HasPrefix(u, "otpauth://totp/Paybound:ada@example.com?") || !strings.Contains(u, "secret="+enc) || !strings.Contains(u, "digits=6") {
		t.Fatalf("otpauth URL %s", u)
	}
}
