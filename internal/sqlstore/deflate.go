package sqlstore

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Some values are stored compressed, behind deflatedMark, when that is
// smaller: idempotency responses and SQLite's payments' risk columns
// packed against a preset dictionary (Compact, compact.go), and the SQLite
// log's bundles of entries deflated (Deflate).
//
// A stored idempotency response is kept for at least a day and written with
// every request that carries a key, which on the ACP's write path is every
// POST: its bytes were most of what a batch wrote (an ACP session's response
// is 1–2.5 KB, much of it the same capabilities and totals every time).
// A bundle of log entries is a commit's entries, which share their keys,
// actors and subjects: it deflates to about a quarter.
//
// The mark is two bytes a value may begin with (a bundle's first entry
// length can be 0x007a), so a value that does begin with deflatedMark is
// always stored deflated: every stored value reads back to exactly the
// bytes given, which is what a replay and a log's hash promise. Deflate is
// lossless, and Compact's dictionary never changes, so what is stored now
// stays readable by every later version.
var deflatedMark = []byte{0, 'z'}

// dictMark begins a value that Compact packed against jsonDict: deflatedMark,
// then a byte that no deflate stream begins with (its block type bits are
// 11, which RFC 1951 reserves), so that neither a value stored before it
// (raw ones never begin with deflatedMark) nor one Deflate stores is read
// as one.
var dictMark = []byte{0, 'z', 0b110}

// deflateMin is the size under which compressing a value is not worth it.
const deflateMin = 128

// maxInflated bounds a stored value's inflated size: a response is at most
// a few hundred KB (a list's page), a bundle 64 KiB, so a larger one is a
// damaged row, not a reason to allocate without bound.
const maxInflated = 16 << 20

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

var inflaters = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// Deflate is body as stored: deflated behind deflatedMark when that is
// smaller or body begins with the mark, else body itself. Inflate reverses
// it. It suits values of a few KB and more (the log's bundles): flate's
// Reset alone clears about half a megabyte of tables.
func Deflate(body []byte) []byte {
	marked := bytes.HasPrefix(body, deflatedMark)
	if len(body) < deflateMin && !marked {
		return body
	}
	var buf bytes.Buffer
	buf.Grow(len(deflatedMark) + len(body)/2)
	buf.Write(deflatedMark)
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&buf)
	// Writing to a bytes.Buffer cannot fail.
	w.Write(body)
	w.Close()
	if buf.Len() >= len(body) && !marked {
		return body
	}
	return buf.Bytes()
}

// Inflate is the value stored as b (by Deflate or Compact).
func Inflate(b []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(b, dictMark):
		return unpack(b[len(dictMark):])
	case !bytes.HasPrefix(b, deflatedMark):
		return b, nil
	}
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(b[len(deflatedMark):]), nil); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't inflate a stored value: %w", err)
	}
	if len(out) > maxInflated {
		return nil, errors.New("a stored value inflates past its limit")
	}
	return out, nil
}
