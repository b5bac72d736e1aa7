package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/stepup"
	"github.com/paybound/paybound/internal/storetest"
)

// storedSession reads session id from the store itself: what the server
// wrote, not what a read of the session made of it.
func (s *acpShop) storedSession(id string) *pb.CheckoutSession {
	s.t.Helper()
	sess, err := s.m.store.CheckoutSession(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return sess
}

// subjectLog returns the log's entries about subject once it has want of
// them (a shared store numbers entries as the checkpointer integrates
// them, within a second or so), or what it has after five seconds.
func (s *acpShop) subjectLog(subject string, want int) []pb.LogEntry {
	s.t.Helper()
	for try := 0; ; try++ {
		es, err := s.m.store.SubjectLog(context.Background(), subject, 100)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(es) >= want || try == 100 {
			return es
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTypes returns the types of the log's entries about subject, oldest
// first, once there are want of them.
func (s *acpShop) logTypes(subject string, want int) []string {
	s.t.Helper()
	var out []string
	for _, e := range s.subjectLog(subject, want) {
		var v struct{ Type string }
		if err := json.Unmarshal(e.Body, &v); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, v.Type)
	}
	return out
}

// pendingPay completes session id with a new token of number, for a
// payment that waits for the user, and returns the token and payment.
func (s *acpShop) pendingPay(id, number string) (token, payID, cfm string) {
	s.t.Helper()
	token = s.ok(201, s.delegate(s.agentKey, "d-"+id+time.Now().String(), number, id, s.merch, 1200, s.clock.Now().Add(time.Hour), s.signer)).str("id")
	p := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id+"/complete", s.agentKey, "k-"+id+time.Now().String(), completeBody(token), "", nil))
	if p.str("status") != "pending_approval" || !strings.Contains(p.str("continue_url"), "/v1/confirmations/cfm_") {
		s.t.Fatalf("complete above confirm_above: %s", p.raw)
	}
	payID = p.body["metadata"].(map[string]any)["payment_id"].(string)
	cfm = s.ok(200, s.call("GET", "/v1/payments/"+payID, s.userKey, "", nil)).body["confirmation"].(map[string]any)["id"].(string)
	return token, payID, cfm
}

// TestACPApprovalSettlesTheSession: the user's approval of a
// pending_approval session's payment completes the session in the
// approval's own operation (the store holds the completed session and the
// log its checkout_session.completed entry before anyone reads it); a
// denial, an expiry and a cancel make it payable again, its token free for another
// completion; a payment's metadata naming a session does not touch it.
func TestACPApprovalSettlesTheSession(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	_, card := s.cardFor(map[string]any{"confirm_above": 1000})
	e := s.ok(201, s.call("POST", "/v1/totp", s.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	s.ok(200, s.call("POST", "/v1/totp/verify", s.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, s.clock.Now())}))
	approve := func(cfm string) {
		s.clock.Advance(stepup.TOTPStep)
		s.ok(200, s.call("POST", "/v1/confirmations/"+cfm+"/approve", s.userKey, "", map[string]any{"totp": stepup.TOTPCode(secret, s.clock.Now())}))
	}

	// Approval.
	id := s.teaSession(1)
	_, payID, cfm := s.pendingPay(id, card)
	// A payment of the agent's own cannot name the session in its
	// metadata: the key is Paybound's, refused at the door.
	forged := s.call("POST", "/v1/payments", s.agentKey, "own-"+id, map[string]any{"amount": 1200, "currency": "USD",
		"merchant_id": s.merch, "description": "x", "capture_method": "automatic", "metadata": map[string]string{pb.MetadataCheckoutSession: id}})
	if forged.status != 400 || forged.errField("param") != "metadata."+pb.MetadataCheckoutSession {
		t.Fatalf("a payment naming the session in its metadata: %d %s", forged.status, forged.raw)
	}
	if st := s.storedSession(id); st.Status != pb.CheckoutPendingApproval || st.PaymentID != payID {
		t.Fatalf("a refused payment that names the session changed it: %+v", st)
	}
	approve(cfm)
	if st := s.storedSession(id); st.Status != pb.CheckoutCompleted || st.Order == nil || st.PaymentID != payID {
		t.Fatalf("stored after the approval, before any read: %+v", st)
	}
	if got := s.logTypes(id, 1); len(got) != 1 || got[0] != checkout.LogCheckoutCompleted {
		t.Fatalf("the session's log entries after the approval: %v", got)
	}
	g := s.ok(200, s.acp("GET", s.sessions(s.merch)+"/"+id, s.agentKey, "", nil, "", nil))
	if g.str("status") != "completed" || g.body["order"] == nil {
		t.Fatalf("after the approval: %s", g.raw)
	}
	if st := s.ok(200, s.call("GET", "/v1/payments/"+payID, s.userKey, "", nil)).str("status"); st != "captured" {
		t.Fatalf("approved payment is %s", st)
	}

	// Denial: payable again at once, with the same token.
	id2 := s.teaSession(1)
	tok2, pay2, cfm2 := s.pendingPay(id2, card)
	s.ok(200, s.call("POST", "/v1/confirmations/"+cfm2+"/deny", s.userKey, "", nil))
	if st := s.storedSession(id2); st.Status != pb.CheckoutReady || st.PaymentID != "" || st.DeclinedPaymentID != pay2 {
		t.Fatalf("stored after the denial, before any read: %+v", st)
	}
	g = s.ok(200, s.acp("GET", s.sessions(s.merch)+"/"+id2, s.agentKey, "", nil, "", nil))
	if g.str("status") != "ready_for_payment" || !strings.Contains(string(g.raw), "The buyer denied payment "+pay2) {
		t.Fatalf("after the denial: %s", g.raw)
	}
	again := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id2+"/complete", s.agentKey, "again-"+id2, completeBody(tok2), "", nil))
	if again.str("status") != "pending_approval" || again.body["metadata"].(map[string]any)["payment_id"] == pay2 {
		t.Fatalf("complete again with the freed token: %s", again.raw)
	}

	// Expiry of the confirmation, by the sweeper.
	id3 := s.teaSession(1)
	_, pay3, _ := s.pendingPay(id3, card)
	s.clock.Advance(pb.ConfirmationTTL + time.Minute)
	if _, err := s.m.Service.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.storedSession(id3); st.Status != pb.CheckoutReady || st.DeclinedPaymentID != pay3 ||
		!strings.Contains(st.Messages[0].Content, "before its confirmation expired") {
		t.Fatalf("stored after the expiry: %+v", st)
	}

	// A cancel of the waiting payment, by the agent.
	id4 := s.teaSession(1)
	_, pay4, _ := s.pendingPay(id4, card)
	s.ok(200, s.call("POST", "/v1/payments/"+pay4+"/cancel", s.agentKey, "", nil))
	if st := s.storedSession(id4); st.Status != pb.CheckoutReady || st.DeclinedPaymentID != pay4 {
		t.Fatalf("stored after the cancel: %+v", st)
	}
	s.verify()
}

