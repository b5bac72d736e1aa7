package paybound

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// WebhookStore is the storage of webhook endpoints, the event outbox and
// deliveries (internal/webhooks). Endpoints and events are written in
// batches (WebhookPart); delivery state is written directly by the
// delivery worker, outside the ledger writer, because it moves no money
// and changes at the pace of outbound HTTP.
type WebhookStore interface {
	// WebhookEndpoint returns endpoint id, deleted or not.
	WebhookEndpoint(ctx context.Context, id string) (*WebhookEndpoint, error)
	// ListWebhookEndpoints lists owner's undeleted endpoints, newest first.
	ListWebhookEndpoints(ctx context.Context, ownerID, startingAfter string, limit int) (_ []WebhookEndpoint, hasMore bool, _ error)
	// ActiveWebhookEndpoints returns every undeleted endpoint, enabled or
	// not, up to limit, for the delivery worker's registry.
	ActiveWebhookEndpoints(ctx context.Context, limit int) ([]WebhookEndpoint, error)

	// PendingWebhookEvents returns up to limit events not yet fanned out,
	// oldest first.
	PendingWebhookEvents(ctx context.Context, limit int) ([]WebhookEvent, error)
	// DispatchWebhookEvents, in one transaction, marks those of events not
	// yet fanned out as fanned out, and inserts the deliveries of those
	// (one that exists for its event and endpoint is left as it is). It
	// returns the events it marked: of two processes fanning out one
	// event at once, one writes its deliveries and the other nothing.
	DispatchWebhookEvents(ctx context.Context, events []string, deliveries []WebhookDelivery) (dispatched []string, _ error)
	// WebhookEvents returns the events with ids (those that exist).
	WebhookEvents(ctx context.Context, ids []string) ([]WebhookEvent, error)

	// DueWebhookEndpoints returns up to limit endpoints with a pending
	// delivery due at now and not claimed.
	DueWebhookEndpoints(ctx context.Context, now time.Time, limit int) ([]string, error)
	// ClaimWebhookDeliveries claims, in one transaction, up to each claim's
	// Limit of its endpoint's pending deliveries due at now and not
	// claimed, until until: no other caller (another process included)
	// claims them before then. Attempts is the count made so far.
	ClaimWebhookDeliveries(ctx context.Context, claims []WebhookClaim, now, until time.Time) ([]WebhookDelivery, error)
	// RecordWebhookAttempts, in one transaction, records attempts, moves
	// their deliveries to the attempt's Status and NextAttemptAt (releasing
	// the claim), and keeps each endpoint's FailingSince: cleared by a 2xx,
	// set by a failure when unset.
	RecordWebhookAttempts(ctx context.Context, attempts []WebhookAttempt) error
	// WebhookDelivery returns delivery id with its attempt log.
	WebhookDelivery(ctx context.Context, id string) (*WebhookDelivery, error)
	// ListWebhookDeliveries lists endpoint's deliveries, newest first.
	ListWebhookDeliveries(ctx context.Context, endpointID, startingAfter string, limit int) (_ []WebhookDelivery, hasMore bool, _ error)
	// RedeliverWebhook makes delivery id pending and due at now, unless it
	// is claimed at now (being attempted): then it returns ErrStoreConflict.
	RedeliverWebhook(ctx context.Context, id string, now time.Time) error
	// CancelWebhookDeliveries cancels endpoint's pending deliveries (it was
	// deleted).
	CancelWebhookDeliveries(ctx context.Context, endpointID string) error
	// PruneWebhooks deletes up to limit deliveries made before before that
	// are no longer pending, with their attempts, and up to limit events
	// from before then that were fanned out and have no delivery left. It
	// returns how many deliveries and events it deleted.
	PruneWebhooks(ctx context.Context, before time.Time, limit int) (int, error)
}

// WebhookClaim asks for up to Limit due deliveries of an endpoint.
type WebhookClaim struct {
	EndpointID string
	Limit      int
}

// WebhookPart is the webhooks' share of a Batch (internal/webhooks): a
// store upserts endpoints whole but for FailingSince, which the delivery
// worker keeps, and inserts events into the outbox after
// SnapshotWebhookObjects.
type WebhookPart struct {
	WebhookEndpoints []WebhookEndpoint
	WebhookEvents    []WebhookEvent
}

// Empty reports whether p writes nothing.
func (p *WebhookPart) Empty() bool { return len(p.WebhookEndpoints) == 0 && len(p.WebhookEvents) == 0 }

// SnapshotWebhookObjects fills the Object of each of b's events that names
// an object kind and has none: the object as this batch leaves it. An
// event is observed as its log entry is written, before the operation
// puts the payment, refund, dispute or mandate the entry is about; the
// batch's final rows are that object after the operation. A store calls it
// in Commit before writing the events. An object the batch does not hold
// is left nil (delivery then names it without its fields). Two events of
// one object in one batch show it as the batch leaves it, but for a
// payment authorized and captured at once, whose payment.authorized shows
// it authorized.
func (b *Batch) SnapshotWebhookObjects() error {
	for i := range b.WebhookEvents {
		ev := &b.WebhookEvents[i]
		if ev.Object != nil || ev.ObjectKind == "" {
			continue
		}
		var v any
		switch ev.ObjectKind {
		case ObjectPayment:
			v = lastOf(b.Payments, func(p *Payment) bool { return p.ID == ev.ObjectID })
			if p, ok := v.(*Payment); ok && ev.Type == EventPaymentAuthorized && p.Status == StatusCaptured && p.AmountRefunded == 0 {
				// Authorized and captured in one operation: the authorization
				// is shown as it was before the capture.
				c := *p
				c.Status, c.AmountCaptured, c.FeeAmount = StatusAuthorized, 0, 0
				v = &c
			}
		case ObjectRefund:
			v = lastOf(b.Refunds, func(r *Refund) bool { return r.ID == ev.ObjectID })
		case ObjectDispute:
			v = lastOf(b.Disputes, func(d *Dispute) bool { return d.ID == ev.ObjectID })
		case ObjectMandate:
			v = lastOf(b.Mandates, func(m *Mandate) bool { return m.ID == ev.ObjectID })
		}
		if v == nil {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("couldn't snapshot the %s of event %s: %w", ev.ObjectKind, ev.ID, err)
		}
		ev.Object = raw
	}
	return nil
}

// lastOf returns a pointer to the last element of xs that match accepts,
// as an any that is nil when none does.
func lastOf[T any](xs []T, match func(*T) bool) any {
	for i := len(xs) - 1; i >= 0; i-- {
		if match(&xs[i]) {
			return &xs[i]
		}
	}
	return nil
}
