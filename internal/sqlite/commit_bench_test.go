package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
)

// BenchmarkCommitPayments commits batches shaped like those of `paybound
// bench payments` (128 payers paying by bearer key, create then capture):
// each batch creates 10 payments (payment.created and payment.authorized
// entries, a hold) and captures the 10 of the batch before (payment.captured,
// a posting), with an idempotency row per request. It reports the store's
// cost per payment, wall and CPU: the commit stage is one goroutine, so this
// is the ceiling the log's bytes and rows lower. log=false commits
// the same batches without their entries.
func BenchmarkCommitPayments(b *testing.B) {
	for _, withLog := range []bool{false, true} {
		b.Run(fmt.Sprintf("log=%v", withLog), func(b *testing.B) { benchCommitPayments(b, withLog) })
	}
}

func benchCommitPayments(b *testing.B, withLog bool) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "paybound.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const payers, perBatch = 128, 10
	now := time.Date(2026, 11, 27, 22, 18, 42, 934182970, time.UTC)
	merchant := pb.NewID(pb.PrefixMerchant, now)
	users := make([]string, payers)
	accounts := make([]pb.Account, payers+1)
	for i := range users {
		users[i] = pb.NewID(pb.PrefixUser, now)
		accounts[i] = pb.Account{ID: int64(i + 1), Owner: users[i], Currency: "USD", CreditsPosted: 1 << 40}
	}
	accounts[payers] = pb.Account{ID: payers + 1, Owner: merchant, Currency: "USD"}
	if err := s.Commit(ctx, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accounts}}); err != nil {
		b.Fatal(err)
	}
	nextTransfer, seq := int64(1), 0
	var prev []pb.Payment
	resp := make([]byte, 620) // a payment's JSON response, as the idempotency row stores it
	for i := range resp {
		resp[i] = 'x'
	}
	entry := func(p *pb.Payment, actor pb.Actor, typ string, data any) pb.LogRecord {
		var prevHead *[32]byte
		if p.LogHead != ([32]byte{}) {
			prevHead = &p.LogHead
		}
		body, err := pb.EncodeLogEntry(pb.LogEvent{Type: typ, Subject: p.ID, Actor: actor, Data: data}, now, prevHead)
		if err != nil {
			b.Fatal(err)
		}
		p.LogHead = pb.LeafHash(body)
		return pb.LogRecord{Subject: p.ID, Body: body, Leaf: p.LogHead}
	}
	var wall, cpu time.Duration
	cpuNow := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(2 * time.Millisecond)
		bt := &pb.Batch{}
		seen := map[int]bool{}
		exp := now.Add(7 * 24 * time.Hour).Truncate(time.Second)
		for _, p := range prev { // capture the batch before's payments
			u := int(p.HoldID % payers)
			p.Status, p.AmountCaptured, p.Version = pb.StatusCaptured, p.Amount, p.Version+1
			actor := pb.Actor{Role: pb.RoleUser, ID: p.PayerID, Assurance: pb.AssuranceUser}
			if withLog {
				bt.Log = append(bt.Log, entry(&p, actor, pb.LogPaymentCaptured, map[string]int64{"amount": p.Amount, "fee": 0}))
			}
			bt.Transfers = append(bt.Transfers, pb.Transfer{ID: nextTransfer, Kind: pb.TransferPost, DebitAccountID: int64(u + 1),
				CreditAccountID: payers + 1, Amount: p.Amount, Currency: "USD", PendingID: p.HoldID, Ref: p.ID, CreatedAt: now})
			nextTransfer++
			bt.Payments, bt.PaymentVersions = append(bt.Payments, p), append(bt.PaymentVersions, p.Version-1)
			seq++
			bt.Idempotency = append(bt.Idempotency, pb.IdempotencyRecord{Caller: p.PayerID, Key: fmt.Sprintf("bench-%x-%x", now.UnixNano(), seq), Status: 200, Body: resp, CreatedAt: now})
			seen[u] = true
		}
		prev = prev[:0]
		for range perBatch {
			u := int(nextTransfer*7919) % payers
			p := pb.Payment{ID: pb.NewID(pb.PrefixPayment, now), Object: "payment", Status: pb.StatusAuthorized, Amount: 100, Currency: "USD",
				MerchantID: merchant, PayerID: users[u], CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: &exp,
				Metadata: map[string]string{}, CreatedAt: now, Assurance: pb.AssuranceUser, HoldID: nextTransfer, Version: 1}
			actor := pb.Actor{Role: pb.RoleUser, ID: users[u], Assurance: pb.AssuranceUser}
			if withLog {
				bt.Log = append(bt.Log, entry(&p, actor, pb.LogPaymentCreated, map[string]any{"amount": p.Amount, "authorization_expires_at": exp,
					"capture_method": p.CaptureMethod, "currency": "USD", "merchant_id": merchant, "payer_id": p.PayerID}))
				bt.Log = append(bt.Log, entry(&p, actor, pb.LogPaymentAuthorized, map[string]any{"amount": p.Amount, "basis": "user", "expires_at": exp}))
			} else {
				p.LogHead = pb.LeafHash([]byte(p.ID))
			}
			bt.Transfers = append(bt.Transfers, pb.Transfer{ID: nextTransfer, Kind: pb.TransferPending, DebitAccountID: int64(u + 1),
				CreditAccountID: payers + 1, Amount: p.Amount, Currency: "USD", Timeout: exp, Ref: p.ID, CreatedAt: now})
			p.HoldID = nextTransfer
			nextTransfer++
			bt.Payments, bt.PaymentVersions = append(bt.Payments, p), append(bt.PaymentVersions, p.Version-1)
			prev = append(prev, p)
			seq++
			bt.Idempotency = append(bt.Idempotency, pb.IdempotencyRecord{Caller: p.PayerID, Key: fmt.Sprintf("bench-%x-%x", now.UnixNano(), seq), Status: 201, Body: resp, CreatedAt: now})
			seen[u] = true
		}
		for u := range seen {
			bt.Accounts = append(bt.Accounts, pb.Account{ID: int64(u + 1), Owner: users[u], Currency: "USD", CreditsPosted: 1 << 40, DebitsPending: int64(seq)})
		}
		bt.Accounts = append(bt.Accounts, pb.Account{ID: payers + 1, Owner: merchant, Currency: "USD", CreditsPosted: int64(seq)})
		t0, c0 := time.Now(), cpuNow()
		if err := s.Commit(ctx, bt); err != nil {
			b.Fatal(err)
		}
		cpu += cpuNow() - c0
		wall += time.Since(t0)
	}
	n := float64(b.N * perBatch)
	b.ReportMetric(float64(wall.Microseconds())/n, "µs/payment")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/payment")
	b.ReportMetric(0, "ns/op")
}
