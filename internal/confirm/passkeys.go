package confirm

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// MaxPasskeys bounds one user's passkeys.
const MaxPasskeys = 10

// passkeyRegistrationTTL is how long a registration challenge is good for.
const passkeyRegistrationTTL = 5 * time.Minute

// Passkey challenges are derived, not stored: a registration challenge is
// its expiry followed by a MAC of the user and that expiry; an approval
// challenge is a MAC of the confirmation, the payment, its amount, currency
// and merchant. So an assertion made for one payment can never approve
// another, any process sharing the operator key can finish a ceremony
// another began, and nothing needs cleaning up. A replayed approval finds
// the payment no longer waiting.

func newPasskeys(cfg *Config) (*webauthn.WebAuthn, []byte, error) {
	if cfg.PasskeyRPID == "" {
		cfg.PasskeyRPID = "localhost"
	}
	if len(cfg.PasskeyOrigins) == 0 {
		cfg.PasskeyOrigins = []string{"http://localhost:8080"}
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: cfg.PasskeyRPID, RPDisplayName: "Paybound", RPOrigins: cfg.PasskeyOrigins})
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: %w", err)
	}
	key, err := hkdf.Key(sha256.New, []byte(cfg.OperatorKey), nil, "paybound passkey challenge v1", 32)
	return wa, key, err
}

func (s *Service) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.passkeyMAC)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

func (s *Service) registrationChallenge(userID string, exp time.Time) []byte {
	c := binary.BigEndian.AppendUint64(nil, uint64(exp.Unix()))
	return append(c, s.mac("register", userID, strconv.FormatInt(exp.Unix(), 10))[:24]...)
}

func (s *Service) approvalChallenge(p *pb.Payment) []byte {
	return s.mac("approve", p.Confirmation.ID, p.ID, strconv.FormatInt(p.Amount, 10), p.Currency, p.MerchantID)
}

// passkeyUser is a user, with their passkeys not revoked, as the WebAuthn
// verifier sees them. The user
// handle is the user ID; the name, shown by the browser when the user
// picks a passkey, is the user's name (its ID when the name can't be read).
type passkeyUser struct {
	id, name string
	keys     []pb.Passkey
	creds    []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return []byte(u.id) }
func (u *passkeyUser) WebAuthnName() string                       { return u.name }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.name }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func (s *Service) passkeyUser(ctx context.Context, userID string) (*passkeyUser, error) {
	keys, err := s.st.Passkeys(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("couldn't read passkeys: %w", err)
	}
	u := &passkeyUser{id: userID, name: userID}
	if usr, err := s.st.User(ctx, userID); err == nil && usr.Name != "" {
		u.name = usr.Name
	}
	for _, k := range keys {
		if k.RevokedAt != nil {
			continue // a revoked passkey never verifies
		}
		u.keys = append(u.keys, k)
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			return nil, fmt.Errorf("passkey %x of %s is corrupt: %w", k.ID, userID, err)
		}
		u.creds = append(u.creds, c)
	}
	return u, nil
}

// PasskeyView is a passkey as the API shows it.
type PasskeyView struct {
	Object    string     `json:"object"`
	ID        string     `json:"id"` // the credential ID, base64url
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// Passkeys (user) lists the caller's passkeys, oldest first.
func (s *Service) Passkeys(ctx context.Context, caller pb.Principal) ([]PasskeyView, error) {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return nil, err
	}
	keys, err := s.st.Passkeys(ctx, caller.ID)
	if err != nil {
		return nil, fmt.Errorf("couldn't read passkeys: %w", err)
	}
	out := make([]PasskeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, passkeyView(k))
	}
	return out, nil
}

func passkeyView(k pb.Passkey) PasskeyView {
	return PasskeyView{Object: "passkey", ID: base64.RawURLEncoding.EncodeToString(k.ID), CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

// RevokePasskey (user) revokes one of the caller's passkeys at once, say
// for a lost phone. It is kept, for the record, and never verifies again.
func (s *Service) RevokePasskey(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 {
		return service.Result{Err: pb.Errorf(pb.ErrNotFound, "id", "you have no passkey %s", id)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		keys, err := s.st.Passkeys(tx.Context(), caller.ID)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if !bytes.Equal(k.ID, raw) {
				continue
			}
			if k.RevokedAt == nil {
				now := tx.Now().Truncate(time.Second)
				k.RevokedAt = &now
				tx.PutPasskey(k)
			}
			v := passkeyView(k)
			return &v, nil
		}
		return nil, pb.Errorf(pb.ErrNotFound, "id", "you have no passkey %s", id)
	})
}

// BeginPasskeyRegistration (user) returns the options for
// navigator.credentials.create(): user verification required, the user's
// existing passkeys excluded. The challenge is good for 5 minutes.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, caller pb.Principal) (*protocol.CredentialCreation, error) {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return nil, err
	}
	u, err := s.passkeyUser(ctx, caller.ID)
	if err != nil {
		return nil, err
	}
	if len(u.keys) >= MaxPasskeys {
		return nil, pb.Errorf(pb.ErrPasskeyState, "", "you have %d passkeys, the most allowed; revoke one first", MaxPasskeys)
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, _, err := s.webauthn.BeginRegistration(u, webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationRequired}))
	if err != nil {
		return nil, fmt.Errorf("passkey registration: %w", err)
	}
	opts.Response.Challenge = s.registrationChallenge(caller.ID, s.clock.Now().Add(passkeyRegistrationTTL))
	opts.Response.Timeout = int(passkeyRegistrationTTL / time.Millisecond)
	return opts, nil
}

