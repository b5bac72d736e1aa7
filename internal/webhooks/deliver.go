package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/whsig"
)

// The delivery worker. Three loops (service.Every) and one recorder:
//
//   - fan-out turns each new event of the outbox into one delivery row per
//     endpoint that receives it, and marks the event fanned out, in one
//     transaction (twice is harmless: a delivery is unique per event and
//     endpoint);
//   - delivery finds endpoints with due deliveries and claims, per
//     endpoint, as many as that endpoint's share of the concurrency has
//     room for (a lease in the row: a claimed delivery is not claimed by
//     another process until the lease ends), and attempts each in a
//     goroutine of its own;
//   - the recorder writes attempts' outcomes in batches, which releases
//     their claims;
//   - the registry is read again every ReloadInterval.
//
// A delivery is pending until an attempt gets a 2xx; each failure waits
// the next step of the schedule; a delivery that a process stopped in
// the middle of is claimed again when its lease ends, so deliveries
// survive restarts and crashes, and a receiver may get one twice (same
// webhook-id). One endpoint's slowness costs only its own PerEndpoint
// share of Concurrency.

// leaseExtra is added to the attempt timeout to make a claim's lease: the
// time within which the attempt and the recording of its outcome end.
const leaseExtra = 20 * time.Second

// Bounds of the worker's batches.
const (
	fanOutBatch   = 16
	dueEndpoints  = 256
	recordBatch   = 512
	recordEvery   = 20 * time.Millisecond
	maxEventCache = 8192
	maxRoundTime  = time.Second
	dueEvery      = 100 * time.Millisecond
)

// flows holds the deliveries this process claimed: in flight (at most
// limit, perCap per endpoint) or queued for room (as many again). A
// delivery is held from its claim until its attempt ends; the claim's
// lease covers the wait, since an endpoint's queue is at most its share
// of attempts, each bounded by Timeout.
type flows struct {
	mu             sync.Mutex
	held, active   map[string]int // per endpoint
	heldN, activeN int
	queue          map[string][]held
	limit, perCap  int
	ended          chan struct{} // a token per ended attempt, dropped when full
	wg             sync.WaitGroup
	run            func(held) // attempts one, in its own goroutine
}

// held is a claimed delivery and its endpoint.
type held struct {
	e *pb.WebhookEndpoint
	d pb.WebhookDelivery
}

// reserve holds up to n more deliveries of endpoint id, as room allows,
// and returns how many; min is the least worth holding (0 for any).
func (f *flows) reserve(id string, n, least int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = min(n, 2*f.perCap-f.held[id], 2*f.limit-f.heldN)
	if n <= 0 || n < least {
		return 0
	}
	f.held[id] += n
	f.heldN += n
	return n
}

// fits reports whether the process may hold n more deliveries.
func (f *flows) fits(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heldN+n <= 2*f.limit
}

// unreserve gives back n of endpoint id's reservations.
func (f *flows) unreserve(id string, n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	f.held[id] -= n
	f.heldN -= n
	if f.held[id] <= 0 {
		delete(f.held, id)
	}
	f.mu.Unlock()
}

// enqueue queues reserved deliveries and starts what room allows.
func (f *flows) enqueue(hs []held) {
	f.mu.Lock()
	for _, h := range hs {
		f.queue[h.d.EndpointID] = append(f.queue[h.d.EndpointID], h)
	}
	f.mu.Unlock()
	f.pump()
}

// pump starts queued deliveries while there is room.
func (f *flows) pump() {
	f.mu.Lock()
	var starts []held
	for id, q := range f.queue {
		for len(q) > 0 && f.active[id] < f.perCap && f.activeN < f.limit {
			starts = append(starts, q[0])
			q = q[1:]
			f.active[id]++
			f.activeN++
		}
		if len(q) == 0 {
			delete(f.queue, id)
		} else {
			f.queue[id] = q
		}
	}
	f.wg.Add(len(starts))
	f.mu.Unlock()
	for _, h := range starts {
		go func() {
			defer f.wg.Done()
			f.run(h)
			f.done(h.d.EndpointID)
		}()
	}
}

