// Package webhooks is the webhooks capability: endpoints that principals
// register, the outbox of events written by a ledger observer in the same
// batch as the change each reports, and the worker that delivers them as
// Standard Webhooks 1.0 requests (or ACP order events to ACP endpoints),
// at least once, with retries for more than a day.
//
// Delivery order is not promised, not even per endpoint: deliveries run
// concurrently and a failed one is retried later while newer ones go on.
// A receiver orders by the event's created_at and deduplicates by its id
// (the webhook-id header, the same on every attempt and redelivery).
package webhooks

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/whsig"
)

// Core is what webhooks needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// Seal and Open keep the endpoints' secrets encrypted at rest.
	Seal(b []byte) []byte
	Open(b []byte) ([]byte, error)
}

// Store is what webhooks reads and writes outside batches.
type Store interface {
	pb.WebhookStore
}

// Transport sends one delivery: a POST of body with headers to url,
// within ctx. It returns the answer's status, or an error when no answer
// came (the address was refused, the connection failed, ctx ended). The
// command's net/http implementation refuses private addresses, follows no
// redirect and reads at most a few KiB of the answer.
type Transport interface {
	Post(ctx context.Context, url string, headers map[string]string, body []byte) (status int, err error)
}

// Config configures the capability. Zero values take the defaults.
type Config struct {
	// Transport sends deliveries; required for Start.
	Transport Transport
	// SigningKey signs every delivery's v1a signature; its public key is
	// served at GET /v1/webhooks/key. Required.
	SigningKey ed25519.PrivateKey
	// AllowHosts are hosts (names or IP addresses) whose http:// URLs are
	// accepted and whose private or loopback addresses the transport may
	// reach (--webhook-allow-hosts). Others must be https:// and public.
	AllowHosts []string
	Clock      pb.Clock
	Logger     *slog.Logger
	// Concurrency bounds the attempts in flight (default 256);
	// PerEndpoint bounds those of one endpoint (default 32), so that a
	// slow endpoint holds at most that many while the others go on.
	Concurrency, PerEndpoint int
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Schedule is the wait after each failed attempt (default
	// DefaultSchedule); after its last, a delivery has failed.
	Schedule []time.Duration
	// PollInterval is how often the worker looks for new events and due
	// deliveries when idle (default 50ms); ReloadInterval how often the
	// registry is read again (default 1s).
	PollInterval, ReloadInterval time.Duration
	// Retention is how long deliveries that ended (and events all of whose
	// deliveries were pruned) are kept (default 30 days); pending ones are
	// kept however old.
	Retention time.Duration
}

// DefaultSchedule waits 5s, 1m, 5m, 30m, 2h, 5h, 10h and 10h after
// successive failures (each stretched by up to a fifth at random, never
// shortened): nine attempts over 27.6 hours at least.
var DefaultSchedule = []time.Duration{5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// DefaultRetention keeps the delivery log for 30 days.
const DefaultRetention = 30 * 24 * time.Hour

// Service is the webhooks capability. Safe for concurrent use.
type Service struct {
	core  Core
	st    Store
	reg   *Registry
	cfg   Config
	clock pb.Clock
	log   *slog.Logger
	allow map[string]bool

	stop     chan struct{}
	wg       sync.WaitGroup
	flows    *flows
	results  chan pb.WebhookAttempt
	recorded chan struct{}
	eventsMu sync.Mutex
	events   map[string]*cachedEvent
	// hot and lastDue are the delivery loop's own (claimAndStart).
	hot     map[string]bool
	lastDue time.Time
}

// New returns the capability over core, st and the registry whose
// observer the ledger runs.
func New(core Core, st Store, reg *Registry, cfg Config) (*Service, error) {
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("webhooks: Config.SigningKey must be an Ed25519 private key")
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.PerEndpoint <= 0 {
		cfg.PerEndpoint = 32
	}
	cfg.PerEndpoint = min(cfg.PerEndpoint, cfg.Concurrency)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	allow := map[string]bool{}
	for _, h := range cfg.AllowHosts {
		allow[strings.ToLower(h)] = true
	}
	return &Service{core: core, st: st, reg: reg, cfg: cfg, clock: cfg.Clock, log: cfg.Logger, allow: allow,
		stop: make(chan struct{})}, nil
}

func noEndpoint(id string) error {
	return pb.Errorf(pb.ErrNotFound, "id", "no such webhook endpoint: %s", id)
}

// owners are the roles that may own endpoints: the parties to events.
var owners = []pb.Role{pb.RoleUser, pb.RoleMerchant, pb.RoleAgent}

// CreateParams is a new endpoint.
type CreateParams struct {
	URL         string
	Events      []string
	Format      string
	Description string
}

// Create (a user, a merchant or an agent) registers an endpoint for the
// events it is party to, and returns it with its secret, shown this once.
func (s *Service) Create(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in CreateParams) service.Result {
	if err := service.RequireRole(caller, owners...); err != nil {
		return service.Result{Err: err}
	}
	if in.Format == "" {
		in.Format = pb.WebhookFormatStandard
	}
	if in.Format != pb.WebhookFormatStandard && in.Format != pb.WebhookFormatACP {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "format", "format must be standard or acp")}
	}
	events, err := s.checkEndpoint(in.URL, in.Events, in.Description)
	if err != nil {
		return service.Result{Err: err}
	}
	secret := whsig.NewSecret()
	sealed := s.core.Seal([]byte(secret))
	res := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		n, err := s.count(tx, caller.ID)
		if err != nil {
			return nil, err
		}
		if n >= pb.MaxWebhookEndpoints {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "", "you have %d webhook endpoints, the most allowed; delete one first", n)
		}
		now := tx.Now().Truncate(time.Second)
		e := pb.WebhookEndpoint{ID: pb.NewID(pb.PrefixWebhookEndpoint, tx.Now()), Object: "webhook_endpoint", OwnerID: caller.ID,
			OwnerRole: caller.Role, URL: in.URL, Events: events, Format: in.Format, Description: in.Description,
			Status: pb.WebhookEnabled, SecretSealed: sealed, CreatedAt: now, UpdatedAt: now}
		ledger.Add(tx, endpointsPart, e)
		e.Secret = secret
		return &e, nil
	})
	if e, ok := res.Value.(*pb.WebhookEndpoint); ok && res.Err == nil && !res.Replayed {
		s.reg.Put(*e)
	}
	return res
}

