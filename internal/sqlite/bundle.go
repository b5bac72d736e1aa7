package sqlite

import (
	"fmt"
	"slices"
	"sync"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// The log's entries are stored in bundles (0005_log_bundles.sql): the
// entries a commit appends, a row per bundle rather than per entry, which
// spares the single writer a B-tree insert per entry. A bundle holds at
// most pb.MaxBundleEntries entries and, unless one entry is larger, at most
// maxBundleBytes of them, which bounds what reading one entry reads.
const (
	maxBundleBytes = 64 << 10
)

// logBundle is one row of log_bundles: the entries from index first up to
// (not including) size, and their subjects, each after its 2-byte
// big-endian length (the encoding of C2SP tlog-tiles entry bundles), and
// each list stored through sqlstore.Deflate.
type logBundle struct {
	first, size       int64
	entries, subjects []byte
}

// bundle packs recs, the entries from index first on, into bundles.
func bundle(first int64, recs []pb.LogRecord) ([]logBundle, error) {
	var out []logBundle
	for i := range recs {
		body, subject := recs[i].Body, recs[i].Subject
		if len(body) > pb.MaxLogEntryBytes || len(subject) > 1<<16-1 {
			return nil, fmt.Errorf("couldn't store log entry %d: %d bytes about a subject of %d; at most %d and %d",
				first+int64(i), len(body), len(subject), pb.MaxLogEntryBytes, 1<<16-1)
		}
		if n := len(out); n == 0 || out[n-1].size-out[n-1].first == pb.MaxBundleEntries ||
			len(out[n-1].entries)+2+len(body) > maxBundleBytes {
			out = append(out, logBundle{first: first + int64(i), size: first + int64(i)})
		}
		b := &out[len(out)-1]
		b.entries = pb.AppendBundleItem(b.entries, body)
		b.subjects = pb.AppendBundleItem(b.subjects, []byte(subject))
		b.size++
	}
	return out, nil
}

// packed is a batch's log entries as pack stores them, numbered from 0.
type packed struct {
	bundles []logBundle
	err     error
}

// pack bundles recs and deflates each bundle's entries and subjects (a
// commit's entries share their keys, actors and subjects, so a bundle
// deflates to about a quarter: that much less for the commit to write and
// fsync). It works on a goroutine of its own, so that compressing runs on
// another core while the writer inserts the batch's rows.
func pack(recs []pb.LogRecord) <-chan packed {
	ch := make(chan packed, 1)
	if len(recs) == 0 {
		ch <- packed{}
		return ch
	}
	go func() {
		bs, err := bundle(0, recs)
		for i := range bs {
			bs[i].entries = sqlstore.Deflate(bs[i].entries)
			bs[i].subjects = sqlstore.Deflate(bs[i].subjects)
		}
		ch <- packed{bs, err}
	}()
	return ch
}

// unbundle splits a stored list of a bundle of n entries.
func unbundle(stored []byte, n int) ([][]byte, error) {
	b, err := sqlstore.Inflate(stored)
	if err != nil {
		return nil, err
	}
	return pb.SplitBundle(b, n)
}

// idempotencyBodies deflates the bodies of recs (sqlstore.IdempotencyBody)
// on a goroutine of its own, like pack, and returns a function that waits
// for them: deflating every response a batch answers is about a tenth of
// what the writer's commit stage spends on a checkout's batch otherwise.
func idempotencyBodies(recs []pb.IdempotencyRecord) func() [][]byte {
	if len(recs) == 0 {
		return func() [][]byte { return nil }
	}
	ch := make(chan [][]byte, 1)
	go func() {
		out := make([][]byte, len(recs))
		for i := range recs {
			out[i] = sqlstore.IdempotencyBody(&recs[i])
		}
		ch <- out
	}()
	return sync.OnceValue(func() [][]byte { return <-ch })
}

// riskColumns encodes the risk columns of b's new payments
// (sqlstore.RiskColumns) on a goroutine of its own, and returns what waits
// for them: payment i's are the values 2i and 2i+1, nil for a payment b
// only changes.
func riskColumns(b *pb.Batch) func() [][]byte {
	if len(b.Payments) == 0 {
		return func() [][]byte { return nil }
	}
	ch := make(chan [][]byte, 1)
	go func() {
		out := make([][]byte, 2*len(b.Payments))
		for i := range b.Payments {
			if b.PaymentVersions[i] == 0 {
				out[2*i], out[2*i+1] = sqlstore.RiskColumns(&b.Payments[i])
			}
		}
		ch <- out
	}()
	return sync.OnceValue(func() [][]byte { return <-ch })
}

// encoding is what a batch's commit writes that needs nothing from the
// database: its log bundles (pack), its idempotency bodies
// (idempotencyBodies) and its new payments' risk columns (riskColumns),
// made on goroutines of their own.
type encoding struct {
	b       *pb.Batch
	packing <-chan packed
	bodies  func() [][]byte
	risks   func() [][]byte
}

func encode(b *pb.Batch) encoding {
	return encoding{b: b, packing: pack(b.Log), bodies: idempotencyBodies(b.Idempotency), risks: riskColumns(b)}
}

// maxEncodings bounds the encodings kept for batches not yet committed. The
// ledger's writer applies one batch while it commits the one before, so it
// has two at most; one whose commit never comes (its writer failed) is
// dropped after a few more.
const maxEncodings = 4

// PrepareCommit begins encoding b, which Commit(b) will then find made or
// under way. The ledger's writer calls it as soon as it has applied b,
// while the batch before b still commits: Commit used to begin the
// encoding itself, and waited for the idempotency bodies for about a sixth
// of its time in bench payments (1 ms of a 6 ms commit). b must not change
// after.
func (s *Store) PrepareCommit(b *pb.Batch) {
	e := encode(b)
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if len(s.encodings) == maxEncodings {
		s.encodings = slices.Delete(s.encodings, 0, 1)
	}
	s.encodings = append(s.encodings, e)
}

// takePrepared returns b's encoding from PrepareCommit, or begins it.
func (s *Store) takePrepared(b *pb.Batch) encoding {
	s.prepMu.Lock()
	for i, e := range s.encodings {
		if e.b == b {
			s.encodings = slices.Delete(s.encodings, i, i+1)
			s.prepMu.Unlock()
			return e
		}
	}
	s.prepMu.Unlock()
	return encode(b)
}
