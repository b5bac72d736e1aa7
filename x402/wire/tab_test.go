package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestPayChain checks the chain a payer reveals: each step hashes to the
// one before, across the segments it keeps, and ends at the anchor.
func TestPayChain(t *testing.T) {
	for _, n := range []int64{1, 255, 256, 257, 1000} {
		c, err := NewPayChain(n)
		if err != nil {
			t.Fatal(err)
		}
		prev := c.At(0)
		for j := int64(1); j <= n; j++ {
			w := c.At(j)
			if sha256.Sum256(w[:]) != prev {
				t.Fatalf("length %d: w_%d does not hash to w_%d", n, j, j-1)
			}
			prev = w
		}
		// Out of order, as after a corrective 402.
		w3, w0 := c.At(min(3, n)), c.At(0)
		if !Follows(hex.EncodeToString(w3[:]), min(3, n), w0) {
			t.Fatalf("length %d: w_3 does not reach the anchor", n)
		}
	}
	for _, n := range []int64{0, -1, MaxChainLength + 1} {
		if _, err := NewPayChain(n); err == nil {
			t.Fatalf("a chain of %d steps was made", n)
		}
	}
}

// TestVoucherVerify checks the facilitator's check of a voucher: the
// payer's signed commitment, and a preimage that reaches its anchor in
// exactly Index steps for Index × Unit.
func TestVoucherVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	const tab = "tab_0123456789abcdefghjkmnpqrs"
	c, _ := NewPayChain(100)
	cm := c.Commit(priv, tab, 100)
	v := c.Voucher(tab, 100, 42)
	v.Commitment = cm
	if n, err := v.Verify(pub); err != nil || n != 4200 {
		t.Fatalf("a good voucher: %d, %v", n, err)
	}
	bad := map[string]func(v *Voucher){
		"another key":       func(v *Voucher) {},
		"no commitment":     func(v *Voucher) { v.Commitment = nil },
		"another tab":       func(v *Voucher) { v.ChannelID = "tab_1123456789abcdefghjkmnpqrs" },
		"a longer chain":    func(v *Voucher) { c := *v.Commitment; c.Length = 101; v.Commitment = &c },
		"a dearer unit":     func(v *Voucher) { c := *v.Commitment; c.Unit = "200"; v.Commitment = &c },
		"a step too far":    func(v *Voucher) { v.Index = 43; v.MaxClaimableAmount = "4300" },
		"an inflated claim": func(v *Voucher) { v.MaxClaimableAmount = "4300" },
		"past the chain":    func(v *Voucher) { v.Index = 101; v.MaxClaimableAmount = "10100" },
		"a forged preimage": func(v *Voucher) { v.Preimage = strings.Repeat("00", 32) },
		"not hex":           func(v *Voucher) { v.Preimage = strings.Repeat("zz", 32) },
	}
	for name, f := range bad {
		w := v
		f(&w)
		key := pub
		if name == "another key" {
			key = otherPub
		}
		if _, err := w.Verify(key); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func BenchmarkVoucherFollows(b *testing.B) {
	c, _ := NewPayChain(MaxChainLength)
	held := c.At(0)
	for i := range b.N {
		j := int64(i%MaxChainLength) + 1
		if j == 1 {
			held = c.At(0)
		}
		v := c.Voucher("tab_x", 1, j)
		if !Follows(v.Preimage, 1, held) {
			b.Fatal("no")
		}
		held = c.At(j)
	}
}