// count is how many undeleted endpoints owner has, this batch's included.
func (s *Service) count(tx *ledger.Tx, owner string) (int, error) {
	eps, _, err := s.st.ListWebhookEndpoints(tx.Context(), owner, "", pb.MaxWebhookEndpoints+1)
	if err != nil {
		return 0, err
	}
	ids := map[string]bool{}
	for _, e := range eps {
		ids[e.ID] = true
	}
	for _, e := range ledger.Added(tx, endpointsPart) {
		if e.OwnerID == owner {
			ids[e.ID] = !e.Deleted
		}
	}
	n := 0
	for _, live := range ids {
		if live {
			n++
		}
	}
	return n, nil
}

// checkEndpoint checks an endpoint's URL, events and description, and
// returns the events deduplicated in their order.
func (s *Service) checkEndpoint(rawURL string, events []string, description string) ([]string, error) {
	if err := s.checkURL(rawURL); err != nil {
		return nil, err
	}
	evs, err := checkEvents(events)
	if err != nil {
		return nil, err
	}
	if len(description) > pb.MaxWebhookDescription || !utf8.ValidString(description) {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "description", "description must be valid UTF-8 of at most %d bytes", pb.MaxWebhookDescription)
	}
	return evs, nil
}

// checkURL accepts an absolute https:// URL without credentials or
// fragment, or http:// to an allowed host; a literal private, loopback,
// link-local or unspecified address must be allowed too. (Names are
// resolved, and their addresses checked, when a delivery is sent.)
func (s *Service) checkURL(raw string) error {
	if raw == "" {
		return pb.Errorf(pb.ErrParameterMissing, "url", "url is required: the https:// URL that receives the events")
	}
	if len(raw) > pb.MaxWebhookURL || !utf8.ValidString(raw) {
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url must be at most %d bytes", pb.MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url must be an absolute URL such as https://example.com/webhooks")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url must not carry credentials or a fragment")
	}
	host := strings.ToLower(u.Hostname())
	allowed := s.allow[host]
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowed:
	default:
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url must be https:// (http:// only to hosts the operator allows with --webhook-allow-hosts)")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !allowed && !PublicAddr(ip) {
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url's address %s is private, loopback or link-local; the operator may allow it with --webhook-allow-hosts", ip)
	}
	if host == "localhost" && !allowed {
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url's host is localhost; the operator may allow it with --webhook-allow-hosts")
	}
	return nil
}

// PublicAddr reports whether ip may be reached without the operator's
// leave: not loopback, private, link-local, unspecified, multicast or the
// shared address space of carrier-grade NAT. The transport checks every
// address it dials with it.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || !ip.IsValid() {
		return false
	}
	return !netip.MustParsePrefix("100.64.0.0/10").Contains(ip) && !netip.MustParsePrefix("0.0.0.0/8").Contains(ip)
}

