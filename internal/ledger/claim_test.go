package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/sqlite"
)

// gatedStore holds each Commit while hold is set, until release gets a
// value, and counts the commits.
type gatedStore struct {
	*sqlite.Store
	hold    atomic.Bool
	held    chan struct{} // a held commit started
	release chan struct{}
	commits atomic.Int32
}

func (g *gatedStore) Commit(ctx context.Context, b *pb.Batch) error {
	g.commits.Add(1)
	if g.hold.Load() {
		g.held <- struct{}{}
		<-g.release
	}
	return g.Store.Commit(ctx, b)
}

func newClaimWriter(t *testing.T) (*ledger.Writer, *gatedStore) {
	t.Helper()
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := &gatedStore{Store: sq, held: make(chan struct{}), release: make(chan struct{})}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); sq.Close() })
	return w, st
}

// addUser is an op that adds user id, and counts its runs.
func addUser(id string, runs *atomic.Int32) ledger.Op {
	return func(tx *ledger.Tx) (any, error) {
		runs.Add(1)
		tx.AddUser(pb.User{ID: id, Name: "u"})
		return id, nil
	}
}

// A nonce claimed by a request's operation is spent in the operation's own
// batch (one commit for both); a replay of it does not run its operation,
// gets ErrNonceUsed, and binds no idempotency key; an operation that fails
// still spends its nonce.
func TestNonceClaimSpentWithTheOperation(t *testing.T) {
	w, st := newClaimWriter(t)
	ctx := context.Background()
	n := pb.Nonce{KeyID: "key_1", Nonce: "n1", Expires: time.Now().Add(time.Hour)}

	var runs atomic.Int32
	c := ledger.NewNonceClaim(n)
	before := st.commits.Load()
	if v, err := w.Do(ledger.WithNonceClaim(ctx, c), nil, addUser("usr_1", &runs)); err != nil || v != "usr_1" {
		t.Fatalf("first use: %v, %v", v, err)
	}
	if !c.Spent() || c.Used() || runs.Load() != 1 {
		t.Fatalf("first use: spent %v, used %v, %d runs", c.Spent(), c.Used(), runs.Load())
	}
	if got := st.commits.Load() - before; got != 1 {
		t.Fatalf("%d commits for the nonce and its operation; want 1", got)
	}
	if seen, err := st.NonceSeen(ctx, n); err != nil || !seen {
		t.Fatalf("nonce stored: %v, %v", seen, err)
	}
	// A later Do under the same context finds the claim settled: it runs
	// as any operation does.
	if _, err := w.Do(ledger.WithNonceClaim(ctx, c), nil, addUser("usr_2", &runs)); err != nil || runs.Load() != 2 {
		t.Fatalf("second op of the request: %v, %d runs", err, runs.Load())
	}

	// The replay, under an Idempotency-Key never used: refused, and the key
	// stays free.
	replay := ledger.NewNonceClaim(n)
	idem := &ledger.Idem{Caller: "usr_1", Key: "k1", Render: func(any, error) (int, []byte) { return 201, []byte(`{}`) }}
	if _, err := w.Do(ledger.WithNonceClaim(ctx, replay), idem, addUser("usr_3", &runs)); !errors.Is(err, ledger.ErrNonceUsed) {
		t.Fatalf("replay: %v; want ErrNonceUsed", err)
	}
	if !replay.Used() || replay.Spent() || runs.Load() != 2 || idem.Body != nil || idem.Replayed {
		t.Fatalf("replay: used %v, spent %v, %d runs, idem %+v", replay.Used(), replay.Spent(), runs.Load(), idem)
	}
	if recs, err := st.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: "usr_1", Key: "k1"}}); err != nil || len(recs) != 0 {
		t.Fatalf("the replay's key was stored: %+v, %v", recs, err)
	}
	if u, err := st.User(ctx, "usr_3"); err == nil {
		t.Fatalf("the replay's operation ran: %+v", u)
	}

	// An operation that fails still spends its nonce.
	n2 := pb.Nonce{KeyID: "key_1", Nonce: "n2", Expires: time.Now().Add(time.Hour)}
	c2 := ledger.NewNonceClaim(n2)
	boom := errors.New("declined")
	if _, err := w.Do(ledger.WithNonceClaim(ctx, c2), nil, func(*ledger.Tx) (any, error) { return nil, boom }); err != boom {
		t.Fatalf("failing op: %v", err)
	}
	if !c2.Spent() {
		t.Fatal("a failed operation's nonce was not spent")
	}
	if _, err := w.Do(ledger.WithNonceClaim(ctx, ledger.NewNonceClaim(n2)), nil, addUser("usr_4", &runs)); !errors.Is(err, ledger.ErrNonceUsed) {
		t.Fatalf("replay of the failed op: %v", err)
	}

	// A retry of a stored request (its key, a fresh nonce) spends the
	// nonce and gets the stored answer; the same retry with a used nonce
	// gets no answer but the refusal.
	render := func(any, error) (int, []byte) { return 201, []byte(`{"n":1}`) }
	if _, err := w.Do(ctx, &ledger.Idem{Caller: "usr_1", Key: "k2", Render: render}, addUser("usr_5", &runs)); err != nil {
		t.Fatal(err)
	}
	n3 := pb.Nonce{KeyID: "key_1", Nonce: "n3", Expires: time.Now().Add(time.Hour)}
	c3 := ledger.NewNonceClaim(n3)
	retry := &ledger.Idem{Caller: "usr_1", Key: "k2", Render: render}
	if _, err := w.Do(ledger.WithNonceClaim(ctx, c3), retry, addUser("usr_6", &runs)); err != nil || !retry.Replayed || string(retry.Body) != `{"n":1}` || !c3.Spent() {
		t.Fatalf("retry: %v, replayed %v %s, spent %v", err, retry.Replayed, retry.Body, c3.Spent())
	}
	stale := &ledger.Idem{Caller: "usr_1", Key: "k2", Render: render}
	if _, err := w.Do(ledger.WithNonceClaim(ctx, ledger.NewNonceClaim(n3)), stale, addUser("usr_7", &runs)); !errors.Is(err, ledger.ErrNonceUsed) || stale.Replayed || stale.Body != nil {
		t.Fatalf("retry with a used nonce: %v, replayed %v %s", err, stale.Replayed, stale.Body)
	}
	if runs.Load() != 3 {
		t.Fatalf("%d runs; want 3 (usr_1, usr_2, usr_5)", runs.Load())
	}
}

