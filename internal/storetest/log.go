package storetest

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/tlog"
)

// logBatch returns n log records, the i-th about subjects[i%len].
func logBatch(start, n int, subjects ...string) []pb.LogRecord {
	out := make([]pb.LogRecord, n)
	for i := range out {
		out[i] = pb.LogRecord{Subject: subjects[(start+i)%len(subjects)], Body: fmt.Appendf(nil, `{"n":%d}`, start+i)}
	}
	return out
}

// integrate places the pending entries as a server would.
func integrate(t *testing.T, s pb.Store) {
	t.Helper()
	for {
		n, _, err := ledger.IntegrateLog(t.Context(), s, 1000)
		if err != nil {
			t.Fatalf("IntegrateLog: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// checkTree checks that the store's log holds exactly entries, in order,
// with the root and proofs of the same tree built in memory.
func checkTree(t *testing.T, s pb.Store, entries []pb.LogRecord) {
	t.Helper()
	ctx := t.Context()
	var mem tlog.Memory
	for _, e := range entries {
		mem.Append(e.Body)
	}
	size, root, err := s.LogState(ctx)
	if err != nil {
		t.Fatalf("LogState: %v", err)
	}
	want, _ := mem.Root(mem.Size())
	if mem.Size() == 0 {
		want = tlog.EmptyRoot
	}
	if size != mem.Size() || root != want {
		t.Fatalf("LogState = %d %x, want %d %x", size, root, mem.Size(), want)
	}
	got, err := s.LogEntries(ctx, 0, pb.MaxLogRead)
	if err != nil {
		t.Fatalf("LogEntries: %v", err)
	}
	if len(got) != len(entries) {
		t.Fatalf("LogEntries returned %d entries, want %d", len(got), len(entries))
	}
	for i, e := range got {
		if e.Index != int64(i) || e.Subject != entries[i].Subject || !bytes.Equal(e.Body, entries[i].Body) {
			t.Fatalf("entry %d = %d %s %s, want %s %s", i, e.Index, e.Subject, e.Body, entries[i].Subject, entries[i].Body)
		}
	}
	c := tlog.Checkpoint{Origin: "storetest", Size: size, Hash: root}
	for _, i := range []int64{0, size / 2, size - 1} {
		if size == 0 {
			break
		}
		proof, err := tlog.ProveInclusion(i, size, ledger.StoredHashes(ctx, s))
		if err != nil {
			t.Fatalf("ProveInclusion(%d, %d): %v", i, size, err)
		}
		if err := tlog.VerifyInclusion(entries[i].Body, i, proof, c); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

// CheckLog checks that s's log holds exactly entries, in order, with
// their subjects, the root of the same tree built in memory, an inclusion
// proof of every entry, and each subject's entries through SubjectLog: for
// a store's own tests, such as a migration's (the suite checks less at
// each step).
func CheckLog(t *testing.T, s pb.Store, entries []pb.LogRecord) {
	t.Helper()
	checkTree(t, s, entries)
	ctx := t.Context()
	size, root, err := s.LogState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := tlog.Checkpoint{Origin: "storetest", Size: size, Hash: root}
	bySubject := map[string][]int64{}
	for i, e := range entries {
		proof, err := tlog.ProveInclusion(int64(i), size, ledger.StoredHashes(ctx, s))
		if err != nil {
			t.Fatalf("ProveInclusion(%d, %d): %v", i, size, err)
		}
		if err := tlog.VerifyInclusion(e.Body, int64(i), proof, c); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		bySubject[e.Subject] = append(bySubject[e.Subject], int64(i))
	}
	for subject, want := range bySubject {
		got, err := s.SubjectLog(ctx, subject, pb.MaxLogRead)
		if err != nil || len(got) != min(len(want), pb.MaxLogRead) {
			t.Fatalf("SubjectLog(%s) = %d entries, %v; want %d", subject, len(got), err, len(want))
		}
		for i, e := range got {
			if e.Index != want[i] || e.Subject != subject || !bytes.Equal(e.Body, entries[want[i]].Body) {
				t.Fatalf("SubjectLog(%s)[%d] = %d %q, want %d %q", subject, i, e.Index, e.Body, want[i], entries[want[i]].Body)
			}
		}
	}
}

func testLog(t *testing.T, s pb.Store) {
	ctx := t.Context()
	checkTree(t, s, nil)
	var all []pb.LogRecord
	// Batches of one entry up to several hundred, and large entries: a
	// store may keep a commit's entries together (SQLite bundles them).
	for _, n := range []int{5, 1, 20, 3, 150} {
		recs := logBatch(len(all), n, "pay_a", "mnd_b", "pay_c")
		commit(t, s, &pb.Batch{LogPart: pb.LogPart{Log: recs}})
		all = append(all, recs...)
		integrate(t, s)
		checkTree(t, s, all)
	}
	big := logBatch(len(all), 4, "pay_a", "mnd_b")
	for i := range big {
		big[i].Body = append(big[i].Body, bytes.Repeat([]byte{' '}, 30_000*(i+1)%pb.MaxLogEntryBytes)...)
	}
	big[3].Body = append(big[3].Body[:0], bytes.Repeat([]byte{'x'}, pb.MaxLogEntryBytes)...)
	commit(t, s, &pb.Batch{LogPart: pb.LogPart{Log: append(big, logBatch(len(all)+len(big), 2, "pay_c")...)}})
	all = append(all, append(big, logBatch(len(all)+len(big), 2, "pay_c")...)...)
	integrate(t, s)
	checkTree(t, s, all)
	page, err := s.LogEntries(ctx, 3, 2)
	if err != nil || len(page) != 2 || page[0].Index != 3 || page[1].Index != 4 {
		t.Fatalf("LogEntries(3, 2) = %v, %v", page, err)
	}
	page, err = s.LogEntries(ctx, 40, 100)
	if err != nil || len(page) != 100 {
		t.Fatalf("LogEntries(40, 100) = %d entries, %v", len(page), err)
	}
	for i, e := range page {
		if e.Index != int64(40+i) || e.Subject != all[40+i].Subject || !bytes.Equal(e.Body, all[40+i].Body) {
			t.Fatalf("LogEntries(40, 100)[%d] = %d %s, want %d %s", i, e.Index, e.Subject, 40+i, all[40+i].Subject)
		}
	}
	if page, err := s.LogEntries(ctx, int64(len(all)), 10); err != nil || len(page) != 0 {
		t.Fatalf("LogEntries past the end = %v, %v", page, err)
	}
	if page, err := s.LogEntries(ctx, math.MaxInt64-3, 10); err != nil || len(page) != 0 {
		t.Fatalf("LogEntries from the largest index = %v, %v", page, err)
	}
	mine, err := s.SubjectLog(ctx, "mnd_b", 100)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i, e := range all {
		if e.Subject == "mnd_b" {
			want = append(want, int64(i))
		}
	}
	if len(mine) != len(want) {
		t.Fatalf("SubjectLog returned %d entries, want %d", len(mine), len(want))
	}
	for i, e := range mine {
		if e.Index != want[i] || !bytes.Equal(e.Body, all[want[i]].Body) {
			t.Fatalf("SubjectLog[%d] = %d %s, want %d", i, e.Index, e.Body, want[i])
		}
	}
	if none, err := s.SubjectLog(ctx, "pay_none", 10); err != nil || len(none) != 0 {
		t.Fatalf("SubjectLog of an unknown subject = %v, %v", none, err)
	}
	_, err = s.LogHashes(ctx, []int64{0, 1 << 40})
	wantNotFound(t, "a stored hash past the tree", err)

	// An integration from a size the tree no longer has changes nothing.
	size, root, _ := s.LogState(ctx)
	if err := s.IntegrateLog(ctx, &pb.LogIntegration{OldSize: size - 1, NewSize: size}); err == nil {
		t.Fatal("IntegrateLog from a stale size succeeded")
	}
	if sz, r, _ := s.LogState(ctx); sz != size || r != root {
		t.Fatalf("a refused integration changed the log: %d %x", sz, r)
	}
}

func testClaimLogKey(t *testing.T, s pb.Store) {
	got, err := s.ClaimLogKey(t.Context(), "a.example/log+1+key")
	if err != nil || got != "a.example/log+1+key" {
		t.Fatalf("first claim = %q, %v", got, err)
	}
	if got, err = s.ClaimLogKey(t.Context(), "b.example/log+2+other"); err != nil || got != "a.example/log+1+key" {
		t.Fatalf("second claim = %q, %v; want the first key kept", got, err)
	}
}

// testLogAtomic checks that a batch that fails writes none of its entries,
// and that the log carries on correctly after it.
func testLogAtomic(t *testing.T, s pb.Store) {
	first := logBatch(0, 3, "pay_a")
	commit(t, s, &pb.Batch{LogPart: pb.LogPart{Log: first}})
	integrate(t, s)
	seedExisting(t, s)
	b := badBatch()
	b.Users = []pb.User{{ID: "usr_old", Name: "Duplicate", CreatedAt: t0}}
	b.Log = logBatch(100, 4, "pay_new")
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with a duplicate user succeeded")
	}
	integrate(t, s)
	checkTree(t, s, first)
	next := logBatch(3, 4, "pay_a")
	commit(t, s, &pb.Batch{LogPart: pb.LogPart{Log: next}})
	integrate(t, s)
	checkTree(t, s, append(first, next...))
}

// testPaymentSubjectLog: a payment's entries, written with the payment or
// without it, in one commit or several, come back in order, and writing
// the payment again without entries keeps them.
func testPaymentSubjectLog(t *testing.T, s pb.Store) {
	ctx := t.Context()
	p := payment("pay_traced", "usr_a", "mch_a", "", t0)
	p.LogHead = pb.LeafHash([]byte("head"))
	rec := func(subject, body string) pb.LogRecord { return pb.LogRecord{Subject: subject, Body: []byte(body)} }
	var want []pb.LogRecord
	for _, b := range []*pb.Batch{
		{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}, LogPart: pb.LogPart{Log: []pb.LogRecord{rec(p.ID, `{"e":"created"}`), rec("mnd_x", `{"e":"granted"}`), rec(p.ID, `{"e":"authorized"}`)}}},
		{LogPart: pb.LogPart{Log: []pb.LogRecord{rec("pay_other", `{"e":"other"}`), rec(p.ID, `{"e":"without the payment"}`)}}},
		{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}},
		{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}, LogPart: pb.LogPart{Log: []pb.LogRecord{rec(p.ID, `{"e":"captured"}`)}}},
	} {
		p.Version++
		for i := range b.Payments {
			b.Payments[i].Version = p.Version
		}
		commit(t, s, b)
		integrate(t, s)
		for _, r := range b.Log {
			if r.Subject == p.ID {
				want = append(want, r)
			}
		}
	}
	got, err := s.SubjectLog(ctx, p.ID, 100)
	if err != nil || len(got) != len(want) {
		t.Fatalf("SubjectLog = %d entries, %v; want %d", len(got), err, len(want))
	}
	for i, e := range got {
		if e.Subject != p.ID || !bytes.Equal(e.Body, want[i].Body) || (i > 0 && e.Index <= got[i-1].Index) {
			t.Fatalf("SubjectLog[%d] = %d %s %s, want %s in index order", i, e.Index, e.Subject, e.Body, want[i].Body)
		}
		if at, err := s.LogEntries(ctx, e.Index, 1); err != nil || len(at) != 1 || !bytes.Equal(at[0].Body, e.Body) {
			t.Fatalf("entry %d is %v, %v; SubjectLog gave %s", e.Index, at, err, e.Body)
		}
	}
	if first, err := s.SubjectLog(ctx, p.ID, 2); err != nil || len(first) != 2 || first[1].Index != got[1].Index {
		t.Fatalf("SubjectLog limited to 2 = %v, %v", first, err)
	}
	mandate, err := s.SubjectLog(ctx, "mnd_x", 10)
	if err != nil || len(mandate) != 1 || string(mandate[0].Body) != `{"e":"granted"}` {
		t.Fatalf("SubjectLog of the mandate = %v, %v", mandate, err)
	}

	// A commit whose entries are placed in part (a store that integrates
	// may place a part of what one commit stored): the reads show exactly
	// the entries placed, the rest are pending in order, and all show once
	// placed.
	from, _, err := s.LogState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Version++
	b := &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}}
	b.Payments[0].Version = p.Version
	for i := range 7 {
		b.Log = append(b.Log, rec([]string{p.ID, "mnd_x"}[i%2], fmt.Sprintf(`{"e":"in part %d"}`, i)))
	}
	commit(t, s, b)
	if _, _, err := ledger.IntegrateLog(ctx, s, 3); err != nil {
		t.Fatal(err)
	}
	checkPart := func() {
		t.Helper()
		size, _, err := s.LogState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		placed := b.Log[:size-from]
		at, err := s.LogEntries(ctx, from, 100)
		if err != nil || len(at) != len(placed) {
			t.Fatalf("LogEntries from %d = %d entries, %v; want the %d placed", from, len(at), err, len(placed))
		}
		for i, e := range at {
			if e.Index != from+int64(i) || e.Subject != placed[i].Subject || !bytes.Equal(e.Body, placed[i].Body) {
				t.Fatalf("entry %d = %d %s %s, want %s %s", i, e.Index, e.Subject, e.Body, placed[i].Subject, placed[i].Body)
			}
		}
		pending, err := s.PendingLog(ctx, 2)
		if err != nil || len(pending) != min(2, len(b.Log)-len(placed)) {
			t.Fatalf("PendingLog(2) = %d entries, %v; want %d", len(pending), err, min(2, len(b.Log)-len(placed)))
		}
		for i, e := range pending {
			if !bytes.Equal(e.Body, b.Log[len(placed)+i].Body) || (i > 0 && e.Seq <= pending[i-1].Seq) {
				t.Fatalf("pending entry %d = %d %s, want %s in order", i, e.Seq, e.Body, b.Log[len(placed)+i].Body)
			}
		}
		for _, subject := range []string{p.ID, "mnd_x"} {
			want := slices.Clone(got)
			if subject != p.ID {
				want = slices.Clone(mandate)
			}
			for i, r := range placed {
				if r.Subject == subject {
					want = append(want, pb.LogEntry{Index: from + int64(i), Body: r.Body})
				}
			}
			mine, err := s.SubjectLog(ctx, subject, 100)
			if err != nil || len(mine) != len(want) {
				t.Fatalf("SubjectLog(%s) = %d entries, %v; want %d", subject, len(mine), err, len(want))
			}
			for i, e := range mine {
				if e.Index != want[i].Index || e.Subject != subject || !bytes.Equal(e.Body, want[i].Body) {
					t.Fatalf("SubjectLog(%s)[%d] = %d %s, want %d %s", subject, i, e.Index, e.Body, want[i].Index, want[i].Body)
				}
			}
		}
	}
	checkPart()
	integrate(t, s)
	checkPart()
}