// done ends an attempt of endpoint id and starts the next queued ones.
func (f *flows) done(id string) {
	f.mu.Lock()
	f.active[id]--
	f.activeN--
	f.held[id]--
	f.heldN--
	if f.active[id] <= 0 {
		delete(f.active, id)
	}
	if f.held[id] <= 0 {
		delete(f.held, id)
	}
	f.mu.Unlock()
	select {
	case f.ended <- struct{}{}:
	default:
	}
	f.pump()
}

func (f *flows) holding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heldN
}

// Start runs the worker until Close. It needs Config.Transport.
func (s *Service) Start() {
	if s.cfg.Transport == nil {
		s.log.Error("webhooks: no transport; deliveries are not sent")
		return
	}
	s.flows = &flows{held: map[string]int{}, active: map[string]int{}, queue: map[string][]held{},
		limit: s.cfg.Concurrency, perCap: s.cfg.PerEndpoint, ended: make(chan struct{}, 1)}
	s.flows.run = func(h held) { s.results <- s.attempt(h.e, h.d) }
	s.results = make(chan pb.WebhookAttempt, 2*s.cfg.Concurrency)
	s.recorded = make(chan struct{})
	s.events = map[string]*cachedEvent{}
	s.hot = map[string]bool{}
	s.wg.Add(4)
	go service.Every(s.stop, &s.wg, s.log, s.cfg.ReloadInterval, "reloading webhook endpoints", s.reg.Reload)
	go service.Every(s.stop, &s.wg, s.log, pruneEvery, "pruning the webhook delivery log", s.Prune)
	go service.Every(s.stop, &s.wg, s.log, max(s.cfg.PollInterval/5, time.Millisecond), "webhook fan-out", s.FanOut)
	go service.Every(s.stop, &s.wg, s.log, s.cfg.PollInterval, "webhook delivery", s.deliverRound)
	go s.recorder()
}

// Close stops the worker: no new claim, the attempts in flight end (within
// Timeout) and their outcomes are recorded.
func (s *Service) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.wg.Wait()
	if s.flows == nil {
		return
	}
	s.flows.wg.Wait()
	close(s.results)
	<-s.recorded
}

func (s *Service) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// pruneEvery is how often old deliveries and events are deleted, in
// batches of pruneBatch.
const (
	pruneEvery = time.Minute
	pruneBatch = 5000
)

// Prune deletes a batch of deliveries that ended longer than Retention
// ago, and of events left without deliveries.
func (s *Service) Prune(ctx context.Context) error {
	_, err := s.st.PruneWebhooks(ctx, s.clock.Now().Add(-s.cfg.Retention), pruneBatch)
	return err
}

// FanOut turns the outbox's new events into deliveries, while this
// process has room to hold them. A delivery to an endpoint with room is
// written claimed by this process and queued at once (no claim round
// trip); one to an endpoint without (a slow one) is written unclaimed,
// for the claims of the delivery loop. It takes small batches, and stops
// when most of a batch found no room (or the process holds all it may):
// events then wait in the outbox, which costs nothing, rather than as
// unclaimed deliveries that claims must find.
func (s *Service) FanOut(ctx context.Context) error {
	if s.reg.Empty() {
		return nil // no endpoint, so no event (the registry reloads every ReloadInterval)
	}
	for range 1000 {
		if s.flows != nil && s.flows.holding() >= 2*s.cfg.Concurrency {
			return nil
		}
		evs, err := s.st.PendingWebhookEvents(ctx, fanOutBatch)
		if err != nil || len(evs) == 0 {
			return err
		}
		now := s.clock.Now()
		lease := now.Add(s.cfg.Timeout + leaseExtra)
		ids := make([]string, 0, len(evs))
		var ds []pb.WebhookDelivery
		var hs []held
		for i := range evs {
			ev := &evs[i]
			targets := s.targets(ctx, ev)
			if s.flows != nil && len(ids) > 0 && !s.flows.fits(len(targets)) {
				break // this event and the rest wait in the outbox
			}
			ids = append(ids, ev.ID)
			for _, e := range targets {
				d := pb.WebhookDelivery{ID: pb.NewID(pb.PrefixWebhookDelivery, now), EventID: ev.ID, EventType: ev.Type,
					EndpointID: e.ID, OwnerID: e.OwnerID, Status: pb.DeliveryPending, NextAttemptAt: &now, CreatedAt: now}
				if s.flows != nil && e.Status == pb.WebhookEnabled && s.flows.reserve(e.ID, 1, 0) == 1 {
					d.ClaimedUntil = &lease
					hs = append(hs, held{e, d})
				}
				ds = append(ds, d)
			}
			s.remember(ev)
		}
		marked, err := s.st.DispatchWebhookEvents(ctx, ids, ds)
		if err != nil {
			for _, h := range hs {
				s.flows.unreserve(h.d.EndpointID, 1)
			}
			return err
		}
		if len(marked) < len(ids) { // another process fanned some out first
			mine := map[string]bool{}
			for _, id := range marked {
				mine[id] = true
			}
			hs = slices.DeleteFunc(hs, func(h held) bool {
				if !mine[h.d.EventID] {
					s.flows.unreserve(h.d.EndpointID, 1)
					return true
				}
				return false
			})
		}
		if len(hs) > 0 {
			s.flows.enqueue(hs)
		}
		if len(ids) < fanOutBatch || 2*len(hs) < len(ds) {
			return nil
		}
	}
	return nil
}

