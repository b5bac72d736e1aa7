package service

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

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
// registered key). scheme is the request's scheme as the client saw it.
func (s *Service) AuthenticateSigned(ctx context.Context, r *http.Request, body []byte, scheme string) (pb.Principal, error) {
	sigs, err := httpsig.Parse(r.Header)
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
	if len(body) > 0 {
		need = append(need, "content-digest")
	}
	if r.Header.Get("Idempotency-Key") != "" {
		need = append(need, "idempotency-key")
	}
	for _, c := range need {
		if !slices.Contains(sig.Components, c) {
			return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "the signature must cover %q", c)
		}
	}
	if len(body) > 0 {
		if err := httpsig.CheckContentDigest(r.Header.Values("Content-Digest"), body); err != nil {
			return pb.Principal{}, sigErr(pb.ErrDigestMismatch, "%v", err)
		}
	}
	agent, pub, err := s.agentKey(ctx, sig.KeyID)
	if err != nil {
		return pb.Principal{}, err
	}
	if err := httpsig.Verify(r, scheme, &sig, pub); err != nil {
		return pb.Principal{}, sigErr(pb.ErrSignatureInvalid, "%v", err)
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
	return pb.Principal{Role: pb.RoleAgent, ID: agent.ID, UserID: agent.UserID, Signed: true}, nil
}

// agentKey returns the agent whose key has thumbprint keyid, and the key.
func (s *Service) agentKey(ctx context.Context, keyid string) (*pb.Agent, ed25519.PublicKey, error) {
	a, err := s.st.AgentByKeyID(ctx, keyid)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil, sigErr(pb.ErrSignatureInvalid, "no agent has the key %q", keyid)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't look up the agent key: %w", err)
	}
	var jwk struct {
		X string `json:"x"`
	}
	if err := json.Unmarshal([]byte(a.PublicKey), &jwk); err != nil {
		return nil, nil, fmt.Errorf("agent %s has an unreadable key: %w", a.ID, err)
	}
	x, err := base64.RawURLEncoding.DecodeString(jwk.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("agent %s has an unreadable key", a.ID)
	}
	return a, ed25519.PublicKey(x), nil
}
