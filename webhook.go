package paybound

import (
	"encoding/json"
	"time"
)

// Webhooks tell a party what happened to what it is party to, as Standard
// Webhooks 1.0 deliveries (internal/webhooks): an event is written to an
// outbox in the same ledger batch as the change it reports, then delivered
// at least once to every enabled endpoint of every party subscribed to its
// type, retried with backoff for more than a day.

// ID prefixes of webhook resources.
const (
	PrefixWebhookEndpoint = "we_"
	PrefixEvent           = "evt_"
	PrefixWebhookDelivery = "whd_"
)

// Event types. Subscribable ones are in WebhookEventTypes.
const (
	EventPaymentRequiresConfirmation = "payment.requires_confirmation"
	EventPaymentAuthorized           = "payment.authorized"
	EventPaymentCaptured             = "payment.captured"
	EventPaymentCanceled             = "payment.canceled"
	EventPaymentExpired              = "payment.expired"
	EventPaymentDeclined             = "payment.declined"
	EventRefundSucceeded             = "refund.succeeded"
	EventDisputeCreated              = "dispute.created"
	EventDisputeResolved             = "dispute.resolved"
	EventMandateRevoked              = "mandate.revoked"
	EventCheckoutSessionCompleted    = "checkout_session.completed"
	// EventCheckoutOrderUpdated: a completed session's order changed (a
	// refund of its payment); ACP endpoints receive it as order_update.
	EventCheckoutOrderUpdated = "checkout_session.order_updated"
	// EventWebhookEndpointDisabled is recorded when an endpoint is disabled
	// after failing for WebhookDisableAfter; its owner's other endpoints
	// subscribed to it receive it.
	EventWebhookEndpointDisabled = "webhook_endpoint.disabled"
	// EventWebhookTest is sent to one endpoint on request, subscribed or
	// not (POST /v1/webhook_endpoints/{id}/test).
	EventWebhookTest = "webhook_endpoint.test"
)

// WebhookEventTypes are the types an endpoint may subscribe to, besides
// "*" (all of them).
var WebhookEventTypes = []string{
	EventPaymentRequiresConfirmation, EventPaymentAuthorized, EventPaymentCaptured, EventPaymentCanceled,
	EventPaymentExpired, EventPaymentDeclined, EventRefundSucceeded, EventDisputeCreated, EventDisputeResolved,
	EventMandateRevoked, EventCheckoutSessionCompleted, EventCheckoutOrderUpdated, EventWebhookEndpointDisabled,
}

// Endpoint formats: what an endpoint receives and how it is signed.
const (
	// WebhookFormatStandard receives {id, type, created_at, data:{object}}
	// signed with Standard Webhooks' webhook-id, webhook-timestamp and
	// webhook-signature headers.
	WebhookFormatStandard = "standard"
	// WebhookFormatACP (an agent platform's endpoint) receives only events
	// that carry an ACP order event (Notice.ACP), that JSON as the body,
	// signed with ACP's Merchant-Signature header.
	WebhookFormatACP = "acp"
)

// Endpoint statuses.
const (
	WebhookEnabled  = "enabled"
	WebhookDisabled = "disabled"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt, or being attempted
	DeliverySucceeded = "succeeded" // the endpoint answered 2xx
	DeliveryFailed    = "failed"    // every retry failed; POST …/redeliver tries again
	DeliveryCanceled  = "canceled"  // its endpoint was deleted
)

// Limits of webhook inputs and state.
const (
	MaxWebhookEndpoints    = 16   // per owner
	MaxWebhookURL          = 2048 // bytes
	MaxWebhookDescription  = 500  // bytes
	MaxWebhookEventsListed = 32   // entries of an endpoint's events
	// WebhookSecretOverlap is how long a rotated-out secret still signs
	// deliveries, beside the new one.
	WebhookSecretOverlap = 24 * time.Hour
	// WebhookDisableAfter is how long an endpoint fails every attempt
	// before it is disabled.
	WebhookDisableAfter = 72 * time.Hour
)