// checkEvents accepts 1 to MaxWebhookEventsListed known types or "*".
func checkEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, pb.Errorf(pb.ErrParameterMissing, "events", "events is required: the event types to receive, or [\"*\"] for all")
	}
	if len(events) > pb.MaxWebhookEventsListed {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "events", "events lists at most %d types", pb.MaxWebhookEventsListed)
	}
	var out []string
	for _, e := range events {
		if e != "*" && !slices.Contains(pb.WebhookEventTypes, e) {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "events", "unknown event type %q; use * or one of %s", e, strings.Join(pb.WebhookEventTypes, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// endpoint returns endpoint id of caller as this batch sees it.
func (s *Service) endpoint(tx *ledger.Tx, caller pb.Principal, id string) (pb.WebhookEndpoint, error) {
	if !pb.HasPrefix(id, pb.PrefixWebhookEndpoint) {
		return pb.WebhookEndpoint{}, noEndpoint(id)
	}
	var e *pb.WebhookEndpoint
	added := ledger.Added(tx, endpointsPart)
	for i := len(added) - 1; i >= 0 && e == nil; i-- {
		if added[i].ID == id {
			c := added[i]
			e = &c
		}
	}
	if e == nil {
		var err error
		if e, err = s.st.WebhookEndpoint(tx.Context(), id); pb.ErrorCode(err) == pb.ErrNotFound {
			return pb.WebhookEndpoint{}, noEndpoint(id)
		} else if err != nil {
			return pb.WebhookEndpoint{}, err
		}
	}
	if e.Deleted || e.OwnerID != caller.ID {
		return pb.WebhookEndpoint{}, noEndpoint(id)
	}
	return *e, nil
}

// Endpoint returns endpoint id to its owner.
func (s *Service) Endpoint(ctx context.Context, caller pb.Principal, id string) (*pb.WebhookEndpoint, error) {
	if !pb.HasPrefix(id, pb.PrefixWebhookEndpoint) {
		return nil, noEndpoint(id)
	}
	e, err := s.st.WebhookEndpoint(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && (e.Deleted || e.OwnerID != caller.ID)) {
		return nil, noEndpoint(id)
	}
	return e, err
}

// List lists caller's endpoints, newest first.
func (s *Service) List(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]pb.WebhookEndpoint, bool, error) {
	if err := service.RequireRole(caller, owners...); err != nil {
		return nil, false, err
	}
	return s.st.ListWebhookEndpoints(ctx, caller.ID, startingAfter, limit)
}

// UpdateParams changes an endpoint; nil fields are left as they are.
type UpdateParams struct {
	URL         *string
	Events      []string // nil: unchanged
	Description *string
	Disabled    *bool
}

// Update (the owner) changes an endpoint's URL, events, description or
// whether it is disabled. Enabling it again gives it a fresh
// WebhookDisableAfter before failures disable it again.
func (s *Service) Update(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, in UpdateParams) service.Result {
	if in.URL != nil {
		if err := s.checkURL(*in.URL); err != nil {
			return service.Result{Err: err}
		}
	}
	var events []string
	if in.Events != nil {
		var err error
		if events, err = checkEvents(in.Events); err != nil {
			return service.Result{Err: err}
		}
	}
	if in.Description != nil && (len(*in.Description) > pb.MaxWebhookDescription || !utf8.ValidString(*in.Description)) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "description", "description must be valid UTF-8 of at most %d bytes", pb.MaxWebhookDescription)}
	}
	return s.change(ctx, caller, idem, id, func(e *pb.WebhookEndpoint, now time.Time) {
		if in.URL != nil {
			e.URL = *in.URL
		}
		if events != nil {
			e.Events = events
		}
		if in.Description != nil {
			e.Description = *in.Description
		}
		if in.Disabled != nil {
			e.Status, e.DisabledReason = pb.WebhookEnabled, ""
			if *in.Disabled {
				e.Status, e.DisabledReason = pb.WebhookDisabled, "owner"
			}
		}
	}, nil)
}

// Rotate (the owner) gives an endpoint a new secret, returned this once;
// the old one signs deliveries beside it for WebhookSecretOverlap.
func (s *Service) Rotate(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	secret := whsig.NewSecret()
	sealed := s.core.Seal([]byte(secret))
	return s.change(ctx, caller, idem, id, func(e *pb.WebhookEndpoint, now time.Time) {
		until := now.Add(pb.WebhookSecretOverlap)
		e.PreviousSealed, e.PreviousExpiresAt, e.SecretSealed = e.SecretSealed, &until, sealed
	}, func(e pb.WebhookEndpoint) any {
		e.Secret = secret
		return &e
	})
}

// Delete (the owner) deletes an endpoint; its pending deliveries are
// canceled.
func (s *Service) Delete(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	res := s.change(ctx, caller, idem, id, func(e *pb.WebhookEndpoint, now time.Time) {
		e.Deleted, e.Status = true, pb.WebhookDisabled
	}, func(e pb.WebhookEndpoint) any {
		return map[string]any{"id": e.ID, "object": "webhook_endpoint", "deleted": true}
	})
	if res.Err == nil {
		if err := s.st.CancelWebhookDeliveries(ctx, id); err != nil {
			s.log.Warn("couldn't cancel a deleted endpoint's deliveries; the worker skips them", "endpoint", id, "err", err)
		}
	}
	return res
}