// targets are the endpoints that receive ev: its one endpoint (a test),
// or every endpoint of its parties subscribed to its type.
func (s *Service) targets(ctx context.Context, ev *pb.WebhookEvent) []*pb.WebhookEndpoint {
	if ev.EndpointID != "" {
		if e := s.liveEndpoint(ctx, ev.EndpointID); e != nil {
			return []*pb.WebhookEndpoint{e}
		}
		return nil
	}
	var out []*pb.WebhookEndpoint
	for _, p := range ev.Parties {
		for _, e := range s.reg.Endpoints(p) {
			if receives(e, ev.Type, ev.ACP != nil) {
				out = append(out, e)
			}
		}
	}
	return out
}

// liveEndpoint is endpoint id from the registry, or the store for one
// another process made since the last reload; nil when deleted.
func (s *Service) liveEndpoint(ctx context.Context, id string) *pb.WebhookEndpoint {
	if e := s.reg.Endpoint(id); e != nil {
		return e
	}
	e, err := s.st.WebhookEndpoint(ctx, id)
	if err != nil || e.Deleted {
		return nil
	}
	s.reg.Put(*e)
	return s.reg.Endpoint(id)
}

// deliverRound claims and starts due deliveries while there are some and
// room for them, for up to maxRoundTime.
func (s *Service) deliverRound(ctx context.Context) error {
	if s.reg.Empty() && s.flows.holding() == 0 {
		return nil
	}
	end := time.Now().Add(maxRoundTime)
	for time.Now().Before(end) && !s.stopped() {
		launched, err := s.claimAndStart(ctx)
		if err != nil {
			return err
		}
		if launched > 0 {
			continue
		}
		if s.flows.holding() == 0 {
			return nil
		}
		// Wait for an attempt to end (its endpoint may have more), or a
		// poll's time for new ones.
		select {
		case <-s.flows.ended:
		case <-time.After(s.cfg.PollInterval):
		case <-s.stop:
		}
	}
	return nil
}

