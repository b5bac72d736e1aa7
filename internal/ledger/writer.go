// Package ledger is Paybound's double-entry engine: one writer goroutine per
// store applies operations in batches (group commit), keeps the balances it
// decides with in memory, and acknowledges nothing before the batch that
// holds it is durably committed.
//
// Why a single writer: a payment must check and change one wallet balance
// atomically. Serializing all such checks in one goroutine makes them
// lock-free and lets one transaction and one fsync carry thousands of
// operations (TigerBeetle's design), where a row lock per payment would make
// a hot wallet the bottleneck.
//
// With a store of its own (SQLite) the writer applies the next batch while
// the previous one commits, and its caches are exactly what is committed.
// With a store that other processes write too (pb.SharedStore, PostgreSQL)
// its caches may lag theirs: batches commit one at a time as differences
// the database checks against its constraints, a decline is confirmed
// against the stored balance, and a batch the database refuses is
// recomputed (docs/scaling.md).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/paybound/paybound"
)

// Config configures a Writer. Zero values take the documented defaults.
type Config struct {
	Store  pb.Store
	Clock  pb.Clock     // default: wall clock
	Logger *slog.Logger // default: discard
	// MaxBatch is the most operations applied in one transaction (default 8192).
	MaxBatch int
	// QueueSize bounds the operations waiting for the writer (default 65536);
	// Do blocks, up to its context's deadline, while the queue is full.
	QueueSize int
	// CacheLimit bounds each in-memory cache (accounts, open holds,
	// payments); past it the cache is dropped after a batch and refilled from
	// the store on demand (default 1<<20).
	CacheLimit int
	// PanicOnInvariant makes a broken invariant panic instead of stopping the
	// writer; tests set it so that a bug cannot hide. It also has every
	// failed Tx.Atomic check that its undo restored each list of the batch.
	PanicOnInvariant bool
	// Observers see every log entry an operation writes, in the operation's
	// Tx, right after it is written; what they add to the batch is undone
	// with the entry. An observer's error fails the entry's operation, so an
	// observer that must not stop payments (webhooks) does not return one.
	// With the log built off (paybound_nolog), they still run.
	Observers []Observer
}

// Observer sees a log entry as it is written (Config.Observers).
type Observer func(tx *Tx, ev pb.LogEvent) error

// Op is one operation applied by the writer. It runs on the writer goroutine,
// sees every earlier operation's effects, and must not block on anything but
// the Tx's own lookups. Its effects are kept whatever it returns, except
// those made inside a failed tx.Atomic; the returned value and error are what
// the caller of Do receives, after the batch has committed.
type Op func(tx *Tx) (any, error)

// Idem asks Do to store the operation's outcome under an idempotency key in
// the same transaction as its effects. Render turns the outcome into the
// response that retries will receive; a status of 500 or more is not stored,
// so that a retry after a server fault runs again.
type Idem struct {
	Caller string
	Key    string
	Hash   [32]byte
	Render func(v any, err error) (status int, body []byte)
	// Seal, when set, transforms the body before it is stored (the API
	// encrypts responses that carry secrets); a replayed Body is the stored,
	// sealed form.
	Seal func(body []byte) []byte
	// Status and Body are set by Do to the rendered response, or to the
	// stored one when Replayed: an earlier request with this key and hash
	// completed, and op did not run.
	Status   int
	Body     []byte
	Replayed bool
}

// Unstored marks an operation's error as an outcome not to be stored under
// its idempotency key: a failed authentication (a wrong one-time code). A
// retry checks again, and a wrong code stays wrong; guesses made each with a
// new key do not grow the database. The caller receives err itself.
func Unstored(err error) error { return unstored{err} }

type unstored struct{ error }

func (u unstored) Unwrap() error { return u.error }

// ErrIdempotencyConflict is returned by Do when the key was used with
// another request hash; op does not run.
var ErrIdempotencyConflict = &pb.Error{Code: pb.ErrIdempotencyConflict, Message: "this Idempotency-Key was already used with a different request; use a new key for a new request"}

// ErrIdempotencyRunning is returned by Do when an operation with the same
// key is in the same batch.
var ErrIdempotencyRunning = &pb.Error{Code: pb.ErrIdempotencyRunning, Message: "a request with this Idempotency-Key is still being processed; retry after it completes"}

