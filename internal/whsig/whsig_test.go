package whsig

import (
	"crypto/ed25519"
	"errors"
	"strconv"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification (and of its
// reference libraries' tests): this secret, id, timestamp and payload sign
// to this v1 signature.
func TestV1SpecExample(t *testing.T) {
	key, err := SecretKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	id, ts, body := "msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330), []byte(`{"test": 2432232314}`)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := V1(key, id, ts, body); got != want {
		t.Fatalf("V1 = %s, want %s", got, want)
	}
	now := time.Unix(ts, 0)
	if err := Verify(id, strconv.FormatInt(ts, 10), want, body, now, nil, key); err != nil {
		t.Fatalf("Verify of the spec's example: %v", err)
	}
	// Any change to what is signed fails.
	for name, c := range map[string]struct {
		id, ts string
		body   string
	}{
		"id":        {"msg_other", "1614265330", `{"test": 2432232314}`},
		"timestamp": {id, "1614265331", `{"test": 2432232314}`},
		"body":      {id, "1614265330", `{"test": 2432232315}`},
	} {
		if err := Verify(c.id, c.ts, want, []byte(c.body), now, nil, key); !errors.Is(err, ErrNoSignature) {
			t.Errorf("changed %s: %v, want ErrNoSignature", name, err)
		}
	}
	if err := Verify(id, "1614265330", want, body, now.Add(6*time.Minute), nil, key); !errors.Is(err, ErrTimestamp) {
		t.Errorf("6 minutes late: %v, want ErrTimestamp", err)
	}
	if err := Verify(id, "soon", want, body, now, nil, key); !errors.Is(err, ErrTimestamp) {
		t.Errorf("a bad timestamp: %v", err)
	}
	if err := Verify("", "1614265330", want, body, now, nil, key); !errors.Is(err, ErrMissingHeaders) {
		t.Errorf("no id: %v", err)
	}
}

// Several signatures side by side (a rotated secret and its successor,
// an Ed25519 one): any that verifies is enough, unknown versions are
// skipped.
func TestSignaturesSideBySide(t *testing.T) {
	oldKey, _ := SecretKey(NewSecret())
	newKey, _ := SecretKey(NewSecret())
	pub, priv, _ := ed25519.GenerateKey(nil)
	id, ts, body := "evt_1", int64(1700000000), []byte(`{"a":1}`)
	now := time.Unix(ts, 0)
	header := "v2,AAAA " + V1(newKey, id, ts, body) + " " + V1(oldKey, id, ts, body) + " " + V1a(priv, id, ts, body)
	for name, k := range map[string][]byte{"old": oldKey, "new": newKey} {
		if err := Verify(id, "1700000000", header, body, now, nil, k); err != nil {
			t.Errorf("the %s secret: %v", name, err)
		}
	}
	if err := Verify(id, "1700000000", header, body, now, pub); err != nil {
		t.Errorf("v1a with the public key: %v", err)
	}
	other, _ := SecretKey(NewSecret())
	if err := Verify(id, "1700000000", header, body, now, nil, other); !errors.Is(err, ErrNoSignature) {
		t.Errorf("another secret: %v", err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if err := Verify(id, "1700000000", V1a(priv, id, ts, body), body, now, otherPub); !errors.Is(err, ErrNoSignature) {
		t.Errorf("another public key: %v", err)
	}
	pk, err := ParsePublicKey(PublicKey(pub))
	if err != nil || !pk.Equal(pub) {
		t.Errorf("public key round trip: %v", err)
	}
	if _, err := ParsePublicKey("whpk_short"); err == nil {
		t.Error("a short public key parsed")
	}
	if _, err := SecretKey("whsec_!!"); err == nil {
		t.Error("a secret that is not base64 parsed")
	}
}

func TestACP(t *testing.T) {
	secret, body := NewSecret(), []byte(`{"type":"order_create"}`)
	h := ACP(secret, 1700000000, body)
	now := time.Unix(1700000100, 0)
	if err := VerifyACP(h, secret, body, now); err != nil {
		t.Fatalf("VerifyACP(%s): %v", h, err)
	}
	if err := VerifyACP(h, secret, []byte(`{}`), now); !errors.Is(err, ErrNoSignature) {
		t.Errorf("another body: %v", err)
	}
	if err := VerifyACP(h, secret, body, now.Add(time.Hour)); !errors.Is(err, ErrTimestamp) {
		t.Errorf("late: %v", err)
	}
	if err := VerifyACP("v1=abc", secret, body, now); err == nil {
		t.Error("a malformed header verified")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("evt_1", "1700000000", "v1,AAAA v1a,BBBB", []byte("{}"))
	key := []byte("k")
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, id, ts, sigs string, body []byte) {
		_ = Verify(id, ts, sigs, body, time.Unix(1700000000, 0), pub, key)
		_ = VerifyACP(sigs, "whsec_x", body, time.Unix(1700000000, 0))
	})
}
