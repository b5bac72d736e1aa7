package agentid

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpsig"
	"github.com/paybound/paybound/internal/ledger"
)

// The window of a signed request: created no more than SignatureMaxAge ago
// (and expires no later than that after created), with SignatureSkew of
// clock difference allowed either way.
const (
	SignatureMaxAge = 5 * time.Minute
	SignatureSkew   = 30 * time.Second
)

// maxEvidenceHeaders bounds the signature material a request may carry:
// with the body (pb.MaxEvidenceBody) it must fit in one log entry.
const maxEvidenceHeaders = 16 << 10

// maxEvidenceJSON bounds the evidence as logged, leaving a payment's entry
// room for its description and metadata within pb.MaxLogEntryBytes.
const maxEvidenceJSON = 48 << 10

func sigErr(code pb.Code, format string, args ...any) error {
	return pb.Errorf(code, "", format, args...)
}

// Authenticate authenticates an agent's request signed with HTTP
// Message Signatures (RFC 9421, Web Bot Auth profile) instead of a bearer
// key. The signature must be fresh (created, expires), carry a nonce never
// seen before (remembered durably for the window, so a replay fails even
// after a restart), and cover @method, @authority, @path, content-digest
// when there is a body (which must match it) and idempotency-key when the
// request has one. keyid names the agent (the RFC 7638 thumbprint of its
// registered key). m is the request as signed, whatever transport carried
// it (internal/httpapi builds it from an *http.Request). The nonce is
// spent before Authenticate returns, by a ledger commit of its own.
func (s *Service) Authenticate(ctx context.Context, m httpsig.Message) (pb.Principal, error) {
	p, c, err := s.Verify(ctx, m)
	if err != nil {
		return pb.Principal{}, err
	}
	if err := s.Settle(ctx, c); err != nil {
		return pb.Principal{}, err
	}
	return p, nil
}

// Verify is Authenticate but for the nonce, which it returns unspent, as
// an open claim: the request's ledger operation, run under a context that
// carries it (ledger.WithNonceClaim), spends it in its own batch, which
// spares the request a commit. The caller must call Settle before it
// answers the request, whatever the handler did.
func (s *Service) Verify(ctx context.Context, m httpsig.Message) (pb.Principal, *ledger.NonceClaim, error) {
	sig, err := s.signature(m)
	if err != nil {
		return pb.Principal{}, nil, err
	}
	if err := checkCoverage(m, &sig); err != nil {
		return pb.Principal{}, nil, err
	}
	agent, pub, err := s.agentKey(ctx, sig.KeyID)
	if err != nil {
		return pb.Principal{}, nil, err
	}
	if err := m.Verify(&sig, pub); err != nil {
		return pb.Principal{}, nil, sigErr(pb.ErrSignatureInvalid, "%v", err)
	}
	ev, err := evidence(m, &sig)
	if err != nil {
		return pb.Principal{}, nil, err
	}
	c := ledger.NewNonceClaim(pb.Nonce{KeyID: sig.KeyID, Nonce: sig.Nonce, Expires: sig.Expires.Add(SignatureSkew)})
	return pb.Principal{Role: pb.RoleAgent, ID: agent.ID, UserID: agent.UserID, Signed: true, Evidence: ev}, c, nil
}

// Settle ends a claim of Verify's: nil when the nonce is spent (by the
// request's operation, or now), ErrSignatureReplayed when it was used
// before (the operation, if any, did not run). A claim no operation
// spent (none took it, or its batch failed) is spent now, durably (until
// the signature expires, plus the skew), by a commit of its own; a
// failure to record it is wrapped.
func (s *Service) Settle(ctx context.Context, c *ledger.NonceClaim) error {
	if !c.Spent() && !c.Used() {
		err := s.core.Run(ledger.WithNonceClaim(ctx, c), nil, func(*ledger.Tx) (any, error) { return nil, nil }).Err
		if err != nil && !errors.Is(err, ledger.ErrNonceUsed) {
			return fmt.Errorf("couldn't record the nonce: %w", err)
		}
	}
	switch {
	case c.Spent():
		return nil
	case c.Used():
		return errReplayed
	}
	return errors.New("couldn't record the nonce: an operation of the request holds it still")
}

var errReplayed = sigErr(pb.ErrSignatureReplayed, "this signature's nonce was used before; sign each request anew")

