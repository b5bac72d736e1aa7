package service

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

// AuthenticateSigned authenticates an agent's request signed with HTTP
// Message Signatures (RFC 9421, Web Bot Auth profile) instead of a bearer
// key. The signature must be fresh (created, expires), carry a nonce never
// seen before (remembered durably for the window, so a replay fails even
// after a restart), and cover @method, @authority, @path, content-digest
// when there is a body (which must match it) and idempotency-key when the
// request has one. keyid names the agent (the RFC 7638 thumbprint of its
// registered key). m is the request as signed, whatever transport carried
// it (internal/httpapi builds it from an *http.Request).
func (s *Service) AuthenticateSigned(ctx context.Context, m httpsig.Message) (pb.Principal, error) {
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
	_, err = s.led.Submit(ctx, func(tx *ledger.Tx) (any, error) {
		return nil, tx.UseNonce(pb.Nonce{KeyID: sig.KeyID, Nonce: sig.Nonce, Expires: sig.Expires.Add(SignatureSkew)})
	})
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

// MaxAgentKeys bounds an agent's keys, revoked ones included.
const MaxAgentKeys = 20

// AgentKeyView is an agent key as the API shows it.
type AgentKeyView struct {
	pb.AgentKey
	PublicKey json.RawMessage `json:"public_key"`
	Active    bool            `json:"active"`
}

func (s *Service) keyView(k pb.AgentKey) AgentKeyView {
	return AgentKeyView{AgentKey: k, PublicKey: json.RawMessage(k.PublicKey), Active: k.ValidAt(s.clock.Now())}
}

// ownAgent checks that agent id belongs to user caller.
func (s *Service) ownAgent(ctx context.Context, caller pb.Principal, id string) error {
	if err := RequireRole(caller, pb.RoleUser); err != nil {
		return err
	}
	a, err := s.st.Agent(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && a.UserID != caller.ID) {
		return pb.Errorf(pb.ErrNotFound, "id", "you have no agent %s", id)
	}
	return err
}

// AddAgentKey (user) registers another signing key for one of the caller's
// agents. With rotate > 0, the agent's other valid keys stop working after
// that grace period: both sign meanwhile, so the agent can switch without
// a gap.
func (s *Service) AddAgentKey(ctx context.Context, caller pb.Principal, idem *Idempotency, agentID string, publicKey []byte, rotate time.Duration) Result {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return Result{Err: err}
	}
	if rotate < 0 || rotate > 30*24*time.Hour {
		return Result{Err: pb.Errorf(pb.ErrParameterInvalid, "rotate_after_seconds", "rotate_after_seconds must be between 0 and 30 days")}
	}
	jwk, keyid, err := pb.ParseEd25519JWK(publicKey)
	if err != nil {
		return Result{Err: err}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		if taken, err := tx.HasAgentKey(keyid); err != nil || taken {
			return nil, firstErr(err, pb.Errorf(pb.ErrParameterInvalid, "public_key", "this key is already registered to an agent"))
		}
		keys, err := s.st.AgentKeys(tx.Context(), agentID)
		if err != nil {
			return nil, err
		}
		if len(keys) >= MaxAgentKeys {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "public_key", "an agent has at most %d keys", MaxAgentKeys)
		}
		now := tx.Now().Truncate(time.Second)
		if rotate > 0 {
			until := now.Add(rotate)
			for _, k := range keys {
				if k.ValidAt(now) && (k.NotAfter == nil || k.NotAfter.After(until)) {
					k.NotAfter = &until
					tx.AddAgentKey(k)
				}
			}
		}
		k := pb.AgentKey{KeyID: keyid, AgentID: agentID, PublicKey: jwk, CreatedAt: now}
		tx.AddAgentKey(k)
		logKey(tx, caller, pb.LogAgentKeyAdded, k)
		v := s.keyView(k)
		return &v, nil
	}))
}

// RevokeAgentKey (user) revokes one of an agent's keys at once.
func (s *Service) RevokeAgentKey(ctx context.Context, caller pb.Principal, idem *Idempotency, agentID, keyid string) Result {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return Result{Err: err}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		k, err := s.st.AgentKey(tx.Context(), keyid)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && k.AgentID != agentID) {
			return nil, pb.Errorf(pb.ErrNotFound, "keyid", "agent %s has no key %s", agentID, keyid)
		}
		if err != nil {
			return nil, err
		}
		if k.RevokedAt == nil {
			now := tx.Now().Truncate(time.Second)
			k.RevokedAt = &now
			tx.AddAgentKey(*k)
			logKey(tx, caller, pb.LogAgentKeyRevoked, *k)
		}
		v := s.keyView(*k)
		return &v, nil
	}))
}

// AgentKeys (user) lists an agent's keys.
func (s *Service) AgentKeys(ctx context.Context, caller pb.Principal, agentID string) ([]AgentKeyView, error) {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return nil, err
	}
	keys, err := s.st.AgentKeys(ctx, agentID)
	if err != nil {
		return nil, err
	}
	out := make([]AgentKeyView, len(keys))
	for i, k := range keys {
		out[i] = s.keyView(k)
	}
	return out, nil
}
