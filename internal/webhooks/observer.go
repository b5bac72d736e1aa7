package webhooks

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// Registry is the endpoints in memory: who has endpoints, subscribed to
// what. The observer asks it, on the ledger writer, whether anyone would
// receive an event at all, so that payments of parties with no endpoint
// write nothing more; the delivery worker reads the endpoints from it.
//
// It is changed in-process as endpoints are (Put) and read again from the
// store every second (Reload, run by the Service's loop), for what other
// processes sharing a PostgreSQL store changed: an endpoint another
// process created receives events logged here up to a second later.
// Safe for concurrent use; readers take no lock.
type Registry struct {
	st    Store
	limit int
	mu    sync.Mutex // serializes writers
	snap  atomic.Pointer[registrySnap]
}

// registrySnap is one immutable state of the registry.
type registrySnap struct {
	byID    map[string]*pb.WebhookEndpoint
	byOwner map[string][]*pb.WebhookEndpoint
}

// MaxRegistry bounds the endpoints the registry holds (of all owners).
const MaxRegistry = 100_000

// NewRegistry loads every undeleted endpoint of st.
func NewRegistry(ctx context.Context, st Store) (*Registry, error) {
	r := &Registry{st: st, limit: MaxRegistry}
	r.snap.Store(&registrySnap{byID: map[string]*pb.WebhookEndpoint{}, byOwner: map[string][]*pb.WebhookEndpoint{}})
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the endpoints again from the store.
func (r *Registry) Reload(ctx context.Context) error {
	eps, err := r.st.ActiveWebhookEndpoints(ctx, r.limit)
	if err != nil {
		return err
	}
	s := &registrySnap{byID: make(map[string]*pb.WebhookEndpoint, len(eps)), byOwner: map[string][]*pb.WebhookEndpoint{}}
	for i := range eps {
		e := &eps[i]
		s.byID[e.ID] = e
		s.byOwner[e.OwnerID] = append(s.byOwner[e.OwnerID], e)
	}
	r.mu.Lock()
	r.snap.Store(s)
	r.mu.Unlock()
	return nil
}

// Put records e as it now is (deleted: gone).
func (r *Registry) Put(e pb.WebhookEndpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load()
	s := &registrySnap{byID: make(map[string]*pb.WebhookEndpoint, len(old.byID)+1), byOwner: make(map[string][]*pb.WebhookEndpoint, len(old.byOwner)+1)}
	for k, v := range old.byID {
		s.byID[k] = v
	}
	for k, v := range old.byOwner {
		s.byOwner[k] = v
	}
	e.Secret = ""
	own := slices.DeleteFunc(slices.Clone(s.byOwner[e.OwnerID]), func(x *pb.WebhookEndpoint) bool { return x.ID == e.ID })
	if e.Deleted {
		delete(s.byID, e.ID)
	} else {
		if prev := old.byID[e.ID]; prev != nil && e.FailingSince == nil {
			e.FailingSince = prev.FailingSince // the worker's, not the batch's
		}
		s.byID[e.ID] = &e
		own = append(own, &e)
	}
	if len(own) == 0 {
		delete(s.byOwner, e.OwnerID)
	} else {
		s.byOwner[e.OwnerID] = own
	}
	r.snap.Store(s)
}

// Empty reports whether no endpoint exists (as last loaded): then no event
// is written, and the worker has nothing to look for.
func (r *Registry) Empty() bool { return len(r.snap.Load().byID) == 0 }

// Endpoint returns endpoint id as last loaded, or nil.
func (r *Registry) Endpoint(id string) *pb.WebhookEndpoint { return r.snap.Load().byID[id] }

// Endpoints returns owner's endpoints as last loaded.
func (r *Registry) Endpoints(owner string) []*pb.WebhookEndpoint { return r.snap.Load().byOwner[owner] }

// Receives reports whether any endpoint of the parties would receive an
// event of type typ (with an ACP form or not).
func (r *Registry) Receives(parties []string, typ string, acp bool) bool {
	s := r.snap.Load()
	if len(s.byOwner) == 0 {
		return false
	}
	for _, p := range parties {
		for _, e := range s.byOwner[p] {
			if receives(e, typ, acp) {
				return true
			}
		}
	}
	return false
}

// receives reports whether endpoint e receives an event of type typ: it
// is subscribed, and an ACP endpoint only to events with an ACP form.
func receives(e *pb.WebhookEndpoint, typ string, acp bool) bool {
	return e.Subscribed(typ) && (e.Format != pb.WebhookFormatACP || acp)
}

// eventOf is the webhook event type of each log entry type that has one.
var eventOf = map[string]string{
	pb.LogConfirmationAsked: pb.EventPaymentRequiresConfirmation,
	pb.LogPaymentAuthorized: pb.EventPaymentAuthorized,
	pb.LogPaymentCaptured:   pb.EventPaymentCaptured,
	pb.LogPaymentCanceled:   pb.EventPaymentCanceled,
	pb.LogPaymentExpired:    pb.EventPaymentExpired,
	pb.LogPaymentDeclined:   pb.EventPaymentDeclined,
	pb.LogPaymentRefunded:   pb.EventRefundSucceeded,
	pb.LogDisputeOpened:     pb.EventDisputeCreated,
	pb.LogDisputeResolved:   pb.EventDisputeResolved,
	pb.LogMandateRevoked:    pb.EventMandateRevoked,
	// Logged by checkout with a Notice.
	pb.LogCheckoutCompleted:    pb.EventCheckoutSessionCompleted,
	pb.LogCheckoutOrderUpdated: pb.EventCheckoutOrderUpdated,
}

// eventsPart picks the outbox's list of a batch.
func eventsPart(b *pb.Batch) *[]pb.WebhookEvent { return &b.WebhookEvents }

// endpointsPart picks the endpoints' list of a batch.
func endpointsPart(b *pb.Batch) *[]pb.WebhookEndpoint { return &b.WebhookEndpoints }

// Observer returns the ledger observer (ledger.Config.Observers) that
// writes an event into the outbox, in the batch of the entry it reports,
// whenever a party to it has an endpoint that would receive it. It never
// fails an operation: an entry it cannot map (or a panic while mapping
// it, logged) writes no event. It runs on the writer's hot path: with no
// endpoint registered it returns at once, and otherwise reads only the
// Tx's caches, what the batch wrote, and the entry.
func (r *Registry) Observer(log *slog.Logger) ledger.Observer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(tx *ledger.Tx, ev pb.LogEvent) (err error) {
		typ, ok := eventOf[ev.Type]
		if !ok || len(r.snap.Load().byOwner) == 0 {
			return nil
		}
		defer func() {
			if p := recover(); p != nil {
				log.Error("webhooks: couldn't map a log entry to an event; no event written", "type", ev.Type, "subject", ev.Subject, "panic", p)
				err = nil
			}
		}()
		e, ok := r.eventFor(tx, typ, ev)
		if !ok {
			return nil
		}
		ledger.Add(tx, eventsPart, e)
		return nil
	}
}

