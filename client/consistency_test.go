package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/internal/tlog"
)

// TestVerifyConsistency: checkpoints of one log verify, of one size
// offline and of two sizes with a proof from the server; a fork, another
// history and a checkpoint of another key do not.
func TestVerifyConsistency(t *testing.T) {
	t.Parallel()
	l := auditedLog(t)
	c := client.New(l.URL, "")
	ctx := t.Context()
	first := l.signedCheckpoint()
	l.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t04", 100, 100, 0)
	later := l.signedCheckpoint()
	if err := client.VerifyConsistency(ctx, nil, l.LogKey, first, first); err != nil {
		t.Errorf("one checkpoint twice: %v", err)
	}
	if err := client.VerifyConsistency(ctx, c, l.LogKey, later, first); err != nil {
		t.Errorf("a log that grew: %v", err)
	}
	if err := client.VerifyConsistency(ctx, nil, l.LogKey, first, later); err == nil {
		t.Errorf("two sizes checked without a client")
	}
	forked := must(l.signer.Sign(8, tlog.LeafHash([]byte("another history"))))
	var ce *client.ConsistencyError
	if err := client.VerifyConsistency(ctx, nil, l.LogKey, later, forked); !errors.Is(err, client.ErrFork) || !errors.As(err, &ce) || ce.NewSize != 8 {
		t.Errorf("a fork: %v", err)
	}
	rewritten := must(l.signer.Sign(2, tlog.LeafHash([]byte("not the first entries"))))
	if err := client.VerifyConsistency(ctx, c, l.LogKey, later, rewritten); !errors.Is(err, client.ErrInconsistent) ||
		!errors.As(err, &ce) || ce.OldSize != 2 || ce.NewSize != 8 || !strings.Contains(err.Error(), "checkpoints of size 2 and 8") {
		t.Errorf("another history: %v", err)
	}
	_, otherKey := must2(tlog.NewKey("paybound.example/log"))
	if err := client.VerifyConsistency(ctx, c, otherKey, first, later); !errors.Is(err, client.ErrBadSignature) {
		t.Errorf("another key: %v", err)
	}
	l.Close()
	if err := client.VerifyConsistency(ctx, c, l.LogKey, first, later); err == nil || !strings.Contains(err.Error(), "couldn't fetch a consistency proof") {
		t.Errorf("no server: %v", err)
	}
}

// TestVerifyWitnesses: a receipt's checkpoint meets a policy without a
// quorum, not one that requires a witness which did not cosign it; a
// policy that does not parse is no verdict on the receipt.
func TestVerifyWitnesses(t *testing.T) {
	t.Parallel()
	l := auditedLog(t)
	r, err := client.New(l.URL, "").PaymentReceipt(t.Context(), "pay_01jq8v6x3k2m4n5p6q7r8s9t01")
	if err != nil {
		t.Fatal(err)
	}
	v, err := client.VerifyReceipt(r, l.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	_, witnessKey := must2(tlog.NewKey("witness.example"))
	for _, c := range []struct {
		policy   string
		ok, isRc bool
	}{
		{"quorum none\n", true, false},
		{"witness w " + witnessKey + " https://witness.example/\nquorum w\n", false, true},
		{"quorum\n", false, false},
	} {
		err := v.VerifyWitnesses([]byte(c.policy))
		if (err == nil) != c.ok || errors.Is(err, client.ErrReceipt) != c.isRc {
			t.Errorf("%q: %v", c.policy, err)
		}
	}
}