type request struct {
	op       Op
	idem     *Idem
	result   any
	err      error
	done     chan struct{}
	attempts int // recomputations after refused commits
	// claim is the nonce this request spends before its op (NonceClaim),
	// and claimed what its last apply found: claimSpent, claimUsed, or
	// claimOpen when it could not tell.
	claim   *NonceClaim
	claimed int32
}

// Writer is the single writer of one store. Safe for concurrent use.
type Writer struct {
	cfg   Config
	log   *slog.Logger
	queue chan *request

	sendMu  sync.RWMutex // write-locked to set closed; read-locked by senders
	closed  bool
	mu      sync.Mutex // guards stopped, stats and retries
	stopped error      // a broken invariant or commit failure that stops the writer
	wg      sync.WaitGroup

	// Writer-goroutine state: the committed state plus the batch in progress.
	// inflight is the batch handed to the commit stage last, which may
	// still be committing while the next one is applied (nil after a
	// restart, and with a shared store, whose batches do not overlap).
	inflight     *pending
	accounts     map[accountKey]*pb.Account
	accountsByID map[int64]*pb.Account
	holds        map[int64]*hold // pending transfers looked at, resolved or not
	payments     map[string]*pb.Payment
	usage        map[usageKey]*pb.MandateUsageRow
	mandates     map[string]*pb.Mandate
	nextAccount  int64
	nextTransfer int64

	// undo is the undo log's array, which each batch's Tx takes and gives
	// back (apply): an ingest of a thousand usage events makes some 3,000
	// entries of 176 bytes, and a new log regrew to that at every batch
	// (a fifth of what an ingest allocated).
	undo []undoEntry

	epoch    uint64      // incremented at each reset; batches carry it
	poisoned atomic.Bool // a commit failed: reset before the next batch
	retries  []*request  // refused by a concurrent writer, to run again (guarded by mu)
	wake     chan struct{}

	// shared is the store when several processes write it; IDs then come
	// from blocks it reserves, up to (not including) the limits.
	shared                      pb.SharedStore
	accountLimit, transferLimit int64

	stats Stats
}

type accountKey struct{ owner, currency string }

type hold struct {
	t        pb.Transfer
	resolved bool
}

// Stats counts the writer's work since start.
type Stats struct {
	Batches, Ops, Transfers int64
	// CommitTime is the wall time spent in Store.Commit: against elapsed
	// time, how busy the commit stage is.
	CommitTime time.Duration
	// CommitHist counts committed batches by commit latency: CommitHist[i]
	// those within CommitBuckets[i] (and over the one before), the last
	// those over every bucket. BatchHist does the same for the number of
	// operations a batch carried, by BatchBuckets.
	CommitHist [len(CommitBuckets) + 1]int64
	BatchHist  [len(BatchBuckets) + 1]int64
}

// The upper bounds of Stats' histograms.
var (
	CommitBuckets = [...]time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
		25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, time.Second}
	BatchBuckets = [...]int{1, 4, 16, 64, 256, 1024, 4096, 8192}
)

// bucket returns the index of the first bound v is within, or len(bounds).
func bucket[T int | time.Duration](bounds []T, v T) int {
	for i, b := range bounds {
		if v <= b {
			return i
		}
	}
	return len(bounds)
}

// QueueDepth is how many operations wait for the writer now.
func (w *Writer) QueueDepth() int { return len(w.queue) }

// Errors of the ledger. They are *pb.Error where a caller may act on them.
var (
	ErrInsufficientFunds = &pb.Error{Code: pb.DeclineInsufficientFunds, Message: "the account's available balance is lower than the amount"}
	ErrHoldResolved      = &pb.Error{Code: pb.ErrPaymentState, Message: "the hold has already been captured, voided or expired"}
	ErrHoldExpired       = &pb.Error{Code: pb.ErrPaymentState, Message: "the hold has expired"}
	ErrClosed            = &pb.Error{Code: pb.ErrUnavailable, Message: "the ledger is shutting down"}
)

