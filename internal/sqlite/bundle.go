package sqlite

import (
	"fmt"
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
