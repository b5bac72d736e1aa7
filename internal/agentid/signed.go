package agentid

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
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
// it (internal/httpapi builds it from an *http.Request).
func (s *Service) Authenticate(ctx context.Context, m httpsig.Message) (pb.Principal, error) {
	sigs, err := httpsig.Parse(m.Header)
	switch {
	case errors.Is(err, httpsig.ErrMissing):
		return pb.Principal{}, sigErr(pb.ErrSignatureMissing, "send Signature-Input and Signature, or Authorization: Bearer <key>")
	case err != nil:
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "%v", err)
	}
	sig := sigs[0]
	for _, x := range sigs {
		if x.Tag == "web-bot-auth" {
			sig = x
			break
		}
	}
	if sig.KeyID == "" || sig.Nonce == "" || len(sig.Nonce) > 200 {
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "the signature needs keyid and nonce parameters")
	}
	now := s.clock.Now()
	if err := sig.Check(now, SignatureMaxAge, SignatureSkew); err != nil {
		return pb.Principal{}, sigErr(pb.ErrSignatureExpired, "%v; sign again with created and expires within %s of now", err, SignatureMaxAge)
	}
	need := []string{"@method", "@authority", "@path"}
	if len(m.Body) > 0 {
		need = append(need, "content-digest")
	}
	if m.Header.Get("Idempotency-Key") != "" {
		need = append(need, "idempotency-key")
	}
	for _, c := range need {
		if !slices.Contains(sig.Components, c) {
			return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "the signature must cover %q", c)
		}
	}
	if len(m.Body) > 0 {
		if err := httpsig.CheckContentDigest(m.Header.Values("Content-Digest"), m.Body); err != nil {
			return pb.Principal{}, sigErr(pb.ErrDigestMismatch, "%v", err)
		}
	}
	agent, pub, err := s.agentKey(ctx, sig.KeyID)
	if err != nil {
		return pb.Principal{}, err
	}
	if err := m.Verify(&sig, pub); err != nil {
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "%v", err)
	}
	base, err := m.Base(&sig)
	if err != nil { // Verify built the same base a moment ago
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "%v", err)
	}
	ev := &pb.RequestEvidence{KeyID: sig.KeyID, SignatureInput: strings.Join(m.Header.Values("Signature-Input"), ", "),
		Signature: strings.Join(m.Header.Values("Signature"), ", "), SignatureBase: string(base)}
	if len(m.Body) <= pb.MaxEvidenceBody {
		ev.Body = m.Body
	}
	// The request is kept in the transparency log as it was signed: refuse,
	// before its nonce is spent, one the log could not keep faithfully.
	if !utf8.ValidString(ev.SignatureBase) || !utf8.ValidString(ev.SignatureInput) || !utf8.ValidString(ev.Signature) {
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "signed header values must be UTF-8")
	}
	if len(ev.SignatureBase)+len(ev.SignatureInput)+len(ev.Signature) > maxEvidenceHeaders {
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "the signature's components and headers exceed %d bytes", maxEvidenceHeaders)
	}
	// As the log will write it (escaped, the body in base64), with room for
	// the rest of an entry.
	if enc, err := json.Marshal(ev); err != nil || len(enc) > maxEvidenceJSON {
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "the signed request is too large to keep as evidence (%d bytes as JSON; at most %d)", len(enc), maxEvidenceJSON)
	}
	err = s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		return nil, tx.UseNonce(pb.Nonce{KeyID: sig.KeyID, Nonce: sig.Nonce, Expires: sig.Expires.Add(SignatureSkew)})
	}).Err
	if errors.Is(err, ledger.ErrNonceUsed) {
		return pb.Principal{}, sigErr(pb.ErrSignatureReplayed, "this signature's nonce was used before; sign each request anew")
	}
	if err != nil {
		return pb.Principal{}, fmt.Errorf("couldn't record the nonce: %w", err)
	}
	return pb.Principal{Role: pb.RoleAgent, ID: agent.ID, UserID: agent.UserID, Signed: true, Evidence: ev}, nil
}

// agentKey returns the agent whose key has thumbprint keyid, and the key,
// refusing a key that is revoked or rotated out.
func (s *Service) agentKey(ctx context.Context, keyid string) (*pb.Agent, ed25519.PublicKey, error) {
	k, err := s.st.AgentKey(ctx, keyid)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil, sigErr(pb.ErrSignatureInvalid, "no agent has the key %q", keyid)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't look up the agent key: %w", err)
	}
	if !k.ValidAt(s.clock.Now()) {
		return nil, nil, sigErr(pb.ErrKeyRevoked, "the key %q was revoked or rotated out", keyid)
	}
	a, err := s.st.Agent(ctx, k.AgentID)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't look up agent %s: %w", k.AgentID, err)
	}
	pub, err := jwkPublicKey(k.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("agent %s has an unreadable key: %w", a.ID, err)
	}
	return a, pub, nil
}

func jwkPublicKey(jwk string) (ed25519.PublicKey, error) {
	var k struct {
		X string `json:"x"`
	}
	if err := json.Unmarshal([]byte(jwk), &k); err != nil {
		return nil, err
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("not an Ed25519 key")
	}
	return ed25519.PublicKey(x), nil
}
