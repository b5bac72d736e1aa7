package disputes

import (
	"reflect"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestProposeMerchantErrors feeds propose logs (in the entry format the
// core writes) that the ledger would never
// write (it refuses a second capture, a capture after a cancel, and more
// than the hold), as a tampered or buggy merchant integration might show:
// each is placed on the merchant, naming the entries.
func TestProposeMerchantErrors(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	p := &pb.Payment{ID: "pay_x", Amount: 1000, Currency: "CNY", MerchantID: "mch_x", PayerID: "usr_x", AgentID: "agt_x", MandateID: "mdt_x"}
	agent := pb.Actor{Role: pb.RoleAgent, ID: "agt_x", Assurance: pb.AssuranceSigned}
	merchant := pb.Actor{Role: pb.RoleMerchant, ID: "mch_x"}
	ev := func(typ string, actor pb.Actor, data any) pb.LogEvent {
		return pb.LogEvent{Type: typ, Subject: p.ID, Actor: actor, Data: data}
	}
	created := ev(pb.LogPaymentCreated, agent, map[string]any{"amount": 1000, "currency": "CNY"})
	authorized := ev(pb.LogPaymentAuthorized, agent, map[string]any{"amount": 1000, "basis": pb.BasisMandate, "mandate_id": "mdt_x"})
	captured := func(amount int64) pb.LogEvent {
		return ev(pb.LogPaymentCaptured, merchant, map[string]any{"amount": amount, "fee": 0, "released": 0})
	}
	for _, c := range []struct {
		name   string
		events []pb.LogEvent
		check  string
	}{
		{"duplicate capture", []pb.LogEvent{created, authorized, captured(500), captured(500)}, "duplicate_capture"},
		{"capture after cancel", []pb.LogEvent{created, authorized, ev(pb.LogPaymentCanceled, merchant, map[string]any{"released": 1000}), captured(1000)}, "capture_after_payment.canceled"},
		{"capture above the hold", []pb.LogEvent{created, authorized, captured(1500)}, "capture_above_authorized"},
		{"as authorized", []pb.LogEvent{created, authorized, captured(1000)}, "mandate"},
	} {
		var entries []pb.LogEntry
		for i, e := range c.events {
			body, err := pb.EncodeLogEntry(e, at.Add(time.Duration(i)*time.Minute), nil)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, pb.LogEntry{Index: int64(10 + i), Subject: p.ID, Body: body})
		}
		got := propose(p, entries, pb.ReasonMerchantError, nil)
		want := pb.AttributionMerchantError
		if c.check == "mandate" {
			want = pb.AttributionUserIntentUnclear
		}
		if got.Attribution != want || got.Check != c.check || len(got.Evidence) != len(c.events) {
			t.Errorf("%s: %+v; want %s by %s", c.name, got, want, c.check)
		}
	}
}

// TestLoggedDataIsCanonical: the data disputes logs is canonical JSON by
// construction (pb.EncodeLogEntry's contract).
func TestLoggedDataIsCanonical(t *testing.T) {
	for _, v := range []any{disputeData{}, compensationData{}} {
		if err := pb.CanonicalByConstruction(reflect.TypeOf(v)); err != nil {
			t.Error(err)
		}
	}
}