// New loads the writer's starting IDs and starts its goroutine.
func New(ctx context.Context, cfg Config) (*Writer, error) {
	if cfg.Store == nil {
		return nil, errors.New("ledger: Config.Store is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 8192
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 65536
	}
	if cfg.CacheLimit <= 0 {
		cfg.CacheLimit = 1 << 20
	}
	w := &Writer{cfg: cfg, log: cfg.Logger, queue: make(chan *request, cfg.QueueSize), wake: make(chan struct{}, 1)}
	w.shared, _ = cfg.Store.(pb.SharedStore)
	if err := w.reset(ctx); err != nil {
		return nil, err
	}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// reset drops every cache and reloads the ID counters from the store: after
// it, the writer's memory holds nothing that is not committed.
func (w *Writer) reset(ctx context.Context) error {
	if w.shared == nil {
		a, t, err := w.cfg.Store.NextIDs(ctx)
		if err != nil {
			return fmt.Errorf("couldn't load ledger IDs: %w", err)
		}
		w.nextAccount, w.nextTransfer = a, t
		w.accountLimit, w.transferLimit = 1<<62, 1<<62
	}
	w.accounts = map[accountKey]*pb.Account{}
	w.accountsByID = map[int64]*pb.Account{}
	w.holds = map[int64]*hold{}
	w.payments = map[string]*pb.Payment{}
	w.usage = map[usageKey]*pb.MandateUsageRow{}
	w.mandates = map[string]*pb.Mandate{}
	return nil
}

// Do applies op in the next batch and returns its outcome once that batch is
// durably committed. With idem, the rendered outcome is stored under the key
// in the same transaction and also left in idem.Status and idem.Body. ctx
// bounds only the wait for queue space: once queued, the op runs and Do
// waits for its commit, so that the caller never reports as failed something
// that happened. When ctx carries an open NonceClaim (WithNonceClaim), the
// nonce is spent first, in the same batch: op runs only if it was unused
// (else Do returns ErrNonceUsed), and the claim tells the outcome.
func (w *Writer) Do(ctx context.Context, idem *Idem, op Op) (any, error) {
	if w.Err() != nil {
		return nil, errStopped
	}
	r := &request{op: op, idem: idem, done: make(chan struct{}), claim: take(ctx)}
	if r.claim != nil {
		// Not spent or found used by this request (never queued, its batch
		// failed, the store could not tell): open again, for another op.
		defer func() {
			if r.claim.state.Load() == claimOpen {
				r.claim.taken.Store(false)
			}
		}()
	}
	// sendMu keeps Close from slipping its stop marker in between the closed
	// check and the send: a request queued after the marker would wait forever.
	w.sendMu.RLock()
	if w.closed {
		w.sendMu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case w.queue <- r:
		w.sendMu.RUnlock()
	case <-ctx.Done():
		w.sendMu.RUnlock()
		return nil, fmt.Errorf("couldn't queue ledger operation: %w", ctx.Err())
	}
	<-r.done
	return r.result, r.err
}

// Close stops accepting operations, finishes those queued, and waits for the
// writer goroutine. It does not close the store.
func (w *Writer) Close() {
	w.sendMu.Lock()
	if w.closed {
		w.sendMu.Unlock()
		return
	}
	w.closed = true
	w.sendMu.Unlock()
	// A nil request tells the writer to stop after everything queued before
	// it; nothing can be queued after it.
	w.queue <- nil
	w.wg.Wait()
}

// Err returns why the writer stopped, or nil while it is healthy.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// Stats returns the writer's counters so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// run is the apply stage: it gathers queued operations into a batch,
// applies them to the in-memory state, and hands the batch to the commit
// stage. While one batch is being written and fsynced, the next is applied:
// the two stages overlap, and a request is still acknowledged only after
// its own batch has committed.
func (w *Writer) run() {
	defer w.wg.Done()
	commits := make(chan *pending)
	committed := make(chan struct{})
	go w.commitLoop(commits, committed)
	defer func() {
		close(commits)
		<-committed
		w.failRetries(ErrClosed)
	}()
	reqs := make([]*request, 0, w.cfg.MaxBatch)
	for {
		var first *request
		stop := false
		select {
		case first = <-w.queue:
			stop = first == nil
		case <-w.wake:
		}
		reqs = reqs[:0]
		if w.poisoned.Load() || w.cachesFull() {
			reqs = append(reqs, w.restart(commits)...)
		}
		if first != nil {
			reqs = append(reqs, first)
		}
		reqs, stop = w.fill(reqs, stop)
		if len(reqs) > 0 {
			b := w.apply(slices.Clone(reqs))
			if p, ok := w.cfg.Store.(preparer); ok && b.err == nil && !b.tx.batch.Empty() {
				p.PrepareCommit(&b.tx.batch)
			}
			commits <- b
			w.inflight = b
			if w.shared != nil {
				// With other processes writing too, a batch may read fresh rows
				// (ensureFunds); they must not miss this writer's own batch in
				// flight, so batches do not overlap.
				<-b.committed
				w.adoptFresh(b)
				w.inflight = nil
			}
		}
		if stop {
			w.drainAfterClose()
			return
		}
	}
}

// restart is called when a commit failed (the caches hold effects that
// never reached the store) or the caches must shrink: it waits until
// nothing is in flight, then starts again from what is committed, and
// returns the requests of the refused batches, to go first.
func (w *Writer) restart(commits chan<- *pending) []*request {
	w.barrier(commits)
	w.inflight = nil
	if err := w.reset(context.Background()); err != nil {
		w.stop(err)
	}
	w.poisoned.Store(false)
	w.epoch++
	return w.takeRetries()
}

// fill adds to reqs what is queued, up to a batch, without waiting; it
// reports stop once it took the nil request that Close queues (or stop
// was already set, and then takes nothing).
func (w *Writer) fill(reqs []*request, stop bool) ([]*request, bool) {
	for !stop && len(reqs) < w.cfg.MaxBatch {
		select {
		case r := <-w.queue:
			if r == nil {
				return reqs, true
			}
			reqs = append(reqs, r)
		default:
			return reqs, stop
		}
	}
	return reqs, stop
}

// adoptFresh updates the caches with the rows a committed batch returned
// as stored, other processes' changes included (shared stores only).
func (w *Writer) adoptFresh(b *pending) {
	if b.tx == nil {
		return
	}
	for _, f := range b.tx.batch.Fresh {
		if a := w.accountsByID[f.ID]; a != nil {
			*a = f
		}
	}
	for _, f := range b.tx.batch.FreshUsage {
		if u := w.usage[usageKey{f.MandateID, f.PeriodKey}]; u != nil {
			*u = f
		}
	}
}

// maxAttempts bounds how often a request is recomputed after commits that
// another process's writes refused.
const maxAttempts = 8

func (w *Writer) takeRetries() []*request {
	w.mu.Lock()
	defer w.mu.Unlock()
	rs := w.retries
	w.retries = nil
	for _, r := range rs {
		r.result, r.err = nil, nil
		if r.idem != nil {
			r.idem.Status, r.idem.Body, r.idem.Replayed = 0, nil, false
		}
	}
	return rs
}

func (w *Writer) failRetries(err error) {
	for _, r := range w.takeRetries() {
		r.err = err
		close(r.done)
	}
}

// A preparer is a store that can begin the work of a batch's commit that
// needs nothing from the database (compressing, encoding) before the
// batch's turn: the writer calls PrepareCommit with each batch once it is
// applied, while the batch before it still commits, then Commit with the
// same batch, unchanged.
type preparer interface{ PrepareCommit(b *pb.Batch) }

// pending is an applied batch on its way to the store.
type pending struct {
	tx        *Tx
	reqs      []*request
	epoch     uint64
	err       error         // set when the batch must not be committed
	barrier   chan struct{} // a barrier, not a batch: closed when reached
	committed chan struct{} // closed when the commit stage is done with it
}

func (w *Writer) barrier(commits chan<- *pending) {
	b := &pending{barrier: make(chan struct{})}
	commits <- b
	<-b.barrier
}

// commitLoop is the commit stage: it writes batches in order and
// acknowledges their requests. After a failed commit it fails every later
// batch of the same epoch too, since those were applied on top of it.
func (w *Writer) commitLoop(commits <-chan *pending, done chan<- struct{}) {
	defer close(done)
	failedEpoch := uint64(0)
	failed, conflicted := false, false
	for b := range commits {
		if b.barrier != nil {
			close(b.barrier)
			continue
		}
		err := b.err
		if err == nil && failed && b.epoch == failedEpoch {
			err = &pb.Error{Code: pb.ErrUnavailable, Message: "an earlier ledger commit failed; retry"}
		}
		if err == nil && !b.tx.batch.Empty() {
			if cerr := w.commit(b); cerr != nil {
				failed, failedEpoch = true, b.epoch
				conflicted = errors.Is(cerr, pb.ErrStoreConflict)
				err = w.commitFailed(cerr, conflicted, len(b.reqs))
			}
		}
		if err == nil {
			w.mu.Lock()
			w.stats.Batches++
			w.stats.BatchHist[bucket(BatchBuckets[:], len(b.reqs))]++
			w.stats.Ops += int64(len(b.reqs))
			w.stats.Transfers += int64(len(b.tx.batch.Transfers))
			w.mu.Unlock()
		}
		w.acknowledge(b, err, err != nil && conflicted && b.epoch == failedEpoch)
	}
}

// commit writes b's batch to the store and counts the time it took.
func (w *Writer) commit(b *pending) error {
	t0 := time.Now()
	err := w.cfg.Store.Commit(context.Background(), &b.tx.batch)
	took := time.Since(t0)
	w.mu.Lock()
	w.stats.CommitTime += took
	if err == nil {
		w.stats.CommitHist[bucket(CommitBuckets[:], took)]++
	}
	w.mu.Unlock()
	return err
}

// commitFailed logs a commit of ops operations that failed with err,
// poisons the caches, and returns the error its requests get. A batch
// refused by a concurrent writer (conflicted) is only logged at debug:
// it is recomputed.
func (w *Writer) commitFailed(err error, conflicted bool, ops int) error {
	if conflicted {
		w.log.Debug("ledger batch refused by a concurrent writer; recomputing it", "err", err, "ops", ops)
	} else {
		w.log.Error("ledger commit failed; batch rejected", "err", err, "ops", ops)
	}
	w.poisoned.Store(true)
	if conflicted {
		return &pb.Error{Code: pb.ErrUnavailable, Message: "other servers kept changing the same accounts; retry with the same Idempotency-Key"}
	}
	return fmt.Errorf("couldn't commit ledger batch: %w", err)
}

// acknowledge ends b's requests with err (nil once committed) and tells
// the apply stage that b is done. With retry set, nothing of b was
// written because another process changed what it was computed from: a
// request with attempts left runs again on fresh state instead.
func (w *Writer) acknowledge(b *pending, err error, retry bool) {
	requeued := false
	for _, r := range b.reqs {
		if retry && r.attempts < maxAttempts {
			r.attempts++
			w.mu.Lock()
			w.retries = append(w.retries, r)
			w.mu.Unlock()
			requeued = true
			continue
		}
		if err != nil {
			r.result, r.err = nil, err
			if r.idem != nil {
				r.idem.Status, r.idem.Body, r.idem.Replayed = 0, nil, false
			}
		} else if r.claim != nil {
			r.claim.state.Store(r.claimed)
		}
		close(r.done)
	}
	close(b.committed)
	if requeued {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// drainAfterClose fails requests that raced Close into the queue.
func (w *Writer) drainAfterClose() {
	for {
		select {
		case r := <-w.queue:
			if r != nil {
				r.err = ErrClosed
				close(r.done)
			}
		default:
			return
		}
	}
}

var errStopped = &pb.Error{Code: pb.ErrLedgerStopped, Message: "the ledger writer has stopped; see the server log"}

func (w *Writer) stop(err error) {
	w.mu.Lock()
	if w.stopped == nil {
		w.stopped = err
	}
	w.mu.Unlock()
}

// apply runs reqs' operations on the in-memory state and returns the batch
// to commit.
func (w *Writer) apply(reqs []*request) *pending {
	ctx := context.Background()
	b := &pending{reqs: reqs, epoch: w.epoch, committed: make(chan struct{})}
	if w.Err() != nil {
		b.err = errStopped
		return b
	}
	tx := &Tx{w: w, ctx: ctx, now: w.cfg.Clock.Now().UTC(), undo: w.undo[:0],
		changed: map[int64]*pb.AccountChange{}, found: map[int64]pb.Account{}, usageChanged: map[usageKey]*pb.UsageChange{}}
	// Every op is over at the end (runOp empties the log after each, and
	// clears what it held, so that the array keeps nothing alive).
	defer func() { w.undo, tx.undo = tx.undo[:0], nil }()
	if prev := w.inflight; prev != nil && prev.tx != nil && prev.err == nil {
		select {
		case <-prev.committed: // the store has it, or it failed and so will this batch
		default:
			tx.prev = &prev.tx.batch
		}
	}
	b.tx = tx
	w.lookupIdempotency(ctx, reqs)
	for _, r := range reqs {
		if r.claim != nil && !w.spendClaim(tx, r) {
			continue
		}
		if r.err != nil || (r.idem != nil && r.idem.Replayed) {
			continue
		}
		r.result, r.err = w.runOp(tx, r.op)
		if r.idem != nil && r.idem.Render != nil {
			r.idem.Status, r.idem.Body = r.idem.Render(r.result, r.err)
			if r.idem.Status >= 500 || errors.As(r.err, new(unstored)) {
				// A server fault is not an answer: the retry should run again.
				continue
			}
			stored := r.idem.Body
			if r.idem.Seal != nil {
				stored = r.idem.Seal(stored)
			}
			// The writer's own row, added after the op ended: nothing undoes it.
			tx.batch.Idempotency = append(tx.batch.Idempotency, pb.IdempotencyRecord{
				Caller: r.idem.Caller, Key: r.idem.Key, RequestHash: r.idem.Hash,
				Status: r.idem.Status, Body: stored, CreatedAt: tx.now,
			})
		}
	}
	if err := tx.checkInvariants(w.shared == nil); err != nil {
		w.log.Error("ledger invariant broken; the writer stops", "err", err)
		if w.cfg.PanicOnInvariant {
			panic(err)
		}
		w.stop(err)
		b.err = errStopped
		return b
	}
	for id, c := range tx.changed {
		if *c == (pb.AccountChange{}) {
			continue // every change to it was undone
		}
		tx.batch.Accounts = append(tx.batch.Accounts, *w.accountsByID[id])
		tx.batch.AccountChanges = append(tx.batch.AccountChanges, *c)
	}
	for k, c := range tx.usageChanged {
		if *c == (pb.UsageChange{}) {
			continue
		}
		tx.batch.Usage = append(tx.batch.Usage, *w.usage[k])
		tx.batch.UsageChanges = append(tx.batch.UsageChanges, *c)
	}
	return b
}

// lookupIdempotency finds, with one store query for the whole batch, the
// requests whose key was used before: those are answered from the store
// (or refused, when the request differs) and do not run.
func (w *Writer) lookupIdempotency(ctx context.Context, reqs []*request) {
	var keys []pb.IdempotencyKey
	for _, r := range reqs {
		if r.idem != nil {
			keys = append(keys, pb.IdempotencyKey{Caller: r.idem.Caller, Key: r.idem.Key})
		}
	}
	if len(keys) == 0 {
		return
	}
	recs, err := w.cfg.Store.LookupIdempotency(ctx, keys)
	found := make(map[pb.IdempotencyKey]*pb.IdempotencyRecord, len(recs))
	for i := range recs {
		found[pb.IdempotencyKey{Caller: recs[i].Caller, Key: recs[i].Key}] = &recs[i]
	}
	seen := make(map[pb.IdempotencyKey]bool, len(keys))
	for _, r := range reqs {
		if r.idem == nil {
			continue
		}
		k := pb.IdempotencyKey{Caller: r.idem.Caller, Key: r.idem.Key}
		switch rec := found[k]; {
		case err != nil:
			r.err = fmt.Errorf("couldn't look up idempotency keys: %w", err)
		case seen[k]:
			r.err = ErrIdempotencyRunning
		case rec == nil:
		case rec.RequestHash != r.idem.Hash:
			r.err = ErrIdempotencyConflict
		default:
			r.idem.Status, r.idem.Body, r.idem.Replayed = rec.Status, rec.Body, true
		}
		seen[k] = true
	}
}

// runOp runs one op; a panic in it fails that op alone after undoing what it
// did, so one bad request cannot take the batch down.
func (w *Writer) runOp(tx *Tx, op Op) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			tx.rollback(0, nil)
			w.log.Error("ledger operation panicked", "panic", p)
			result, err = nil, fmt.Errorf("ledger operation panicked: %v", p)
		}
		// The op is over: its effects stay, so nothing is left to undo.
		clear(tx.undo)
		tx.undo = tx.undo[:0]
	}()
	return op(tx)
}

// takeID returns the next account or transfer ID, reserving a new block
// from a shared store when the current one is used up.
func (w *Writer) takeID(ctx context.Context, transfer bool) (int64, error) {
	next, limit := &w.nextAccount, &w.accountLimit
	if transfer {
		next, limit = &w.nextTransfer, &w.transferLimit
	}
	if *next >= *limit {
		a, t, err := w.shared.ReserveIDs(ctx)
		if err != nil {
			return 0, fmt.Errorf("couldn't reserve ledger IDs: %w", err)
		}
		first := a
		if transfer {
			first = t
		}
		*next, *limit = first, first+pb.IDBlock
	}
	id := *next
	*next++
	return id, nil
}

// cachesFull reports whether a cache has grown past the limit and must be
// dropped (at a barrier, when everything it holds is committed).
func (w *Writer) cachesFull() bool {
	l := w.cfg.CacheLimit
	return len(w.accounts) > l || len(w.holds) > l || len(w.payments) > l || len(w.usage) > l || len(w.mandates) > l
}

// Submit is a convenience for Do without idempotency.
func (w *Writer) Submit(ctx context.Context, op Op) (any, error) { return w.Do(ctx, nil, op) }