// A replay whose original is in the batch still committing is refused by
// the writer (ErrNonceUsed), not by the store at commit, which would fail
// every request of the replay's batch.
func TestNonceReplayOfTheBatchInFlight(t *testing.T) {
	w, st := newClaimWriter(t)
	ctx := context.Background()
	n := pb.Nonce{KeyID: "key_1", Nonce: "n1", Expires: time.Now().Add(time.Hour)}
	var runs atomic.Int32
	do := func(ctx context.Context, op ledger.Op) chan error {
		ch := make(chan error, 1)
		go func() { _, err := w.Do(ctx, nil, op); ch <- err }()
		return ch
	}
	waitQueue := func(depth int) {
		for w.QueueDepth() != depth {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // for the writer to apply what it took
	}
	st.hold.Store(true)
	filler := do(ctx, addUser("usr_0", &runs))
	<-st.held // batch 1 commits, held
	original := do(ledger.WithNonceClaim(ctx, ledger.NewNonceClaim(n)), addUser("usr_1", &runs))
	waitQueue(0) // batch 2, the original, is applied and waits to commit
	replay := do(ledger.WithNonceClaim(ctx, ledger.NewNonceClaim(n)), addUser("usr_2", &runs))
	bystander := do(ctx, addUser("usr_3", &runs))
	waitQueue(2)
	st.release <- struct{}{} // batch 1 ends; batch 2 starts committing
	<-st.held                // and is held while batch 3 (replay, bystander) is applied
	st.hold.Store(false)
	time.Sleep(20 * time.Millisecond)
	st.release <- struct{}{}
	for name, ch := range map[string]chan error{"filler": filler, "original": original, "bystander": bystander} {
		if err := <-ch; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := <-replay; !errors.Is(err, ledger.ErrNonceUsed) {
		t.Fatalf("replay: %v; want ErrNonceUsed", err)
	}
	if runs.Load() != 3 || w.Err() != nil {
		t.Fatalf("%d runs (want 3), writer %v", runs.Load(), w.Err())
	}
}
