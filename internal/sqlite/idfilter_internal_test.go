package sqlite

import (
	"fmt"
	"testing"
)

// TestIDFilterBloom: every hash added is held; of as many never added,
// about 0.1% seem held when the filter holds what it was built for.
func TestIDFilterBloom(t *testing.T) {
	const n = 200_000
	f := newIDFilter(n)
	for i := range n {
		f.add(idHash("mch_a", fmt.Sprintf("in-%d", i)))
	}
	for i := range n {
		if !f.has(idHash("mch_a", fmt.Sprintf("in-%d", i))) {
			t.Fatalf("in-%d was added and is not held", i)
		}
	}
	fp := 0
	for i := range n {
		if f.has(idHash("mch_a", fmt.Sprintf("out-%d", i))) {
			fp++
		}
		if f.has(idHash("mch_b", fmt.Sprintf("in-%d", i))) {
			fp++
		}
	}
	if rate := float64(fp) / (2 * n); rate > 0.004 {
		t.Fatalf("%.3f%% false positives at capacity; want about 0.1%%", 100*rate)
	}
}
