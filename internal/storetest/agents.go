package storetest

import (
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// testNonces: a nonce is seen once stored, a second store of it refuses the
// batch, and old ones are deleted. A signed request's nonce is one with its
// expiry; an x402 nonce is one whatever its expiry (pb.Nonce.Same).
func testNonces(t *testing.T, s pb.Store) {
	ctx := t.Context()
	n := pb.Nonce{KeyID: "kid", Nonce: "n1", Expires: t0.Add(5 * time.Minute)}
	x := pb.Nonce{KeyID: "kid", Nonce: pb.NoncePrefixX402 + "n1", Expires: t0.Add(5 * time.Minute)}
	if seen, err := s.NonceSeen(ctx, n); err != nil || seen {
		t.Fatalf("before: %v %v", seen, err)
	}
	commit(t, s, &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: []pb.Nonce{n, x, {KeyID: "kid", Nonce: "n2", Expires: t0.Add(time.Hour)}}}})
	if seen, err := s.NonceSeen(ctx, n); err != nil || !seen {
		t.Fatalf("after: %v %v", seen, err)
	}
	if seen, _ := s.NonceSeen(ctx, pb.Nonce{KeyID: "other", Nonce: "n1", Expires: n.Expires}); seen {
		t.Fatal("a nonce is per key")
	}
	later := pb.Nonce{KeyID: "kid", Nonce: "n1", Expires: n.Expires.Add(time.Second)}
	if seen, _ := s.NonceSeen(ctx, later); seen {
		t.Fatal("a signed request's nonce with another expiry was seen")
	}
	xLater := x
	xLater.Expires = x.Expires.Add(time.Hour)
	if seen, err := s.NonceSeen(ctx, xLater); err != nil || !seen {
		t.Fatalf("an x402 nonce with another expiry: seen %v, %v", seen, err)
	}
	for _, again := range []pb.Nonce{n, xLater} {
		b := &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: []pb.Nonce{again}}, PaymentPart: pb.PaymentPart{Users: []pb.User{{ID: "usr_nonce", Name: "x", CreatedAt: t0}}}}
		if err := s.Commit(ctx, b); err == nil {
			t.Fatalf("nonce %+v was stored twice", again)
		}
		if _, err := s.User(ctx, "usr_nonce"); pb.ErrorCode(err) != pb.ErrNotFound {
			t.Fatal("the refused batch's user was written")
		}
	}
	commit(t, s, &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: []pb.Nonce{later}}})
	if d, err := s.DeleteNonces(ctx, t0.Add(10*time.Minute), 10); err != nil || d != 3 {
		t.Fatalf("DeleteNonces = %d, %v; want 3", d, err)
	}
	if seen, _ := s.NonceSeen(ctx, pb.Nonce{KeyID: "kid", Nonce: "n2", Expires: t0.Add(time.Hour)}); !seen {
		t.Fatal("a nonce inside its window was deleted")
	}
	if seen, _ := s.NonceSeen(ctx, xLater); seen {
		t.Fatal("an x402 nonce past its window was kept")
	}
}

func testAgentByKeyID(t *testing.T, s pb.Store) {
	ctx := t.Context()
	later := t0.Add(time.Hour)
	k1 := pb.AgentKey{KeyID: "thumb-1", AgentID: "agt_k", PublicKey: `{"kty":"OKP"}`, CreatedAt: t0}
	k2 := pb.AgentKey{KeyID: "thumb-2", AgentID: "agt_k", PublicKey: `{"kty":"OKP","x":"2"}`, CreatedAt: later}
	commit(t, s, &pb.Batch{AgentKeyPart: pb.AgentKeyPart{AgentKeys: []pb.AgentKey{k1, k2}}})
	k1.NotAfter, k1.RevokedAt = &later, &later
	commit(t, s, &pb.Batch{AgentKeyPart: pb.AgentKeyPart{AgentKeys: []pb.AgentKey{k1}}})
	got, err := s.AgentKey(ctx, "thumb-1")
	if err != nil || got.AgentID != "agt_k" || got.PublicKey != k1.PublicKey || got.NotAfter == nil || !got.NotAfter.Equal(sec(later)) || got.RevokedAt == nil {
		t.Fatalf("AgentKey: %+v %v", got, err)
	}
	keys, err := s.AgentKeys(ctx, "agt_k")
	if err != nil || len(keys) != 2 || keys[0].KeyID != "thumb-1" || keys[1].KeyID != "thumb-2" || keys[1].NotAfter != nil {
		t.Fatalf("AgentKeys: %+v %v", keys, err)
	}
	_, err = s.AgentKey(ctx, "thumb-3")
	wantNotFound(t, "AgentKey(thumb-3)", err)
	if keys, err := s.AgentKeys(ctx, "agt_none"); err != nil || keys == nil || len(keys) != 0 {
		t.Fatalf("no keys: %#v %v", keys, err)
	}
}

// testUserAgents: a user's agents are listed newest first, a page at a
// time, and no other user's.
func testUserAgents(t *testing.T, s pb.Store) {
	ctx := t.Context()
	var agents []pb.Agent
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		agents = append(agents, pb.Agent{ID: pb.NewID(pb.PrefixAgent, at), UserID: "usr_alice", Name: "a", KeyID: pb.OptString(""), CreatedAt: at})
	}
	bob := pb.Agent{ID: pb.NewID(pb.PrefixAgent, t0.Add(time.Second)), UserID: "usr_bob", Name: "b", CreatedAt: t0}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Agents: append(agents, bob)}})
	page, more, err := s.UserAgents(ctx, "usr_alice", "", 3)
	if err != nil || !more || len(page) != 3 || page[0].ID != agents[4].ID || page[2].ID != agents[2].ID || page[0].UserID != "usr_alice" || !page[0].CreatedAt.Equal(sec(agents[4].CreatedAt)) {
		t.Fatalf("first page = %+v, %v, %v", page, more, err)
	}
	page, more, err = s.UserAgents(ctx, "usr_alice", page[2].ID, 3)
	if err != nil || more || len(page) != 2 || page[0].ID != agents[1].ID || page[1].ID != agents[0].ID {
		t.Fatalf("second page = %+v, %v, %v", page, more, err)
	}
	if page, more, err := s.UserAgents(ctx, "usr_carol", "", 0); err != nil || more || len(page) != 0 {
		t.Fatalf("a user with no agents = %+v, %v, %v", page, more, err)
	}
}
