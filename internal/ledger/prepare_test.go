package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/sqlite"
)

// preparingStore records the batches the writer prepares and commits.
type preparingStore struct {
	*sqlite.Store
	mu        sync.Mutex
	prepared  map[*pb.Batch]bool
	commits   int
	unprepped int // batches committed without a PrepareCommit first
}

func (p *preparingStore) PrepareCommit(b *pb.Batch) {
	p.mu.Lock()
	p.prepared[b] = true
	p.mu.Unlock()
	p.Store.PrepareCommit(b)
}

func (p *preparingStore) Commit(ctx context.Context, b *pb.Batch) error {
	p.mu.Lock()
	p.commits++
	if !p.prepared[b] {
		p.unprepped++
	}
	delete(p.prepared, b)
	p.mu.Unlock()
	return p.Store.Commit(ctx, b)
}

// The writer hands a store that prepares commits each batch to
// PrepareCommit before Commit, the same batch, and the batches' records
// are written (idempotency bodies included) as without it.
func TestWriterPreparesCommits(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := &preparingStore{Store: sq, prepared: map[*pb.Batch]bool{}}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); sq.Close() })
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			idem := &ledger.Idem{Caller: "usr_1", Key: fmt.Sprint("k", i),
				Render: func(any, error) (int, []byte) { return 201, []byte(fmt.Sprintf(`{"n":%d}`, i)) }}
			if _, err := w.Do(ctx, idem, func(tx *ledger.Tx) (any, error) {
				tx.AddUser(pb.User{ID: fmt.Sprint("usr_", i), Name: "u"})
				return nil, nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.commits == 0 || st.unprepped != 0 || len(st.prepared) != 0 {
		t.Fatalf("%d commits, %d of them not prepared, %d prepared and not committed", st.commits, st.unprepped, len(st.prepared))
	}
	rec, err := sq.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: "usr_1", Key: "k7"}})
	if err != nil || len(rec) != 1 || string(rec[0].Body) != `{"n":7}` {
		t.Fatalf("k7's record: %+v, %v", rec, err)
	}
}