// eventFor maps entry ev to an event of type typ, or reports that no
// endpoint would receive it (or that it cannot be mapped).
func (r *Registry) eventFor(tx *ledger.Tx, typ string, ev pb.LogEvent) (pb.WebhookEvent, bool) {
	e := pb.WebhookEvent{ID: pb.NewID(pb.PrefixEvent, tx.Now()), Type: typ, CreatedAt: tx.Now()}
	if n := ev.Notice; n != nil {
		e.Parties = n.Parties
		if !r.Receives(e.Parties, typ, n.ACP != nil) {
			return e, false
		}
		var err error
		if e.Object, err = json.Marshal(n.Object); err != nil {
			return e, false
		}
		if n.ACP != nil {
			if e.ACP, err = json.Marshal(n.ACP); err != nil {
				return e, false
			}
		}
		return e, true
	}
	switch typ {
	case pb.EventMandateRevoked:
		m, err := tx.Mandate(ev.Subject)
		if err != nil {
			return e, false
		}
		e.Parties, e.ObjectKind, e.ObjectID = []string{m.UserID, m.AgentID}, pb.ObjectMandate, m.ID
	default:
		parties, ok := paymentParties(tx, ev.Subject)
		if !ok {
			return e, false
		}
		e.Parties, e.ObjectKind, e.ObjectID = parties, pb.ObjectPayment, ev.Subject
		switch typ {
		case pb.EventDisputeCreated, pb.EventDisputeResolved:
			e.Parties = parties[:2] // agents do not see disputes
			e.ObjectKind, e.ObjectID = pb.ObjectDispute, dataField(ev.Data, "dispute_id")
		case pb.EventRefundSucceeded:
			e.ObjectKind, e.ObjectID = pb.ObjectRefund, dataField(ev.Data, "refund_id")
		}
		if e.ObjectID == "" {
			return e, false
		}
	}
	return e, r.Receives(e.Parties, typ, false)
}

// paymentParties returns the payer, the merchant and, when there is one,
// the agent of payment id: from the Tx, or, for a payment its operation
// has not put yet, from its payment.created entry in this batch.
func paymentParties(tx *ledger.Tx, id string) ([]string, bool) {
	if p, err := tx.Payment(id); err == nil {
		return partiesOf(p.PayerID, p.MerchantID, string(p.AgentID)), true
	}
	recs := ledger.Added(tx, func(b *pb.Batch) *[]pb.LogRecord { return &b.Log })
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Subject != id {
			continue
		}
		var entry struct {
			Type string `json:"type"`
			Data struct {
				AgentID    string `json:"agent_id"`
				MerchantID string `json:"merchant_id"`
				PayerID    string `json:"payer_id"`
			} `json:"data"`
		}
		if json.Unmarshal(recs[i].Body, &entry) == nil && entry.Type == pb.LogPaymentCreated && entry.Data.PayerID != "" {
			return partiesOf(entry.Data.PayerID, entry.Data.MerchantID, entry.Data.AgentID), true
		}
	}
	return nil, false
}

func partiesOf(payer, merchant, agent string) []string {
	if agent == "" {
		return []string{payer, merchant}
	}
	return []string{payer, merchant, agent}
}

// dataField reads a string field of an entry's data (the core's and the
// disputes' entry types are theirs; their JSON is the public record).
func dataField(data any, name string) string {
	raw, err := json.Marshal(data)
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	s, _ := m[name].(string)
	return s
}