// WebhookEndpoint is where a principal (a user, a merchant or an agent)
// receives the events it is party to.
type WebhookEndpoint struct {
	ID          string   `json:"id"`
	Object      string   `json:"object"` // "webhook_endpoint"
	OwnerID     string   `json:"owner_id"`
	OwnerRole   Role     `json:"owner_role"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Format      string   `json:"format"`
	Description string   `json:"description"`
	Status      string   `json:"status"`
	// DisabledReason says why the server disabled it ("failing"), or
	// "owner" when its owner did.
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Secret is shown once: in the answer that created or rotated it.
	Secret string `json:"secret,omitempty"`
	// SecretSealed and PreviousSealed are the secrets as stored, sealed
	// with the operator key; PreviousExpiresAt ends the rotated-out one.
	SecretSealed      []byte     `json:"-"`
	PreviousSealed    []byte     `json:"-"`
	PreviousExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	// FailingSince is when the endpoint's current run of failed attempts
	// began (nil: its last attempt succeeded). The delivery worker keeps
	// it, not the batch.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	Deleted      bool       `json:"deleted,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// Subscribed reports whether e receives events of type typ: an enabled,
// undeleted endpoint listing it or "*". Test events reach it regardless.
func (e *WebhookEndpoint) Subscribed(typ string) bool {
	if e.Deleted || e.Status != WebhookEnabled {
		return false
	}
	for _, t := range e.Events {
		if t == typ || t == "*" {
			return true
		}
	}
	return false
}

// Kinds of object a webhook event carries, which the store's commit
// snapshots from the batch (Batch.SnapshotWebhookObjects).
const (
	ObjectPayment = "payment"
	ObjectRefund  = "refund"
	ObjectDispute = "dispute"
	ObjectMandate = "mandate"
)

// WebhookEvent is an event in the outbox: written in the batch of the
// change it reports, then fanned out into one WebhookDelivery per
// subscribed endpoint of its parties.
type WebhookEvent struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	// Parties are the principals who may receive it.
	Parties []string `json:"parties"`
	// EndpointID, when set, limits it to that one endpoint (test events).
	EndpointID string `json:"endpoint_id,omitempty"`
	// ObjectKind and ObjectID name the object; Object is its snapshot as of
	// the batch that wrote the event (the whole domain value as JSON, which
	// delivery renders for each recipient).
	ObjectKind string          `json:"object_kind,omitempty"`
	ObjectID   string          `json:"object_id,omitempty"`
	Object     json.RawMessage `json:"object,omitempty"`
	// ACP is the event as ACP's order webhook says it, for ACP endpoints.
	ACP json.RawMessage `json:"acp,omitempty"`
}

// WebhookEventBody is the body of a standard delivery: the event as its
// recipient may see it.
type WebhookEventBody struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      struct {
		// Object is the payment, refund, dispute, mandate, checkout
		// session or endpoint as it was when the event happened.
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// WebhookDelivery is one event on its way to one endpoint.
type WebhookDelivery struct {
	ID         string `json:"id"`
	Object     string `json:"object"` // "webhook_delivery"
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	EndpointID string `json:"endpoint_id"`
	OwnerID    string `json:"-"`
	Status     string `json:"status"`
	// Attempts is how many attempts were made; NextAttemptAt is the next
	// one's time while pending.
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastDurationMS int64      `json:"last_duration_ms,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	// ClaimedUntil, when a delivery is written, has it written claimed
	// by its writer until then (fan-out hands it to its own worker).
	ClaimedUntil *time.Time `json:"-"`
	// AttemptLog is every attempt, oldest first (GET of one delivery).
	AttemptLog []WebhookAttempt `json:"attempt_log,omitempty"`
}

// WebhookAttempt is one HTTP attempt of a delivery and what it decided.
type WebhookAttempt struct {
	DeliveryID string `json:"-"`
	EndpointID string `json:"-"`
	Attempt    int    `json:"attempt"`
	// At is when the attempt began; StatusCode is 0 when no answer came.
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	// Status is the delivery's status after it; NextAttemptAt its next
	// attempt when still pending.
	Status        string     `json:"-"`
	NextAttemptAt *time.Time `json:"-"`
}

// MaxWebhookError bounds a stored attempt's error message.
const MaxWebhookError = 500