// claimAndStart claims what is due, as the flows have room, and queues
// it; it returns how many it claimed. It asks the store which endpoints
// have due deliveries at most every dueEvery (fresh deliveries need no
// claim: fan-out queues them), and in between claims again from those
// whose last claim was full (they likely have more): a backlog costs one
// claim transaction per round, not a scan.
// An endpoint is claimed for only once a quarter of its room is free, so
// that claims come in batches.
func (s *Service) claimAndStart(ctx context.Context) (int, error) {
	now := s.clock.Now()
	ids := make([]string, 0, len(s.hot))
	for id := range s.hot {
		ids = append(ids, id)
	}
	if len(s.hot) == 0 && time.Since(s.lastDue) < max(s.cfg.PollInterval, dueEvery) {
		return 0, nil // asked recently, and nothing known to wait
	}
	if time.Since(s.lastDue) >= max(s.cfg.PollInterval, dueEvery) {
		due, err := s.st.DueWebhookEndpoints(ctx, now, dueEndpoints)
		if err != nil {
			return 0, err
		}
		s.lastDue = time.Now()
		for _, id := range due {
			if !s.hot[id] {
				ids = append(ids, id)
			}
		}
	}
	clear(s.hot)
	var claims []pb.WebhookClaim
	eps := map[string]*pb.WebhookEndpoint{}
	for _, id := range ids {
		e := s.liveEndpoint(ctx, id)
		if e == nil {
			if err := s.st.CancelWebhookDeliveries(ctx, id); err != nil {
				return 0, err
			}
			continue
		}
		if e.Status != pb.WebhookEnabled {
			continue // kept pending until it is enabled again
		}
		if n := s.flows.reserve(id, 2*s.cfg.PerEndpoint, max(1, s.cfg.PerEndpoint/4)); n > 0 {
			claims = append(claims, pb.WebhookClaim{EndpointID: id, Limit: n})
			eps[id] = e
		}
	}
	if len(claims) == 0 {
		return 0, nil
	}
	ds, err := s.st.ClaimWebhookDeliveries(ctx, claims, now, now.Add(s.cfg.Timeout+leaseExtra))
	got := map[string]int{}
	for _, d := range ds {
		got[d.EndpointID]++
	}
	for _, c := range claims {
		s.flows.unreserve(c.EndpointID, c.Limit-got[c.EndpointID])
		if got[c.EndpointID] == c.Limit {
			s.hot[c.EndpointID] = true
		}
	}
	if err != nil {
		return 0, err
	}
	if err := s.loadEvents(ctx, ds); err != nil {
		for _, d := range ds {
			s.flows.unreserve(d.EndpointID, 1) // their leases end; they are claimed again then
		}
		return 0, err
	}
	hs := make([]held, len(ds))
	for i, d := range ds {
		hs[i] = held{eps[d.EndpointID], d}
	}
	s.flows.enqueue(hs)
	return len(ds), nil
}

// cachedEvent is an event with its bodies rendered per owner role, and
// their v1a signatures per second: an event goes to every endpoint of its
// parties, and an Ed25519 signature costs more than the rest of an
// attempt's work together.
type cachedEvent struct {
	ev     pb.WebhookEvent
	mu     sync.Mutex
	bodies map[pb.Role][]byte
	v1a    map[v1aKey]string
}

type v1aKey struct {
	role pb.Role
	ts   int64
}

// maxV1a bounds an event's cached signatures.
const maxV1a = 16

// signV1a returns the v1a signature of the event's body for role at ts.
func (s *Service) signV1a(c *cachedEvent, role pb.Role, ts int64, body []byte) string {
	k := v1aKey{role, ts}
	c.mu.Lock()
	sig, ok := c.v1a[k]
	c.mu.Unlock()
	if ok {
		return sig
	}
	sig = whsig.V1a(s.cfg.SigningKey, c.ev.ID, ts, body)
	c.mu.Lock()
	if c.v1a == nil || len(c.v1a) >= maxV1a {
		c.v1a = map[v1aKey]string{}
	}
	c.v1a[k] = sig
	c.mu.Unlock()
	return sig
}

func (s *Service) remember(ev *pb.WebhookEvent) {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	if s.events == nil {
		return
	}
	if len(s.events) >= maxEventCache {
		clear(s.events)
	}
	s.events[ev.ID] = &cachedEvent{ev: *ev, bodies: map[pb.Role][]byte{}}
}

func (s *Service) cached(id string) *cachedEvent {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	return s.events[id]
}