// change applies edit to caller's endpoint id in the writer, records the
// result in the registry, and answers with answer(endpoint), or the
// endpoint when answer is nil.
func (s *Service) change(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, edit func(e *pb.WebhookEndpoint, now time.Time), answer func(e pb.WebhookEndpoint) any) service.Result {
	if err := service.RequireRole(caller, owners...); err != nil {
		return service.Result{Err: err}
	}
	var changed pb.WebhookEndpoint // stays empty when replayed: the registry has it
	res := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		e, err := s.endpoint(tx, caller, id)
		if err != nil {
			return nil, err
		}
		now := tx.Now().Truncate(time.Second)
		if e.PreviousExpiresAt != nil && !e.PreviousExpiresAt.After(now) {
			e.PreviousSealed, e.PreviousExpiresAt = nil, nil
		}
		edit(&e, now)
		e.UpdatedAt = now
		ledger.Add(tx, endpointsPart, e)
		changed = e
		if answer != nil {
			return answer(e), nil
		}
		return &e, nil
	})
	if res.Err == nil && changed.ID != "" {
		s.reg.Put(changed)
	}
	return res
}

// Test (the owner) sends a webhook_endpoint.test event to one endpoint,
// whatever it subscribes to. A disabled endpoint receives nothing until
// it is enabled.
func (s *Service) Test(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := service.RequireRole(caller, owners...); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		e, err := s.endpoint(tx, caller, id)
		if err != nil {
			return nil, err
		}
		if e.Status != pb.WebhookEnabled {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "id", "webhook endpoint %s is disabled; enable it first (disabled: false)", id)
		}
		obj, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		ev := pb.WebhookEvent{ID: pb.NewID(pb.PrefixEvent, tx.Now()), Type: pb.EventWebhookTest, CreatedAt: tx.Now(),
			Parties: []string{e.OwnerID}, EndpointID: e.ID, Object: obj}
		ledger.Add(tx, eventsPart, ev)
		return eventShape{ID: ev.ID, Object: "event", Type: ev.Type, CreatedAt: ev.CreatedAt.Truncate(time.Second), EndpointID: e.ID}, nil
	})
}

// eventShape is an event as the API answers a test with.
type eventShape struct {
	ID         string    `json:"id"`
	Object     string    `json:"object"`
	Type       string    `json:"type"`
	CreatedAt  time.Time `json:"created_at"`
	EndpointID string    `json:"endpoint_id"`
}

// Deliveries lists the deliveries to caller's endpoint, newest first.
func (s *Service) Deliveries(ctx context.Context, caller pb.Principal, endpointID, startingAfter string, limit int) ([]pb.WebhookDelivery, bool, error) {
	if _, err := s.Endpoint(ctx, caller, endpointID); err != nil {
		return nil, false, err
	}
	return s.st.ListWebhookDeliveries(ctx, endpointID, startingAfter, limit)
}

// Delivery returns a delivery to one of caller's endpoints, with its
// attempts.
func (s *Service) Delivery(ctx context.Context, caller pb.Principal, id string) (*pb.WebhookDelivery, error) {
	noDelivery := pb.Errorf(pb.ErrNotFound, "id", "no such webhook delivery: %s", id)
	if !pb.HasPrefix(id, pb.PrefixWebhookDelivery) {
		return nil, noDelivery
	}
	d, err := s.st.WebhookDelivery(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && d.OwnerID != caller.ID) {
		return nil, noDelivery
	}
	return d, err
}

// Redeliver (the owner) attempts a delivery again now, whatever its
// status but canceled; one being attempted is refused with rate_limited
// and a Retry-After.
func (s *Service) Redeliver(ctx context.Context, caller pb.Principal, id string) (*pb.WebhookDelivery, error) {
	d, err := s.Delivery(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if err := s.st.RedeliverWebhook(ctx, id, s.clock.Now()); errors.Is(err, pb.ErrStoreConflict) {
		if d.Status == pb.DeliveryCanceled {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "id", "webhook delivery %s was canceled with its endpoint", id)
		}
		e := pb.Errorf(pb.ErrRateLimited, "id", "webhook delivery %s is being attempted now; retry when it ends", id)
		e.RetryAfter = s.cfg.Timeout
		return nil, e
	} else if err != nil {
		return nil, err
	}
	return s.st.WebhookDelivery(ctx, id)
}

// PublicKey is the Ed25519 key that verifies every delivery's v1a
// signature, as Standard Webhooks writes it (whpk_…).
func (s *Service) PublicKey() string {
	return whsig.PublicKey(s.cfg.SigningKey.Public().(ed25519.PublicKey))
}
