package paybound

import (
	"testing"
	"time"
)

// TestCanTransition checks every pair of statuses against the lifecycle.
func TestCanTransition(t *testing.T) {
	allowed := map[[2]PaymentStatus]bool{
		{"", StatusRequiresConfirmation}: true, {"", StatusAuthorized}: true, {"", StatusCaptured}: true, {"", StatusDeclined}: true,
		{StatusRequiresConfirmation, StatusAuthorized}: true, {StatusRequiresConfirmation, StatusCaptured}: true,
		{StatusRequiresConfirmation, StatusDeclined}: true, {StatusRequiresConfirmation, StatusCanceled}: true,
		{StatusRequiresConfirmation, StatusExpired}: true,
		{StatusAuthorized, StatusCaptured}:          true, {StatusAuthorized, StatusCanceled}: true, {StatusAuthorized, StatusExpired}: true,
		{StatusCaptured, StatusCaptured}: true, {StatusCaptured, StatusRefunded}: true,
	}
	from := append([]PaymentStatus{""}, AllPaymentStatuses...)
	for _, f := range from {
		for _, to := range AllPaymentStatuses {
			if got := CanTransition(f, to); got != allowed[[2]PaymentStatus{f, to}] {
				t.Errorf("CanTransition(%q, %q) = %v", f, to, got)
			}
		}
	}
	for _, terminal := range []PaymentStatus{StatusRefunded, StatusCanceled, StatusExpired, StatusDeclined} {
		for _, to := range AllPaymentStatuses {
			if CanTransition(terminal, to) {
				t.Errorf("terminal %s may move to %s", terminal, to)
			}
		}
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := NewID(PrefixPayment, t0)
	if !HasPrefix(prev, PrefixPayment) {
		t.Fatalf("NewID gave %q, which HasPrefix rejects", prev)
	}
	for i := 1; i < 1000; i++ {
		id := NewID(PrefixPayment, t0.Add(time.Duration(i)*time.Millisecond))
		if id <= prev {
			t.Fatalf("%q does not sort after %q", id, prev)
		}
		prev = id
	}
	for _, bad := range []string{"", "pay_", "pay_0123456789abcdefghjkmnpqr", "usr_0123456789abcdefghjkmnpqrs", "pay_0123456789abcdefghjkmnpqr!"} {
		if HasPrefix(bad, PrefixPayment) {
			t.Errorf("HasPrefix(%q) = true", bad)
		}
	}
}

func TestParseEd25519JWK(t *testing.T) {
	// RFC 8037 appendix A.3's thumbprint of its example key.
	raw := []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`)
	_, tp, err := ParseEd25519JWK(raw)
	if err != nil || tp != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint = %q, %v", tp, err)
	}
	for _, bad := range []string{`{}`, `[]`, `{"kty":"RSA"}`, `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`,
		`{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}`} {
		if _, _, err := ParseEd25519JWK([]byte(bad)); ErrorCode(err) != ErrParameterInvalid {
			t.Errorf("ParseEd25519JWK(%s) = %v", bad, err)
		}
	}
}

func FuzzParseEd25519JWK(f *testing.F) {
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":""}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		canon, tp, err := ParseEd25519JWK(raw)
		if err != nil {
			if ErrorCode(err) != ErrParameterInvalid {
				t.Fatalf("uncoded error %v", err)
			}
			return
		}
		// A key that parses is canonical: parsing the canonical form is stable.
		canon2, tp2, err := ParseEd25519JWK([]byte(canon))
		if err != nil || canon2 != canon || tp2 != tp {
			t.Fatalf("canonical form does not round-trip: %q %v", canon, err)
		}
	})
}