// TestSessionLogEntriesReadable: the log's entries about a checkout
// session are readable by its merchant, its user and its agent, as a
// payment's are by its parties; another merchant or agent gets not found.
func TestSessionLogEntriesReadable(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	id := s.teaSession(1)
	if st := s.ok(200, s.pay(id, s.cardNo, 1200)).str("status"); st != "completed" {
		t.Fatalf("complete: %s", st)
	}
	es := s.subjectLog(id, 1)
	if len(es) != 1 {
		t.Fatalf("the session's entries: %v", es)
	}
	path := fmt.Sprintf("/v1/log/entries/%d", es[0].Index)
	for who, key := range map[string]string{"merchant": s.merchKey, "user": s.userKey, "agent": s.agentKey, "operator": s.op} {
		r := s.ok(200, s.call("GET", path, key, "", nil))
		if !strings.Contains(string(r.raw), checkout.LogCheckoutCompleted) {
			t.Fatalf("the %s read %s", who, r.raw)
		}
	}
	for who, key := range map[string]string{"another merchant": s.merch2Key, "another agent": s.world.agentKey} {
		if r := s.call("GET", path, key, "", nil); r.status != 404 {
			t.Fatalf("%s read the session's entry: %d %s", who, r.status, r.raw)
		}
	}
}

// TestACPSessionUpdatesTwoProcesses: two servers on one PostgreSQL
// database receive updates of one session at once. Every update answered
// 200 is kept: each is priced over the one before it (the test's clock
// stands still, so each moves updated_at on by exactly one second), and
// none overwrites another written meanwhile by the other process; the
// others are refused with checkout_session_state and change nothing.
func TestACPSessionUpdatesTwoProcesses(t *testing.T) {
	t.Parallel()
	db := storetest.PostgresURL(t)
	s := newShopDB(t, db)
	s2 := &acpShop{world: &world{api: &api{t: t, base: secondMain(t, s.m, func(m *Main) { m.Clock = s.clock }).URL()}}, clock: s.clock}
	for round := range 3 {
		id := s.teaSession(1)
		before := s.storedSession(id)
		var wg sync.WaitGroup
		var mu sync.Mutex
		out := map[string]int{}
		for i := range 16 {
			wg.Go(func() {
				srv := []*acpShop{s, s2}[i%2]
				items := []any{}
				for range i + 1 {
					items = append(items, map[string]any{"id": s.tea})
				}
				r := srv.acp("POST", s.sessions(s.merch)+"/"+id, s.agentKey, fmt.Sprintf("u%d-%d", round, i),
					map[string]any{"line_items": items}, "", nil)
				mu.Lock()
				out[fmt.Sprint(r.status, " ", r.str("code"))]++
				mu.Unlock()
			})
		}
		wg.Wait()
		after := s.storedSession(id)
		t.Logf("round %d: %v; version %d", round, out, after.Version)
		ok := out["200 "]
		if ok == 0 || ok+out["409 checkout_session_state"] != 16 {
			t.Fatalf("outcomes %v; want updates and checkout_session_state refusals only", out)
		}
		if moved := after.UpdatedAt.Sub(before.UpdatedAt); moved != time.Duration(ok)*time.Second {
			t.Fatalf("%d updates answered 200, but the session moved on by %v: an update was lost", ok, moved)
		}
		if after.Version != before.Version+int64(ok) {
			t.Fatalf("version %d after %d updates of version %d", after.Version, ok, before.Version)
		}
	}
}

// secondMain starts another server on m's database, with m's keys, as
// configure says.
func secondMain(t *testing.T, m *Main, configure func(*Main)) *Main {
	dir := t.TempDir()
	for _, f := range []string{"operator.key", "log.key"} {
		b, err := os.ReadFile(filepath.Join(m.Config.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startMain(t, dir, func(m2 *Main) {
		m2.Config.DB = m.Config.DB
		if configure != nil {
			configure(m2)
		}
	})
}
