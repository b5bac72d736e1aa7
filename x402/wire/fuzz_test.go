package wire

import (
	"encoding/base64"
	"testing"
)

// FuzzDecodeHeader: no header crashes the decoder, and what decodes as a
// payload is either refused or read the same way again.
func FuzzDecodeHeader(f *testing.F) {
	for _, s := range []string{"", "e30", "eyJ4NDAyVmVyc2lvbiI6Mn0=", "%%%",
		base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2,"accepted":{"scheme":"exact"},"payload":{"authorization":{"from":"a"},"signature":"x"}}`))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var p PaymentPayload
		if DecodeHeader(s, &p) != nil {
			return
		}
		p.PaymentIdentifier()
		if sa, err := ParseSignedAuthorization(p.Payload); err == nil {
			if _, err := sa.Authorization.SigningInput(SchemeExact, "paybound:x"); err != nil {
				t.Fatalf("a parsed authorization has no signing input: %v", err)
			}
		}
		if tp, err := ParseTabPayload(p.Payload); err == nil && tp.Type == TabDeposit && tp.Deposit == nil {
			t.Fatal("a deposit without its authorization parsed")
		}
		enc, err := EncodeHeader(p)
		if err != nil {
			t.Fatal(err)
		}
		var again PaymentPayload
		if err := DecodeHeader(enc, &again); err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
	})
}
