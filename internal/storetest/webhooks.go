package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func endpoint(id, owner string, created time.Time) pb.WebhookEndpoint {
	return pb.WebhookEndpoint{ID: id, Object: "webhook_endpoint", OwnerID: owner, OwnerRole: pb.RoleMerchant,
		URL: "https://example.com/" + id, Events: []string{pb.EventPaymentCaptured, "*"}, Format: pb.WebhookFormatStandard,
		Description: "orders", Status: pb.WebhookEnabled, SecretSealed: []byte("sealed\x00" + id),
		CreatedAt: sec(created), UpdatedAt: sec(created)}
}

// Endpoints are written by batches, upserted whole; the deleted ones are
// neither listed nor active; failing_since, kept by the worker, survives
// an upsert.
func testWebhookEndpoints(t *testing.T, s pb.Store) {
	ctx := t.Context()
	a, b, c := endpoint("we_1", "mch_a", t0), endpoint("we_2", "mch_a", t0.Add(time.Second)), endpoint("we_3", "mch_b", t0)
	until := sec(t0.Add(24 * time.Hour))
	b.PreviousSealed, b.PreviousExpiresAt = []byte("old"), &until
	commit(t, s, &pb.Batch{WebhookPart: pb.WebhookPart{WebhookEndpoints: []pb.WebhookEndpoint{a, b, c}}})
	got, err := s.WebhookEndpoint(ctx, "we_2")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "WebhookEndpoint", *got, b)
	_, err = s.WebhookEndpoint(ctx, "we_none")
	wantNotFound(t, "a missing endpoint", err)

	// A failure recorded by the worker, then an update through a batch.
	if err := s.RecordWebhookAttempts(ctx, []pb.WebhookAttempt{{DeliveryID: "whd_x", EndpointID: "we_1", Attempt: 1,
		At: t0, StatusCode: 500, Error: "HTTP 500", Status: pb.DeliveryFailed}}); err != nil {
		t.Fatal(err)
	}
	a.Events, a.Status, a.DisabledReason, a.UpdatedAt = []string{pb.EventRefundSucceeded}, pb.WebhookDisabled, "owner", sec(t0.Add(time.Hour))
	commit(t, s, &pb.Batch{WebhookPart: pb.WebhookPart{WebhookEndpoints: []pb.WebhookEndpoint{a}}})
	got, _ = s.WebhookEndpoint(ctx, "we_1")
	if got.FailingSince == nil || !got.FailingSince.Equal(milli(t0)) {
		t.Fatalf("failing_since after an upsert: %v, want %v", got.FailingSince, milli(t0))
	}
	got.FailingSince = nil
	check(t, "WebhookEndpoint after an update", *got, a)

	c.Deleted, c.Status = true, pb.WebhookDisabled
	commit(t, s, &pb.Batch{WebhookPart: pb.WebhookPart{WebhookEndpoints: []pb.WebhookEndpoint{c}}})
	l, more, err := s.ListWebhookEndpoints(ctx, "mch_a", "", 1)
	if err != nil || len(l) != 1 || l[0].ID != "we_2" || !more {
		t.Fatalf("ListWebhookEndpoints(mch_a, limit 1) = %v, %v, %v", hookIDs(l), more, err)
	}
	l, more, _ = s.ListWebhookEndpoints(ctx, "mch_a", "we_2", 10)
	if len(l) != 1 || l[0].ID != "we_1" || more {
		t.Fatalf("the next page = %v, %v", hookIDs(l), more)
	}
	if l, _, _ = s.ListWebhookEndpoints(ctx, "mch_b", "", 10); len(l) != 0 {
		t.Fatalf("a deleted endpoint is listed: %v", hookIDs(l))
	}
	act, err := s.ActiveWebhookEndpoints(ctx, 10)
	if err != nil || fmt.Sprint(hookIDs(act)) != "[we_1 we_2]" {
		t.Fatalf("ActiveWebhookEndpoints = %v, %v", hookIDs(act), err)
	}
	if got, _ := s.WebhookEndpoint(ctx, "we_3"); got == nil || !got.Deleted {
		t.Fatalf("a deleted endpoint reads back as %+v", got)
	}
}

