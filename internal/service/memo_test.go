package service

import "testing"

// TestMemo: a value read before a Forget is not kept after it; a value is
// kept under all its keys at once and forgotten by any; past Max the memo
// starts again empty rather than growing.
func TestMemo(t *testing.T) {
	var m Memo[string, int]
	m.Max = 4
	if _, _, ok := m.Get("a"); ok {
		t.Fatal("an empty memo had a value")
	}
	_, gen, _ := m.Get("a")
	m.Forget("b") // a change committed while "a" was being read
	m.Keep(gen, 1, "a")
	if _, _, ok := m.Get("a"); ok {
		t.Fatal("a value read before a Forget was kept")
	}
	_, gen, _ = m.Get("a")
	m.Keep(gen, 2, "a", "A")
	if v, _, ok := m.Get("A"); !ok || v != 2 {
		t.Fatalf("Get(A) = %d, %v; want 2 kept under both keys", v, ok)
	}
	m.Forget("a", "A")
	if _, _, ok := m.Get("A"); ok {
		t.Fatal("a forgotten key is still kept")
	}
	for i, k := range []string{"w", "x", "y", "z", "overflow"} {
		_, gen, _ := m.Get(k)
		m.Keep(gen, i, k)
	}
	if len(m.m) > m.Max {
		t.Fatalf("%d entries kept, Max %d", len(m.m), m.Max)
	}
	if v, _, ok := m.Get("overflow"); !ok || v != 4 {
		t.Fatalf("the value kept past Max is gone: %d, %v", v, ok)
	}
}
