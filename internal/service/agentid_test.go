package service_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/agentid"
	"github.com/paybound/paybound/internal/httpsig"
	"github.com/paybound/paybound/internal/service"
)

// identityOf is agent identity over e's core, store and clock, as Main
// composes it: these tests follow an agent's keys through the ledger
// writer, and its signed requests into payments.
func identityOf(e *env) *agentid.Service { return agentid.New(e.svc, e.st, e.clock) }

// newAgentKey returns an Ed25519 key and its public JWK.
func newAgentKey(t *testing.T) (ed25519.PrivateKey, json.RawMessage) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	return priv, json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`)
}

// signedPayment is a POST /v1/payments signed with key at the clock's now.
func signedPayment(t *testing.T, e *env, key ed25519.PrivateKey, jwk json.RawMessage, body string) httpsig.Message {
	t.Helper()
	_, keyid, err := pb.ParseEd25519JWK(jwk)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "http://paybound.test/v1/payments", strings.NewReader(body))
	r.Header.Set("Content-Digest", httpsig.ContentDigest([]byte(body)))
	r.Header.Set("Idempotency-Key", "k")
	nonce := make([]byte, 16)
	rand.Read(nonce)
	now := e.clock.Now()
	if err := httpsig.Sign(r, "http", "sig1", httpsig.Params{Components: []string{"@method", "@authority", "@path", "content-digest", "idempotency-key"},
		Created: now, Expires: now.Add(time.Minute), Nonce: base64.StdEncoding.EncodeToString(nonce), KeyID: keyid,
		Alg: "ed25519", Tag: "web-bot-auth"}, key); err != nil {
		t.Fatal(err)
	}
	return httpsig.RequestMessage(r, "http", []byte(body))
}

// TestAgentIdentityOverTheCore: a signed request authenticates the agent
// and pays with its evidence logged; its nonce is spent through the ledger
// writer; a rotated key signs until its grace ends, a revoked one not at
// all; only the agent's user manages its keys.
func TestAgentIdentityOverTheCore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), 0)
	ids := identityOf(e)
	user := e.user(t, 10_000, "USD")
	shop := e.merchant(t)
	key1, jwk1 := newAgentKey(t)
	ag := must[*service.NewAgent](t, e.svc.CreateAgent(ctx, user, nil, "bot", jwk1))

	body := `{"amount":100,"currency":"USD","merchant_id":"` + shop.ID + `"}`
	m := signedPayment(t, e, key1, jwk1, body)
	caller, err := ids.Authenticate(ctx, m)
	if err != nil || caller.Role != pb.RoleAgent || caller.ID != ag.ID || caller.UserID != user.ID || !caller.Signed ||
		caller.Evidence == nil || caller.Evidence.KeyID != string(ag.KeyID) || string(caller.Evidence.Body) != body {
		t.Fatalf("Authenticate: %+v %v", caller, err)
	}
	p := must[*pb.Payment](t, e.svc.CreatePayment(ctx, caller, nil, service.CreatePaymentParams{Amount: 100, Currency: "USD", MerchantID: shop.ID}))
	if err := logOf(e).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	trace, err := e.st.SubjectLog(ctx, p.ID, 10)
	if err != nil || len(trace) == 0 || !strings.Contains(string(trace[0].Body), `"request":{`) ||
		!strings.Contains(string(trace[0].Body), caller.Evidence.KeyID) {
		t.Fatalf("the payment's first entry does not carry the signed request: %v %+v", err, trace)
	}
	if _, err := ids.Authenticate(ctx, m); pb.ErrorCode(err) != pb.ErrSignatureReplayed {
		t.Fatalf("replay: %v", err)
	}

	// Rotation: the new key signs at once, the old one until the grace ends.
	key2, jwk2 := newAgentKey(t)
	v := must[*agentid.KeyView](t, ids.AddKey(ctx, user, nil, ag.ID, jwk2, time.Minute))
	if !v.Active {
		t.Fatalf("new key: %+v", v)
	}
	for _, c := range []struct {
		key ed25519.PrivateKey
		jwk json.RawMessage
	}{{key1, jwk1}, {key2, jwk2}} {
		if _, err := ids.Authenticate(ctx, signedPayment(t, e, c.key, c.jwk, body)); err != nil {
			t.Fatalf("within the grace: %v", err)
		}
	}
	e.clock.Advance(2 * time.Minute)
	if _, err := ids.Authenticate(ctx, signedPayment(t, e, key1, jwk1, body)); pb.ErrorCode(err) != pb.ErrKeyRevoked {
		t.Fatalf("rotated out: %v", err)
	}
	must[*agentid.KeyView](t, ids.RevokeKey(ctx, user, nil, ag.ID, v.KeyID))
	if _, err := ids.Authenticate(ctx, signedPayment(t, e, key2, jwk2, body)); pb.ErrorCode(err) != pb.ErrKeyRevoked {
		t.Fatalf("revoked: %v", err)
	}
	keys, err := ids.Keys(ctx, user, ag.ID)
	if err != nil || len(keys) != 2 || keys[0].Active || keys[1].Active {
		t.Fatalf("Keys: %+v %v", keys, err)
	}

	// Another user sees no such agent, and cannot add or revoke its keys.
	other := e.user(t, 0, "")
	_, jwk3 := newAgentKey(t)
	if _, err := ids.Keys(ctx, other, ag.ID); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Fatalf("another user's Keys: %v", err)
	}
	if r := ids.AddKey(ctx, other, nil, ag.ID, jwk3, 0); pb.ErrorCode(r.Err) != pb.ErrNotFound {
		t.Fatalf("another user's AddKey: %v", r.Err)
	}
	if r := ids.RevokeKey(ctx, other, nil, ag.ID, v.KeyID); pb.ErrorCode(r.Err) != pb.ErrNotFound {
		t.Fatalf("another user's RevokeKey: %v", r.Err)
	}
}