func hookIDs[T any](xs []T) []string {
	out := []string{}
	for _, x := range xs {
		switch v := any(x).(type) {
		case pb.WebhookEndpoint:
			out = append(out, v.ID)
		case pb.WebhookDelivery:
			out = append(out, v.ID)
		case pb.WebhookEvent:
			out = append(out, v.ID)
		}
	}
	return out
}

// Events are committed with the batch, their objects snapshot from the
// batch's rows; fan-out twice is harmless; a fanned-out event is no
// longer pending.
func testWebhookOutbox(t *testing.T, s pb.Store) {
	ctx := t.Context()
	p := payment("pay_w1", "usr_a", "mch_a", "", t0)
	p.Status = pb.StatusAuthorized
	ev := pb.WebhookEvent{ID: "evt_1", Type: pb.EventPaymentAuthorized, CreatedAt: milli(t0), Parties: []string{"usr_a", "mch_a"},
		ObjectKind: pb.ObjectPayment, ObjectID: "pay_w1"}
	notice := pb.WebhookEvent{ID: "evt_2", Type: pb.EventCheckoutSessionCompleted, CreatedAt: milli(t0), Parties: []string{"mch_a"},
		Object: json.RawMessage(`{"id":"cs_1"}`), ACP: json.RawMessage(`{"type":"order_create"}`)}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p}},
		WebhookPart: pb.WebhookPart{WebhookEvents: []pb.WebhookEvent{ev, notice}}})
	pend, err := s.PendingWebhookEvents(ctx, 10)
	if err != nil || fmt.Sprint(hookIDs(pend)) != "[evt_1 evt_2]" {
		t.Fatalf("PendingWebhookEvents = %v, %v", hookIDs(pend), err)
	}
	var obj pb.Payment
	if err := json.Unmarshal(pend[0].Object, &obj); err != nil || obj.ID != "pay_w1" || obj.Status != pb.StatusAuthorized {
		t.Fatalf("the snapshot of the payment: %s (%v)", pend[0].Object, err)
	}
	if string(pend[1].ACP) != `{"type":"order_create"}` || string(pend[1].Object) != `{"id":"cs_1"}` || fmt.Sprint(pend[1].Parties) != "[mch_a]" {
		t.Fatalf("a notice's event: %+v", pend[1])
	}
	now := milli(t0)
	d := pb.WebhookDelivery{ID: "whd_1", EventID: "evt_1", EventType: ev.Type, EndpointID: "we_1", OwnerID: "mch_a",
		Status: pb.DeliveryPending, NextAttemptAt: &now, CreatedAt: now}
	for i := range 2 {
		again := d
		again.ID = "whd_1" + fmt.Sprint(i)
		marked, err := s.DispatchWebhookEvents(ctx, []string{"evt_1"}, []pb.WebhookDelivery{d, again})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"evt_1"}; i == 1 {
			want = nil
		} else if fmt.Sprint(marked) != fmt.Sprint(want) {
			t.Fatalf("fan-out #%d marked %v, want %v", i+1, marked, want)
		}
		if i == 1 && len(marked) != 0 {
			t.Fatalf("a second fan-out marked %v again", marked)
		}
	}
	if pend, _ = s.PendingWebhookEvents(ctx, 10); fmt.Sprint(hookIDs(pend)) != "[evt_2]" {
		t.Fatalf("pending after a fan-out: %v", hookIDs(pend))
	}
	l, _, err := s.ListWebhookDeliveries(ctx, "we_1", "", 10)
	if err != nil || len(l) != 1 {
		t.Fatalf("one event fanned out twice to one endpoint: %d deliveries (%v)", len(l), err)
	}
	evs, err := s.WebhookEvents(ctx, []string{"evt_2", "evt_none", "evt_1"})
	if err != nil || len(evs) != 2 {
		t.Fatalf("WebhookEvents = %v, %v", hookIDs(evs), err)
	}
	// Processes fanning one event out at once: one of them does.
	commit(t, s, &pb.Batch{WebhookPart: pb.WebhookPart{WebhookEvents: []pb.WebhookEvent{{ID: "evt_r", Type: ev.Type,
		CreatedAt: now, Parties: []string{"mch_a"}}}}})
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r := d
			r.ID, r.EventID, r.EndpointID = fmt.Sprintf("whd_r%d", i), "evt_r", "we_9"
			marked, err := s.DispatchWebhookEvents(ctx, []string{"evt_r"}, []pb.WebhookDelivery{r})
			if err != nil {
				t.Error(err)
			}
			won.Add(int32(len(marked)))
		})
	}
	wg.Wait()
	if l, _, _ := s.ListWebhookDeliveries(ctx, "we_9", "", 10); won.Load() != 1 || len(l) != 1 {
		t.Fatalf("4 racing fan-outs of one event: %d marked it, %d deliveries; want 1 and 1", won.Load(), len(l))
	}
}