// RegisterPasskey (user) finishes a registration with the browser's
// PublicKeyCredential (as JSON). The challenge must be one this server
// issued to this user and not expired; the authenticator must have verified
// the user.
func (s *Service) RegisterPasskey(ctx context.Context, caller pb.Principal, idem *service.Idempotency, credential []byte) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return service.Result{Err: passkeyInvalid("credential", err)}
	}
	chal, err := base64.RawURLEncoding.DecodeString(parsed.Response.CollectedClientData.Challenge)
	if err != nil || len(chal) != 32 {
		return service.Result{Err: pb.Errorf(pb.ErrPasskeyInvalid, "credential", "the credential answers no registration challenge of this server")}
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(chal)), 0)
	if !hmac.Equal(chal, s.registrationChallenge(caller.ID, exp)) {
		return service.Result{Err: pb.Errorf(pb.ErrPasskeyInvalid, "credential", "the credential answers no registration challenge issued to you")}
	}
	if !s.clock.Now().Before(exp) {
		return service.Result{Err: pb.Errorf(pb.ErrPasskeyInvalid, "credential", "the registration challenge expired; begin again")}
	}
	u, err := s.passkeyUser(ctx, caller.ID)
	if err != nil {
		return service.Result{Err: err}
	}
	// The expiry was checked above against the service's clock; the
	// verifier would check it against the wall clock.
	session := webauthn.SessionData{Challenge: parsed.Response.CollectedClientData.Challenge, UserID: u.WebAuthnID(),
		UserVerification: protocol.VerificationRequired, CredParams: webauthn.CredentialParametersDefault()}
	cred, err := s.webauthn.CreateCredential(u, session, parsed)
	if err != nil {
		return service.Result{Err: passkeyInvalid("credential", err)}
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		latest, err := s.st.Passkeys(tx.Context(), caller.ID)
		if err != nil {
			return nil, err
		}
		active := 0
		for _, k := range latest {
			if k.RevokedAt == nil {
				active++
			}
		}
		if active >= MaxPasskeys {
			return nil, pb.Errorf(pb.ErrPasskeyState, "", "you have %d passkeys, the most allowed; revoke one first", MaxPasskeys)
		}
		for _, k := range latest {
			if bytes.Equal(k.ID, cred.ID) {
				return nil, pb.Errorf(pb.ErrPasskeyState, "credential", "this passkey is already registered")
			}
		}
		k := pb.Passkey{ID: cred.ID, UserID: caller.ID, Credential: rec, CreatedAt: tx.Now().Truncate(time.Second)}
		tx.PutPasskey(k)
		v := passkeyView(k)
		return &v, nil
	})
}

