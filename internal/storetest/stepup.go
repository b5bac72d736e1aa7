package storetest

import (
	"bytes"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// testTOTP: a factor reads back byte for byte and is replaced whole.
func testTOTP(t *testing.T, s pb.Store) {
	ctx := t.Context()
	_, err := s.TOTP(ctx, "usr_alice")
	wantNotFound(t, "TOTP(usr_alice) before enrolment", err)
	f := pb.TOTPFactor{UserID: "usr_alice", Secret: []byte{0, 1, 2, 255}, CreatedAt: t0}
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{TOTP: []pb.TOTPFactor{f}}})
	f.Active, f.LastStep = true, 59_999_999
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{TOTP: []pb.TOTPFactor{f}}})
	got, err := s.TOTP(ctx, "usr_alice")
	if err != nil || !bytes.Equal(got.Secret, f.Secret) || !got.Active || got.LastStep != f.LastStep || !got.CreatedAt.Equal(sec(t0)) {
		t.Fatalf("TOTP = %+v, %v; want %+v", got, err, f)
	}
}

// testCodeFailures: wrong codes add up per confirmation, within a batch and
// across batches.
func testCodeFailures(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if n, err := s.CodeFailures(ctx, "cfm_a"); n != 0 || err != nil {
		t.Fatalf("CodeFailures before any = %d, %v", n, err)
	}
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{CodeFailures: []string{"cfm_a", "cfm_b", "cfm_a"}}})
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{CodeFailures: []string{"cfm_a"}}})
	for id, want := range map[string]int{"cfm_a": 3, "cfm_b": 1, "cfm_c": 0} {
		if n, err := s.CodeFailures(ctx, id); n != want || err != nil {
			t.Fatalf("CodeFailures(%s) = %d, %v; want %d", id, n, err, want)
		}
	}
}

// testPasskeys: a user's passkeys read back oldest first, byte for byte; a
// passkey written again replaces its record; other users' stay apart.
func testPasskeys(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if got, err := s.Passkeys(ctx, "usr_alice"); err != nil || len(got) != 0 {
		t.Fatalf("Passkeys before any = %v, %v", got, err)
	}
	a := pb.Passkey{ID: []byte{0, 1, 255}, UserID: "usr_alice", Credential: []byte(`{"n":1}`), CreatedAt: t0}
	b := pb.Passkey{ID: []byte{9}, UserID: "usr_alice", Credential: []byte(`{"n":2}`), CreatedAt: t0.Add(time.Minute)}
	c := pb.Passkey{ID: []byte{7}, UserID: "usr_bob", Credential: []byte(`{}`), CreatedAt: t0}
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{Passkeys: []pb.Passkey{b, a, c}}})
	a.Credential = []byte(`{"n":3}`)
	revoked := t0.Add(time.Hour)
	a.RevokedAt = &revoked
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{Passkeys: []pb.Passkey{a}}})
	got, err := s.Passkeys(ctx, "usr_alice")
	if err != nil || len(got) != 2 || !bytes.Equal(got[0].ID, a.ID) || string(got[0].Credential) != `{"n":3}` ||
		!bytes.Equal(got[1].ID, b.ID) || got[0].UserID != "usr_alice" || !got[1].CreatedAt.Equal(sec(b.CreatedAt)) ||
		got[0].RevokedAt == nil || !got[0].RevokedAt.Equal(sec(revoked)) || got[1].RevokedAt != nil {
		t.Fatalf("Passkeys(usr_alice) = %+v, %v", got, err)
	}
	// A credential update that raced the revocation does not undo it.
	a.RevokedAt, a.Credential = nil, []byte(`{"n":4}`)
	commit(t, s, &pb.Batch{StepUpPart: pb.StepUpPart{Passkeys: []pb.Passkey{a}}})
	if got, err := s.Passkeys(ctx, "usr_alice"); err != nil || got[0].RevokedAt == nil || string(got[0].Credential) != `{"n":4}` {
		t.Fatalf("after a racing update: %+v, %v", got, err)
	}
}

// testConfirmations: a payment's confirmation reads back, it is found by
// its ID, and an unconfirmed payment past it is listed as expired.
func testConfirmations(t *testing.T, s pb.Store) {
	ctx := t.Context()
	p := payment("pay_c", "usr_alice", "mch_cafe", "agt_butler", t0)
	p.Status = pb.StatusRequiresConfirmation
	p.Confirmation = pb.NewConfirmation(t0)
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}})
	got, err := s.PaymentByConfirmation(ctx, p.Confirmation.ID)
	if err != nil || got.ID != p.ID || got.Confirmation == nil || *got.Confirmation != *p.Confirmation {
		t.Fatalf("PaymentByConfirmation = %+v, %v; want %+v", got, err, p.Confirmation)
	}
	_, err = s.PaymentByConfirmation(ctx, "cfm_missing")
	wantNotFound(t, "PaymentByConfirmation(cfm_missing)", err)
	_, err = s.PaymentByConfirmation(ctx, "")
	wantNotFound(t, "PaymentByConfirmation(\"\")", err)
	ids, err := s.ExpiredPayments(ctx, p.Confirmation.ExpiresAt.Add(-time.Second), 10)
	if err != nil || len(ids) != 0 {
		t.Fatalf("before its expiry: %v %v", ids, err)
	}
	ids, err = s.ExpiredPayments(ctx, p.Confirmation.ExpiresAt, 10)
	if err != nil || len(ids) != 1 || ids[0] != p.ID {
		t.Fatalf("at its expiry: %v %v", ids, err)
	}
	// Confirmed: no longer listed.
	p.Status = pb.StatusCanceled
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}}})
	if ids, _ := s.ExpiredPayments(ctx, p.Confirmation.ExpiresAt, 10); len(ids) != 0 {
		t.Fatalf("a canceled payment listed: %v", ids)
	}
}