// signature parses m's signatures and chooses the one to check: the
// web-bot-auth one if any, else the first. It must name a keyid, carry a
// nonce of at most 200 bytes, and be fresh by s's clock. It returns
// ErrSignatureMissing, ErrSignatureInvalid or ErrSignatureExpired.
func (s *Service) signature(m httpsig.Message) (httpsig.Signature, error) {
	sigs, err := httpsig.Parse(m.Header)
	switch {
	case errors.Is(err, httpsig.ErrMissing):
		return httpsig.Signature{}, sigErr(pb.ErrSignatureMissing, "send Signature-Input and Signature, or Authorization: Bearer <key>")
	case err != nil:
		return httpsig.Signature{}, sigErr(pb.ErrSignatureInvalid, "%v", err)
	}
	sig := sigs[0]
	for _, x := range sigs {
		if x.Tag == "web-bot-auth" {
			sig = x
			break
		}
	}
	if sig.KeyID == "" || sig.Nonce == "" || len(sig.Nonce) > 200 {
		return httpsig.Signature{}, sigErr(pb.ErrSignatureInvalid, "the signature needs keyid and nonce parameters")
	}
	now := s.clock.Now()
	if err := sig.Check(now, SignatureMaxAge, SignatureSkew); err != nil {
		return httpsig.Signature{}, sigErr(pb.ErrSignatureExpired, "%v; sign again with created and expires within %s of now", err, SignatureMaxAge)
	}
	return sig, nil
}

// checkCoverage checks that sig covers @method, @authority and @path,
// content-digest when m has a body (and that the digest matches it:
// ErrDigestMismatch), and idempotency-key when m sends one
// (ErrSignatureInvalid).
func checkCoverage(m httpsig.Message, sig *httpsig.Signature) error {
	need := []string{"@method", "@authority", "@path"}
	if len(m.Body) > 0 {
		need = append(need, "content-digest")
	}
	if m.Header.Get("Idempotency-Key") != "" {
		need = append(need, "idempotency-key")
	}
	for _, c := range need {
		if !slices.Contains(sig.Components, c) {
			return sigErr(pb.ErrSignatureInvalid, "the signature must cover %q", c)
		}
	}
	if len(m.Body) > 0 {
		if err := httpsig.CheckContentDigest(m.Header.Values("Content-Digest"), m.Body); err != nil {
			return sigErr(pb.ErrDigestMismatch, "%v", err)
		}
	}
	return nil
}

// evidence is the verified request as the transparency log will keep it:
// the signature base and headers, and the body up to MaxEvidenceBody. The
// log must keep it faithfully, so a request it could not (not UTF-8, or
// past maxEvidenceHeaders or maxEvidenceJSON) is refused with
// ErrSignatureInvalid; the caller must check before the nonce is spent.
func evidence(m httpsig.Message, sig *httpsig.Signature) (*pb.RequestEvidence, error) {
	base, err := m.Base(sig)
	if err != nil { // Verify built the same base a moment ago
		return nil, sigErr(pb.ErrSignatureInvalid, "%v", err)
	}
	ev := &pb.RequestEvidence{KeyID: sig.KeyID, SignatureInput: strings.Join(m.Header.Values("Signature-Input"), ", "),
		Signature: strings.Join(m.Header.Values("Signature"), ", "), SignatureBase: string(base)}
	if len(m.Body) <= pb.MaxEvidenceBody {
		ev.Body = m.Body
	}
	// The request is kept in the transparency log as it was signed: refuse,
	// before its nonce is spent, one the log could not keep faithfully.
	if !utf8.ValidString(ev.SignatureBase) || !utf8.ValidString(ev.SignatureInput) || !utf8.ValidString(ev.Signature) {
		return nil, sigErr(pb.ErrSignatureInvalid, "signed header values must be UTF-8")
	}
	if len(ev.SignatureBase)+len(ev.SignatureInput)+len(ev.Signature) > maxEvidenceHeaders {
		return nil, sigErr(pb.ErrSignatureInvalid, "the signature's components and headers exceed %d bytes", maxEvidenceHeaders)
	}
	// As the log will write it (escaped, the body in base64), with room for
	// the rest of an entry.
	if enc, err := json.Marshal(ev); err != nil || len(enc) > maxEvidenceJSON {
		return nil, sigErr(pb.ErrSignatureInvalid, "the signed request is too large to keep as evidence (%d bytes as JSON; at most %d)", len(enc), maxEvidenceJSON)
	}
	return ev, nil
}

// agentKey returns the agent whose key has thumbprint keyid (its ID and
// user), and the key, refusing a key that is revoked or rotated out. The
// key is read as the core keeps it (Core.SigningKey: from memory on
// SQLite, as of the last change committed).
func (s *Service) agentKey(ctx context.Context, keyid string) (*pb.Agent, ed25519.PublicKey, error) {
	a, k, err := s.core.SigningKey(ctx, keyid)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil, sigErr(pb.ErrSignatureInvalid, "no agent has the key %q", keyid)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't look up the agent key: %w", err)
	}
	return s.validKey(a, k)
}

// validKey returns a and k's public key if k may sign now.
func (s *Service) validKey(a *pb.Agent, k *pb.AgentKey) (*pb.Agent, ed25519.PublicKey, error) {
	if !k.ValidAt(s.clock.Now()) {
		return nil, nil, sigErr(pb.ErrKeyRevoked, "the key %q was revoked or rotated out", k.KeyID)
	}
	pub, err := k.Ed25519()
	if err != nil {
		return nil, nil, fmt.Errorf("agent %s has an unreadable key: %w", a.ID, err)
	}
	return a, pub, nil
}