// PasskeyApprovalOptions (user) returns the options for
// navigator.credentials.get() that approve the payment of confirmation id.
// The challenge commits to that payment: its ID, amount, currency and
// merchant.
func (s *Service) PasskeyApprovalOptions(ctx context.Context, caller pb.Principal, id string) (*protocol.CredentialAssertion, error) {
	p, err := s.confirmable(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if p.Status != pb.StatusRequiresConfirmation {
		return nil, pb.Errorf(pb.ErrPaymentState, "", "payment %s is %s; it no longer waits for confirmation", p.ID, p.Status)
	}
	u, err := s.passkeyUser(ctx, caller.ID)
	if err != nil {
		return nil, err
	}
	if len(u.creds) == 0 {
		return nil, errNoPasskey
	}
	opts, _, err := s.webauthn.BeginLogin(u, webauthn.WithChallenge(s.approvalChallenge(p)),
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("passkey approval: %w", err)
	}
	opts.Response.Timeout = int(p.Confirmation.ExpiresAt.Sub(s.clock.Now()) / time.Millisecond)
	return opts, nil
}

var errNoPasskey = pb.Errorf(pb.ErrPasskeyState, "", "you have no passkey: register one first (POST /v1/passkeys/registration)")

// ApproveWithPasskey (user) approves the payment of confirmation id with a
// passkey assertion (the browser's PublicKeyCredential as JSON) made for
// that payment with user verification. What follows is as ApproveWithTOTP.
func (s *Service) ApproveWithPasskey(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, assertion []byte) service.Result {
	found, err := s.confirmable(ctx, caller, id)
	if err != nil {
		return service.Result{Err: err}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertion)
	if err != nil {
		return service.Result{Err: passkeyInvalid("passkey", err)}
	}
	u, err := s.passkeyUser(ctx, caller.ID)
	if err != nil {
		return service.Result{Err: err}
	}
	if len(u.creds) == 0 {
		return service.Result{Err: errNoPasskey}
	}
	merchant, err := s.core.Merchant(ctx, found.MerchantID)
	if err != nil {
		return service.Result{Err: err}
	}
	var allowed [][]byte
	for _, c := range u.creds {
		allowed = append(allowed, c.ID)
	}
	session := webauthn.SessionData{Challenge: base64.RawURLEncoding.EncodeToString(s.approvalChallenge(found)),
		UserID: u.WebAuthnID(), AllowedCredentialIDs: allowed, UserVerification: protocol.VerificationRequired}
	cred, err := s.webauthn.ValidateLogin(u, session, parsed)
	if err != nil {
		s.log.Warn("security event: passkey assertion refused", "event", "passkey_refused", "user", caller.ID, "confirmation", id, "err", err)
		return service.Result{Err: passkeyInvalid("passkey", err)}
	}
	if cred.Authenticator.CloneWarning {
		return service.Result{Err: errCloned}
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return service.Result{Err: err}
	}
	return s.core.Noted(s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := s.pending(tx, found.ID)
		if err != nil {
			return nil, err
		}
		if err := s.notePasskeyUse(tx, caller.ID, cred, rec); err != nil {
			return nil, err
		}
		err = s.approve(tx, &p, caller, approvedData{ConfirmationID: p.Confirmation.ID, Factor: "passkey", PasskeyID: cred.ID}, merchant)
		tx.PutPayment(p)
		return &p, err
	}))
}

// errCloned refuses an assertion whose signature counter did not move past
// the one stored: WebAuthn's sign of a cloned authenticator (§6.1.1).
var errCloned = pb.Errorf(pb.ErrPasskeyInvalid, "passkey", "the passkey's signature counter went backwards: it may have been cloned; sign in another way and revoke it")

// NotePasskeySignIn records that userID signed in with cred, a credential
// the verifier has just accepted (with its sign counter moved), so the
// next use of the passkey, for a sign-in or an approval, is checked
// against this one. It refuses, recording nothing, a passkey that may be
// cloned (its counter not past the stored one, read again inside the
// operation so two sign-ins racing with one counter cannot both pass) or
// that was revoked since it was read.
func (s *Service) NotePasskeySignIn(ctx context.Context, userID string, cred *webauthn.Credential) error {
	if cred.Authenticator.CloneWarning {
		return errCloned
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return err
	}
	return s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		return nil, s.notePasskeyUse(tx, userID, cred, rec)
	}).Err
}

// notePasskeyUse records in tx that userID used cred (recorded as rec),
// which the verifier accepted against the passkey as read before tx. Read
// again now, the passkey may have been revoked meanwhile (errNoPasskey), or
// used with the same counter by another sign-in or approval (errCloned).
func (s *Service) notePasskeyUse(tx *ledger.Tx, userID string, cred *webauthn.Credential, rec []byte) error {
	keys, err := s.st.Passkeys(tx.Context(), userID)
	if err != nil {
		return err
	}
	for _, k := range ledger.Added(tx, func(b *pb.Batch) *[]pb.Passkey { return &b.Passkeys }) {
		if k.UserID == userID {
			keys = append(keys, k) // this batch's uses are later than the store's
		}
	}
	var last *pb.Passkey
	for i := range keys {
		if bytes.Equal(keys[i].ID, cred.ID) {
			last = &keys[i]
		}
	}
	if last == nil || last.RevokedAt != nil {
		return errNoPasskey
	}
	var stored webauthn.Credential
	if err := json.Unmarshal(last.Credential, &stored); err != nil {
		return fmt.Errorf("passkey %x of %s is corrupt: %w", last.ID, userID, err)
	}
	if n := cred.Authenticator.SignCount; (n != 0 || stored.Authenticator.SignCount != 0) && n <= stored.Authenticator.SignCount {
		return errCloned
	}
	k := *last
	k.Credential = rec
	tx.PutPasskey(k)
	return nil
}

// passkeyInvalid turns a verifier's refusal into a coded error that says
// why, without its internals.
func passkeyInvalid(param string, err error) error {
	msg := err.Error()
	if pe := (*protocol.Error)(nil); errors.As(err, &pe) && pe.Details != "" {
		msg = pe.Details
		if pe.DevInfo != "" {
			msg += " (" + pe.DevInfo + ")"
		}
	}
	return pb.Errorf(pb.ErrPasskeyInvalid, param, "the passkey response was refused: %s", msg)
}
