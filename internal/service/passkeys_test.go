package service_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"testing"

	"github.com/descope/virtualwebauthn"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/confirm"
)

// rp is the relying party the service is configured as by default.
var rp = virtualwebauthn.RelyingParty{Name: "Paybound", ID: "localhost", Origin: "http://localhost:8080"}

// registerPasskey runs a registration ceremony with a virtual
// authenticator and returns it with its credential.
func registerPasskey(t *testing.T, svc *confirm.Service, user pb.Principal, auth *virtualwebauthn.Authenticator) virtualwebauthn.Credential {
	t.Helper()
	ctx := context.Background()
	opts, err := svc.BeginPasskeyRegistration(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(opts)
	ao, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	cred := newCredential(t)
	resp := virtualwebauthn.CreateAttestationResponse(rp, *auth, cred, *ao)
	v := must[*confirm.PasskeyView](t, svc.RegisterPasskey(ctx, user, nil, []byte(resp)))
	if v.ID == "" {
		t.Fatalf("registered: %+v", v)
	}
	auth.AddCredential(cred)
	return cred
}

// assert makes an assertion for the confirmation's options.
func assertFor(t *testing.T, svc *confirm.Service, user pb.Principal, cfm string, auth virtualwebauthn.Authenticator, cred virtualwebauthn.Credential) []byte {
	t.Helper()
	opts, err := svc.PasskeyApprovalOptions(context.Background(), user, cfm)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(opts)
	ao, err := virtualwebauthn.ParseAssertionOptions(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *ao))
}

// TestPasskeyApproval: a passkey registered with user verification
// approves the one payment its assertion was made for, once; an assertion
// for another payment, one without user verification, a replay, and a
// foreign passkey are refused and change nothing.
func TestPasskeyApproval(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	ctx := context.Background()
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(w.user.ID)})

	first, err := w.pay(w.agent, "", w.cafe.ID, 1500, "CNY")
	if err != nil || first.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("no mandate: %+v %v", first, err)
	}
	second, _ := w.pay(w.agent, "", w.books.ID, 700, "CNY")

	if _, err := w.confirm.PasskeyApprovalOptions(ctx, w.user, first.Confirmation.ID); pb.ErrorCode(err) != pb.ErrPasskeyState {
		t.Fatalf("options without a passkey: %v", err)
	}
	cred := registerPasskey(t, w.confirm, w.user, &auth)

	// Registration: a challenge issued to another user, or a replayed
	// registration, is refused.
	other := w.env.user(t, 0, "CNY")
	opts, _ := w.confirm.BeginPasskeyRegistration(ctx, other)
	raw, _ := json.Marshal(opts)
	ao, _ := virtualwebauthn.ParseAttestationOptions(string(raw))
	stolen := virtualwebauthn.CreateAttestationResponse(rp, auth, newCredential(t), *ao)
	if r := w.confirm.RegisterPasskey(ctx, w.user, nil, []byte(stolen)); pb.ErrorCode(r.Err) != pb.ErrPasskeyInvalid {
		t.Fatalf("another user's challenge: %v", r.Err)
	}
	if r := w.confirm.RegisterPasskey(ctx, w.user, nil, []byte(`{"id":"x"}`)); pb.ErrorCode(r.Err) != pb.ErrPasskeyInvalid {
		t.Fatalf("garbage: %v", r.Err)
	}

	// An assertion made for the second payment does not approve the first.
	forSecond := assertFor(t, w.confirm, w.user, second.Confirmation.ID, auth, cred)
	if r := w.confirm.ApproveWithPasskey(ctx, w.user, nil, first.Confirmation.ID, forSecond); pb.ErrorCode(r.Err) != pb.ErrPasskeyInvalid {
		t.Fatalf("another payment's assertion: %v", r.Err)
	}
	// Without user verification it is refused.
	noUV := auth
	noUV.Options.UserNotVerified = true
	if r := w.confirm.ApproveWithPasskey(ctx, w.user, nil, first.Confirmation.ID, assertFor(t, w.confirm, w.user, first.Confirmation.ID, noUV, cred)); pb.ErrorCode(r.Err) != pb.ErrPasskeyInvalid {
		t.Fatalf("no user verification: %v", r.Err)
	}
	// A passkey of another authenticator, not registered, is refused.
	stranger := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(w.user.ID)})
	if r := w.confirm.ApproveWithPasskey(ctx, w.user, nil, first.Confirmation.ID,
		assertFor(t, w.confirm, w.user, first.Confirmation.ID, stranger, newCredential(t))); pb.ErrorCode(r.Err) != pb.ErrPasskeyInvalid {
		t.Fatalf("unregistered passkey: %v", r.Err)
	}
	// Another user cannot approve with their own confirmation lookup.
	if r := w.confirm.ApproveWithPasskey(ctx, other, nil, first.Confirmation.ID, forSecond); pb.ErrorCode(r.Err) != pb.ErrNotFound {
		t.Fatalf("another user: %v", r.Err)
	}
	if p, _ := w.svc.Payment(ctx, w.user, first.ID); p.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("refusals changed the payment: %+v", p)
	}

	good := assertFor(t, w.confirm, w.user, first.Confirmation.ID, auth, cred)
	a := must[*pb.Payment](t, w.confirm.ApproveWithPasskey(ctx, w.user, nil, first.Confirmation.ID, good))
	if a.Status != pb.StatusAuthorized && a.Status != pb.StatusCaptured {
		t.Fatalf("approved: %+v", a)
	}
	if r := w.confirm.ApproveWithPasskey(ctx, w.user, nil, first.Confirmation.ID, good); pb.ErrorCode(r.Err) != pb.ErrPaymentState {
		t.Fatalf("replayed assertion: %v", r.Err)
	}
	// The second payment is still waiting, and its own assertion approves it.
	b := must[*pb.Payment](t, w.confirm.ApproveWithPasskey(ctx, w.user, nil, second.Confirmation.ID, assertFor(t, w.confirm, w.user, second.Confirmation.ID, auth, cred)))
	if b.Status != pb.StatusAuthorized && b.Status != pb.StatusCaptured {
		t.Fatalf("second approved: %+v", b)
	}
	w.verify(t)
}

// newCredential returns a virtual passkey whose public key's coordinates
// are 32 bytes each: the virtual authenticator writes them without their
// leading zeros, which a strict verifier rightly refuses (about 1 key in
// 64), and the test is about Paybound, not about that.
func newCredential(t testing.TB) virtualwebauthn.Credential {
	t.Helper()
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(cred.Key.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ek := k.(*ecdsa.PrivateKey); len(ek.X.Bytes()) == 32 && len(ek.Y.Bytes()) == 32 {
			return cred
		}
	}
}