// Claims: a claimed delivery is not claimed again before its lease ends,
// and of claims racing, each delivery goes to one; recorded attempts
// release it, and redelivery refuses a claimed one.
func testWebhookClaims(t *testing.T, s pb.Store) {
	ctx := t.Context()
	now := milli(t0)
	var ds []pb.WebhookDelivery
	for i := range 40 {
		ds = append(ds, pb.WebhookDelivery{ID: fmt.Sprintf("whd_%03d", i), EventID: fmt.Sprintf("evt_%03d", i), EventType: pb.EventPaymentCaptured,
			EndpointID: "we_1", OwnerID: "mch_a", Status: pb.DeliveryPending, NextAttemptAt: &now, CreatedAt: now})
	}
	later := now.Add(time.Hour)
	ds = append(ds, pb.WebhookDelivery{ID: "whd_later", EventID: "evt_later", EventType: pb.EventPaymentCaptured,
		EndpointID: "we_2", OwnerID: "mch_a", Status: pb.DeliveryPending, NextAttemptAt: &later, CreatedAt: now})
	var evs []pb.WebhookEvent
	var evIDs []string
	for _, d := range ds {
		evs = append(evs, pb.WebhookEvent{ID: d.EventID, Type: d.EventType, CreatedAt: now, Parties: []string{"mch_a"}})
		evIDs = append(evIDs, d.EventID)
	}
	commit(t, s, &pb.Batch{WebhookPart: pb.WebhookPart{WebhookEvents: evs}})
	if marked, err := s.DispatchWebhookEvents(ctx, evIDs, ds); err != nil || len(marked) != len(evIDs) {
		t.Fatalf("DispatchWebhookEvents marked %d of %d events: %v", len(marked), len(evIDs), err)
	}
	due, err := s.DueWebhookEndpoints(ctx, now, 10)
	if err != nil || fmt.Sprint(due) != "[we_1]" {
		t.Fatalf("DueWebhookEndpoints = %v, %v (we_2's is due in an hour)", due, err)
	}
	lease := now.Add(30 * time.Second)
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				got, err := s.ClaimWebhookDeliveries(ctx, []pb.WebhookClaim{{EndpointID: "we_1", Limit: 3}}, now, lease)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					claimed[d.ID]++
					if d.Attempts != 0 || d.EventID == "" {
						t.Errorf("a claimed delivery: %+v", d)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	if len(claimed) != 40 {
		t.Fatalf("%d of 40 deliveries claimed", len(claimed))
	}
	if due, _ := s.DueWebhookEndpoints(ctx, now, 10); len(due) != 0 {
		t.Fatalf("claimed deliveries are due: %v", due)
	}
	if err := s.RedeliverWebhook(ctx, "whd_000", now); !errors.Is(err, pb.ErrStoreConflict) {
		t.Fatalf("redelivering a claimed delivery: %v, want ErrStoreConflict", err)
	}
	// Recorded: one succeeded, one to retry in a minute, one failed.
	retry := now.Add(time.Minute)
	err = s.RecordWebhookAttempts(ctx, []pb.WebhookAttempt{
		{DeliveryID: "whd_000", EndpointID: "we_1", Attempt: 1, At: now, StatusCode: 200, DurationMS: 12, Status: pb.DeliverySucceeded},
		{DeliveryID: "whd_001", EndpointID: "we_1", Attempt: 1, At: now, StatusCode: 503, Error: "HTTP 503", DurationMS: 7, Status: pb.DeliveryPending, NextAttemptAt: &retry},
		{DeliveryID: "whd_002", EndpointID: "we_1", Attempt: 9, At: now, Error: "connection refused", Status: pb.DeliveryFailed},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.WebhookDelivery(ctx, "whd_000")
	if err != nil || got.Status != pb.DeliverySucceeded || got.Attempts != 1 || got.LastStatusCode != 200 || got.DeliveredAt == nil ||
		len(got.AttemptLog) != 1 || got.AttemptLog[0].DurationMS != 12 || !got.AttemptLog[0].At.Equal(now) {
		t.Fatalf("a delivered delivery: %+v, %v", got, err)
	}
	got, _ = s.WebhookDelivery(ctx, "whd_001")
	if got.Status != pb.DeliveryPending || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(retry) || got.LastError != "HTTP 503" {
		t.Fatalf("a delivery to retry: %+v", got)
	}
	got, _ = s.WebhookDelivery(ctx, "whd_002")
	if got.Status != pb.DeliveryFailed || got.Attempts != 9 || got.NextAttemptAt != nil {
		t.Fatalf("a failed delivery: %+v", got)
	}
	// Nothing is claimable while leases run and the retry is not due.
	if c, _ := s.ClaimWebhookDeliveries(ctx, []pb.WebhookClaim{{EndpointID: "we_1", Limit: 100}}, now.Add(29*time.Second), lease); len(c) != 0 {
		t.Fatalf("claimed under lease or before due: %v", hookIDs(c))
	}
	// Leases end: the deliveries never recorded are claimed again.
	if c, _ := s.ClaimWebhookDeliveries(ctx, []pb.WebhookClaim{{EndpointID: "we_1", Limit: 100}}, lease.Add(time.Second), lease.Add(time.Minute)); len(c) != 37 {
		t.Fatalf("%d deliveries claimed again after their lease, want 37", len(c))
	}
	// The retry, once due (its claim was released when recorded).
	if c, _ := s.ClaimWebhookDeliveries(ctx, []pb.WebhookClaim{{EndpointID: "we_1", Limit: 100}}, retry, retry.Add(time.Minute)); fmt.Sprint(hookIDs(c)) != "[whd_001]" {
		t.Fatalf("claimed when due: %v", hookIDs(c))
	}
	// A failed delivery redelivered is due now.
	if err := s.RedeliverWebhook(ctx, "whd_002", now); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.WebhookDelivery(ctx, "whd_002"); got.Status != pb.DeliveryPending || !got.NextAttemptAt.Equal(now) {
		t.Fatalf("redelivered: %+v", got)
	}
	if err := s.CancelWebhookDeliveries(ctx, "we_2"); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.WebhookDelivery(ctx, "whd_later"); got.Status != pb.DeliveryCanceled {
		t.Fatalf("canceled: %+v", got)
	}
	if err := s.RedeliverWebhook(ctx, "whd_later", later); !errors.Is(err, pb.ErrStoreConflict) {
		t.Fatalf("redelivering a canceled delivery: %v", err)
	}
	// Pruning keeps what is pending, and what ended after the cutoff.
	if _, err := s.PruneWebhooks(ctx, now, 100); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WebhookDelivery(ctx, "whd_000"); err != nil || got.Status != pb.DeliverySucceeded {
		t.Fatalf("pruning before the deliveries were made removed one: %v", err)
	}
	n, err := s.PruneWebhooks(ctx, now.Add(time.Millisecond), 100)
	// whd_000 (succeeded) and whd_later (canceled), and their events, left
	// without deliveries; whd_002 is pending again.
	if err != nil || n != 4 {
		t.Fatalf("PruneWebhooks = %d, %v; want 2 deliveries and 2 events", n, err)
	}
	_, err = s.WebhookDelivery(ctx, "whd_000")
	wantNotFound(t, "a pruned delivery", err)
	if got, err := s.WebhookDelivery(ctx, "whd_001"); err != nil || got.Status != pb.DeliveryPending {
		t.Fatalf("a pending delivery after pruning: %v, %v", got, err)
	}
	if evs, _ := s.WebhookEvents(ctx, []string{"evt_000", "evt_001", "evt_later"}); fmt.Sprint(hookIDs(evs)) != "[evt_001]" {
		t.Fatalf("events after pruning: %v, want only evt_001, whose delivery is pending", hookIDs(evs))
	}
	l, more, err := s.ListWebhookDeliveries(ctx, "we_1", "whd_010", 5)
	if err != nil || fmt.Sprint(hookIDs(l)) != "[whd_009 whd_008 whd_007 whd_006 whd_005]" || !more {
		t.Fatalf("ListWebhookDeliveries after whd_010 = %v, %v, %v", hookIDs(l), more, err)
	}
	_, err = s.WebhookDelivery(ctx, "whd_none")
	wantNotFound(t, "a missing delivery", err)
}
