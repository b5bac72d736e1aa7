package service

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// What the transparency log records about each change. The types below
// are the "data" of the entries; their JSON is part of the public record,
// so fields are only ever added.

// createdData is a payment as asked for, with the agent's signed request
// when there was one.
//
// RiskSHA256 commits to the risk assessment (pb.RiskOpening): the merchant
// reads this entry and may not learn the assessment. Entries logged before
// it carried the assessment in clear, as "risk". Salt is set with a
// Request: the request carries risk control's inputs (provenance), so the
// entry is withheld from the merchant, and the salt keeps its leaf hash,
// which the merchant is given, from confirming a guess of it.
type createdData struct {
	AgentID                string              `json:"agent_id,omitempty"`
	Amount                 int64               `json:"amount"`
	AuthorizationExpiresAt *time.Time          `json:"authorization_expires_at,omitempty"`
	CaptureMethod          pb.CaptureMethod    `json:"capture_method"`
	Currency               string              `json:"currency"`
	Description            string              `json:"description,omitempty"`
	MandateID              string              `json:"mandate_id,omitempty"`
	MerchantID             string              `json:"merchant_id"`
	Metadata               map[string]string   `json:"metadata,omitempty"`
	PayerID                string              `json:"payer_id"`
	Request                *pb.RequestEvidence `json:"request,omitempty"`
	RiskSHA256             string              `json:"risk_sha256,omitempty"`
	Salt                   string              `json:"salt,omitempty"`
}

// newSalt returns 16 random bytes, hex: in an entry withheld from a party
// that is given its leaf hash, it makes the entry unguessable.
func newSalt() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// declinedData says why a payment was declined, which the merchant may not
// learn: the entry is withheld from it, and Salt (in entries logged since
// entries were withheld) keeps the few codes there are from being tried
// against its leaf hash. So does askedData's.
type declinedData struct {
	DeclineCode pb.Code `json:"decline_code"`
	Message     string  `json:"message"`
	Salt        string  `json:"salt,omitempty"`
}

type askedData struct {
	ConfirmationID string    `json:"confirmation_id"`
	ExpiresAt      time.Time `json:"expires_at"`
	Reason         string    `json:"reason"`
	Salt           string    `json:"salt,omitempty"`
}