// loadEvents reads the events of ds that the cache lacks.
func (s *Service) loadEvents(ctx context.Context, ds []pb.WebhookDelivery) error {
	var missing []string
	for _, d := range ds {
		if s.cached(d.EventID) == nil {
			missing = append(missing, d.EventID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	evs, err := s.st.WebhookEvents(ctx, missing)
	if err != nil {
		return err
	}
	for i := range evs {
		s.remember(&evs[i])
	}
	return nil
}

// attempt sends d to e once and returns its outcome.
func (s *Service) attempt(e *pb.WebhookEndpoint, d pb.WebhookDelivery) pb.WebhookAttempt {
	at := s.clock.Now()
	a := pb.WebhookAttempt{DeliveryID: d.ID, EndpointID: d.EndpointID, Attempt: d.Attempts + 1, At: at}
	t0 := time.Now()
	status, err := s.send(e, d, at)
	a.DurationMS, a.StatusCode = time.Since(t0).Milliseconds(), status
	switch {
	case err == nil && status >= 200 && status < 300:
		a.Status = pb.DeliverySucceeded
		return a
	case err != nil:
		a.Error = clip(err.Error())
	default:
		a.Error = "the endpoint answered HTTP " + strconv.Itoa(status)
	}
	a.Status, a.NextAttemptAt = pb.DeliveryFailed, s.next(a.Attempt, at)
	if a.NextAttemptAt != nil {
		a.Status = pb.DeliveryPending
	}
	return a
}

// send renders, signs and posts d's event to e.
func (s *Service) send(e *pb.WebhookEndpoint, d pb.WebhookDelivery, at time.Time) (int, error) {
	c := s.cached(d.EventID)
	if c == nil { // evicted from the cache while the delivery waited
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		err := s.loadEvents(ctx, []pb.WebhookDelivery{d})
		cancel()
		if c = s.cached(d.EventID); c == nil {
			return 0, fmt.Errorf("couldn't read event %s from the outbox: %v", d.EventID, err)
		}
	}
	body, err := s.body(c, e)
	if err != nil {
		return 0, err
	}
	ts := at.Unix()
	secret, err := s.core.Open(e.SecretSealed)
	if err != nil {
		return 0, errors.New("the endpoint's secret cannot be opened with this server's operator key")
	}
	headers := map[string]string{"Content-Type": "application/json", "User-Agent": "Paybound-Webhooks/1"}
	if e.Format == pb.WebhookFormatACP {
		headers["Merchant-Signature"] = whsig.ACP(string(secret), ts, body)
		headers["Timestamp"] = at.UTC().Format(time.RFC3339)
	} else {
		key, err := whsig.SecretKey(string(secret))
		if err != nil {
			return 0, err
		}
		sig := whsig.V1(key, c.ev.ID, ts, body)
		if e.PreviousSealed != nil && e.PreviousExpiresAt != nil && at.Before(*e.PreviousExpiresAt) {
			if old, err := s.core.Open(e.PreviousSealed); err == nil {
				if k, err := whsig.SecretKey(string(old)); err == nil {
					sig += " " + whsig.V1(k, c.ev.ID, ts, body)
				}
			}
		}
		headers["webhook-id"] = c.ev.ID
		headers["webhook-timestamp"] = strconv.FormatInt(ts, 10)
		headers["webhook-signature"] = sig + " " + s.signV1a(c, e.OwnerRole, ts, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	return s.cfg.Transport.Post(ctx, e.URL, headers, body)
}

// body is the event as e's owner receives it: for a standard endpoint
// {id, type, created_at, data: {object}}, its object shown as the owner's
// role may see it (a merchant sees a payment as service.Shown shows it to
// a merchant); for an ACP endpoint, the ACP event. Bodies are rendered
// once per role.
func (s *Service) body(c *cachedEvent, e *pb.WebhookEndpoint) ([]byte, error) {
	if e.Format == pb.WebhookFormatACP {
		if c.ev.ACP == nil {
			return nil, fmt.Errorf("event %s has no ACP form for an ACP endpoint", c.ev.ID)
		}
		return c.ev.ACP, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.bodies[e.OwnerRole]; b != nil {
		return b, nil
	}
	obj, err := shownObject(&c.ev, pb.Principal{Role: e.OwnerRole, ID: e.OwnerID})
	if err != nil {
		return nil, err
	}
	var env pb.WebhookEventBody
	env.ID, env.Type, env.CreatedAt, env.Data.Object = c.ev.ID, c.ev.Type, c.ev.CreatedAt.UTC().Truncate(time.Second), obj
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	c.bodies[e.OwnerRole] = b
	return b, nil
}

// shownObject is ev's object as viewer may see it.
func shownObject(ev *pb.WebhookEvent, viewer pb.Principal) (json.RawMessage, error) {
	if ev.Object == nil {
		// Not snapshotted (a batch without the object's row): its name.
		return json.Marshal(map[string]string{"id": ev.ObjectID, "object": ev.ObjectKind})
	}
	if ev.ObjectKind != pb.ObjectPayment {
		return ev.Object, nil
	}
	var p pb.Payment
	if err := json.Unmarshal(ev.Object, &p); err != nil {
		return nil, fmt.Errorf("event %s's payment is unreadable: %w", ev.ID, err)
	}
	return json.Marshal(service.Shown(&p, viewer))
}

// next is when attempt n+1 is due after attempt n failed at at, or nil
// when n was the last the schedule allows. Each wait is stretched by up
// to a fifth at random, so that receivers that failed together are not
// retried all at once.
func (s *Service) next(n int, at time.Time) *time.Time {
	if n > len(s.cfg.Schedule) {
		return nil
	}
	wait := s.cfg.Schedule[n-1]
	t := at.Add(wait + time.Duration(rand.Int64N(int64(wait)/5+1)))
	return &t
}

func clip(msg string) string {
	if len(msg) <= pb.MaxWebhookError {
		return msg
	}
	msg = msg[:pb.MaxWebhookError]
	for !utf8.ValidString(msg) {
		msg = msg[:len(msg)-1]
	}
	return msg
}

// recorder writes attempts' outcomes in batches until results is closed,
// then writes the rest and closes recorded.
func (s *Service) recorder() {
	defer close(s.recorded)
	t := time.NewTicker(recordEvery)
	defer t.Stop()
	var buf []pb.WebhookAttempt
	for {
		select {
		case a, ok := <-s.results:
			if !ok {
				s.record(buf)
				return
			}
			buf = append(buf, a)
			if len(buf) >= recordBatch {
				s.record(buf)
				buf = buf[:0]
			}
		case <-t.C:
			if len(buf) > 0 {
				s.record(buf)
				buf = buf[:0]
			}
		}
	}
}

// record writes as, trying a few times; outcomes it cannot write are
// dropped, and their deliveries are claimed again when their leases end.
func (s *Service) record(as []pb.WebhookAttempt) {
	if len(as) == 0 {
		return
	}
	var err error
	for try := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = s.st.RecordWebhookAttempts(ctx, as)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(time.Duration(50<<try) * time.Millisecond)
	}
	if err != nil {
		s.log.Error("couldn't record webhook attempts; they will be attempted again", "attempts", len(as), "err", err)
		return
	}
	s.disableFailing(as)
}

// disableFailing disables the endpoints of failed attempts whose failures
// have lasted WebhookDisableAfter (and that nobody changed for as long).
func (s *Service) disableFailing(as []pb.WebhookAttempt) {
	seen := map[string]bool{}
	for _, a := range as {
		if a.Status == pb.DeliverySucceeded || seen[a.EndpointID] {
			continue
		}
		seen[a.EndpointID] = true
		e := s.reg.Endpoint(a.EndpointID)
		if e == nil || e.Status != pb.WebhookEnabled || e.FailingSince == nil ||
			a.At.Sub(*e.FailingSince) < pb.WebhookDisableAfter || a.At.Sub(e.UpdatedAt) < pb.WebhookDisableAfter {
			continue
		}
		if err := s.disable(a.EndpointID); err != nil {
			s.log.Warn("couldn't disable a failing webhook endpoint", "endpoint", a.EndpointID, "err", err)
		}
	}
}

// disable disables endpoint id for failing, with a webhook_endpoint.disabled
// event to its owner's other endpoints.
func (s *Service) disable(id string) error {
	var changed pb.WebhookEndpoint
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		e, err := s.st.WebhookEndpoint(tx.Context(), id)
		if err != nil {
			return nil, err
		}
		for _, x := range ledger.Added(tx, endpointsPart) {
			if x.ID == id {
				*e = x
			}
		}
		if e.Deleted || e.Status != pb.WebhookEnabled {
			return nil, nil
		}
		e.Status, e.DisabledReason, e.UpdatedAt = pb.WebhookDisabled, "failing", tx.Now().Truncate(time.Second)
		ledger.Add(tx, endpointsPart, *e)
		obj, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		ledger.Add(tx, eventsPart, pb.WebhookEvent{ID: pb.NewID(pb.PrefixEvent, tx.Now()), Type: pb.EventWebhookEndpointDisabled,
			CreatedAt: tx.Now(), Parties: []string{e.OwnerID}, Object: obj})
		changed = *e
		return nil, nil
	})
	if res.Err != nil {
		return res.Err
	}
	if changed.ID != "" {
		s.reg.Put(changed)
		s.log.Warn("disabled a webhook endpoint that failed every attempt for 3 days", "endpoint", id, "owner", changed.OwnerID)
	}
	return nil
}