// testPaymentLogHead checks that a payment's log head is kept and updated.
func testPaymentLogHead(t *testing.T, s pb.Store) {
	p := payment("pay_head", "usr_a", "mch_a", "", t0)
	p.LogHead = pb.LeafHash([]byte("first"))
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}})
	got, err := s.Payment(t.Context(), p.ID)
	if err != nil || got.LogHead != p.LogHead {
		t.Fatalf("Payment = %x, %v; want head %x", got.LogHead, err, p.LogHead)
	}
	p.Status, p.LogHead = pb.StatusCanceled, pb.LeafHash([]byte("second"))
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}})
	if got, err = s.Payment(t.Context(), p.ID); err != nil || got.LogHead != p.LogHead {
		t.Fatalf("Payment after update = %x, %v; want head %x", got.LogHead, err, p.LogHead)
	}
}

// testLogConcurrentIntegration: several integrators (as several processes
// would) racing over pending entries place each exactly once, in a tree
// equal to the one built in memory from the placed order.
func testLogConcurrentIntegration(t *testing.T, s pb.Store) {
	ctx := t.Context()
	var all []pb.LogRecord
	for round := range 5 {
		recs := logBatch(len(all), 40, "pay_a", "pay_b")
		commit(t, s, &pb.Batch{LogPart: pb.LogPart{Log: recs}})
		all = append(all, recs...)
		done := make(chan error, 4)
		for range 4 {
			go func() {
				for range 20 {
					if _, _, err := ledger.IntegrateLog(ctx, s, 7); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range 4 {
			if err := <-done; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		integrate(t, s)
		got, err := s.LogEntries(ctx, 0, pb.MaxLogRead)
		if err != nil || len(got) != len(all) {
			t.Fatalf("round %d: %d entries placed, want %d (%v)", round, len(got), len(all), err)
		}
		// Integration order may differ from commit order across processes,
		// but every entry is placed once, and the tree is the tree of the
		// placed order.
		seen := map[string]bool{}
		placed := make([]pb.LogRecord, len(got))
		for i, e := range got {
			if seen[string(e.Body)] {
				t.Fatalf("entry %s placed twice", e.Body)
			}
			seen[string(e.Body)] = true
			placed[i] = pb.LogRecord{Subject: e.Subject, Body: e.Body}
		}
		checkTree(t, s, placed)
	}
}