type authorizedData struct {
	Amount    int64      `json:"amount"`
	Basis     string     `json:"basis"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	MandateID string     `json:"mandate_id,omitempty"`
}

type capturedData struct {
	Amount   int64 `json:"amount"`
	Fee      int64 `json:"fee"`
	Released int64 `json:"released"` // the part of the hold not captured
}

type releasedData struct {
	Released int64  `json:"released"`
	What     string `json:"what,omitempty"` // for expiries: "hold" or "confirmation"
}

type refundedData struct {
	Amount      int64  `json:"amount"`
	FeeReturned int64  `json:"fee_returned"`
	Reason      string `json:"reason,omitempty"`
	RefundID    string `json:"refund_id"`
}

type topupData struct {
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Rail      string `json:"rail"` // sandbox, or operator
	Reference string `json:"reference,omitempty"`
	TopupID   string `json:"topup_id"`
}

// LogPayment records an entry about p and moves p's log head to it.
// Encoding Paybound's own types cannot fail; if it did, the panic fails
// the operation whole (the writer undoes it), which is right: a change that
// cannot be logged must not happen.
func LogPayment(tx *ledger.Tx, p *pb.Payment, actor pb.Actor, typ string, data any) {
	if err := tx.LogPayment(p, pb.LogEvent{Type: typ, Actor: actor, Data: data}); err != nil {
		panic(fmt.Sprintf("couldn't log %s of %s: %v", typ, p.ID, err))
	}
}

// LogRecord records an entry about another subject (a mandate, an agent,
// a wallet). See LogPayment on the panic.
func LogRecord(tx *ledger.Tx, subject string, actor pb.Actor, typ string, data any) {
	if err := tx.Log(pb.LogEvent{Type: typ, Subject: subject, Actor: actor, Data: data}); err != nil {
		panic(fmt.Sprintf("couldn't log %s of %s: %v", typ, subject, err))
	}
}

// keyData is an agent key as logged: the public key itself, so that a
// signed request in the log can be checked against it.
type keyData struct {
	KeyID     string          `json:"keyid"`
	NotAfter  *time.Time      `json:"not_after,omitempty"`
	PublicKey json.RawMessage `json:"public_key"`
	RevokedAt *time.Time      `json:"revoked_at,omitempty"`
}

// LogKey records k, added or changed by caller, in the agent's log entries
// (typ: pb.LogAgentKeyAdded or pb.LogAgentKeyRevoked).
func LogKey(tx *ledger.Tx, caller pb.Principal, typ string, k pb.AgentKey) {
	LogRecord(tx, k.AgentID, pb.ActorOf(caller), typ, keyData{KeyID: k.KeyID, PublicKey: json.RawMessage(k.PublicKey),
		NotAfter: k.NotAfter, RevokedAt: k.RevokedAt})
}

// logCreated records a new payment as asked for. An assessment comes with
// its commitment (assess computes it, off the writer); one without would be
// a bug, which fails the operation as logPayment's panic does.
func logCreated(tx *ledger.Tx, p *pb.Payment, caller pb.Principal) {
	d := createdData{
		Amount: p.Amount, Currency: p.Currency, MerchantID: p.MerchantID, PayerID: p.PayerID,
		AgentID: string(p.AgentID), MandateID: string(p.MandateID), Description: p.Description,
		CaptureMethod: p.CaptureMethod, AuthorizationExpiresAt: p.AuthorizationExpiresAt,
		Metadata: p.Metadata, Request: caller.Evidence,
	}
	if p.Risk != nil {
		if p.Risk.Commitment == "" {
			panic(fmt.Sprintf("payment %s was assessed without a risk commitment", p.ID))
		}
		d.RiskSHA256 = p.Risk.Commitment
	}
	if d.Request != nil {
		d.Salt = newSalt()
	}
	LogPayment(tx, p, pb.ActorOf(caller), pb.LogPaymentCreated, d)
}

// mandateAsks reports whether p's mandate itself wants the user to confirm
// p (above its confirm_above).
func mandateAsks(tx *ledger.Tx, p *pb.Payment) bool {
	m, err := tx.Mandate(string(p.MandateID))
	return err != nil || m.NeedsConfirmation(p.Amount)
}

// logOutcome records what authorize made of p: declined, waiting for its
// user, or authorized (and captured). err is authorize's error, whose
// message explains a decline. approved says the user confirmed it.
func logOutcome(tx *ledger.Tx, p *pb.Payment, actor pb.Actor, approved bool, err error) {
	switch p.Status {
	case pb.StatusDeclined:
		msg := ""
		var e *pb.Error
		if errors.As(err, &e) {
			msg = e.Message
		}
		LogPayment(tx, p, actor, pb.LogPaymentDeclined, declinedData{DeclineCode: p.DeclineCode, Message: msg, Salt: newSalt()})
	case pb.StatusRequiresConfirmation:
		// The mandate's own reason comes first: risk_review says that
		// the mandate covered the payment and only risk control asked
		// (which disputes attribute differently).
		reason := pb.ConfirmRiskReview
		switch {
		case p.AgentID != "" && p.MandateID == "":
			reason = pb.ConfirmNoMandate
		case p.AgentID != "" && mandateAsks(tx, p):
			reason = pb.ConfirmAboveConfirm
		}
		LogPayment(tx, p, actor, pb.LogConfirmationAsked, askedData{ConfirmationID: p.Confirmation.ID,
			ExpiresAt: p.Confirmation.ExpiresAt, Reason: reason, Salt: newSalt()})
	case pb.StatusAuthorized, pb.StatusCaptured:
		basis := pb.BasisUser
		switch {
		case approved:
			basis = pb.BasisConfirmation
		case p.MandateID != "":
			basis = pb.BasisMandate
		}
		LogPayment(tx, p, actor, pb.LogPaymentAuthorized, authorizedData{Amount: p.Amount, Basis: basis,
			MandateID: string(p.MandateID), ExpiresAt: p.AuthorizationExpiresAt})
		if p.Status == pb.StatusCaptured {
			LogPayment(tx, p, actor, pb.LogPaymentCaptured, capturedData{Amount: p.AmountCaptured, Fee: p.FeeAmount})
		}
	}
}
