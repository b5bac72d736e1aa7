package x402

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// FileTabStore is a TabStore in a file of JSON lines: a tab's full state
// when it is first saved or anything but its count changes, and a short
// voucher record (charged, count, index, preimage, chain head) for each
// voucher after that.
//
// Durability is a group commit: Save queues its record and waits; one
// writer goroutine writes every record queued meanwhile with one write and
// syncs them with one sync, then releases all their Saves. A seller
// serving many tabs at once pays one sync per group, not per request. The
// queue is bounded (maxGroupRecords records, maxGroupBytes bytes): past
// it, Save waits for the writer to take the group.
//
// The file grows in preallocated, zero-filled chunks (fileChunk bytes,
// synced once when added), so that a group's sync writes only its data
// (fdatasync on Linux), not the file's size. After a crash, the records
// of a group that was being written may be cut short or, being never
// acknowledged, present or not: Load skips what does not parse, and
// OpenFileTabStore writes after the last complete record.
//
// A write or sync that fails leaves the file in an unknown state (a failed
// fsync may have dropped the data it could not write), so the store
// refuses every later Save: a seller then answers 503 and charges nothing
// until it is restarted over the file.
type FileTabStore struct {
	path string
	f    logFile
	wake chan struct{} // 1-buffered: a group is waiting for the writer
	done chan struct{} // closed when the writer has stopped

	mu     sync.Mutex
	room   *sync.Cond // signalled when the writer takes a group
	buf    []byte     // the open group's records
	n      int        // and their number
	group  *syncGroup // nil when no record waits
	last   map[string]SellerTab
	failed error
	closed bool

	// the writer's own: where the next record goes, and the end of the
	// zero-filled space
	off, end int64
	spare    []byte
}

// syncGroup is the records one write and one sync make durable; done is
// closed once they are (or err says why not).
type syncGroup struct {
	done chan struct{}
	err  error
}

// logFile is the file under a FileTabStore: an *os.File, or a simulated
// disk in tests.
type logFile interface {
	io.WriterAt
	io.ReaderAt
	// SyncData makes what was written durable; grown says the file's
	// size changed since the last sync.
	SyncData(grown bool) error
	Size() (int64, error)
	Truncate(size int64) error
	Close() error
}

const (
	maxGroupRecords = 4096
	maxGroupBytes   = 4 << 20
	fileChunk       = 1 << 20
)

// ErrTabStoreClosed is returned by Save on a closed FileTabStore.
var ErrTabStoreClosed = errors.New("x402: the tab store is closed")

// OpenFileTabStore opens (or creates) the store at path. It starts the
// store's writer; Close stops it.
func OpenFileTabStore(path string) (*FileTabStore, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("x402: couldn't open the tab store: %w", err)
	}
	s, err := openTabStore(path, osFile{f})
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func openTabStore(path string, f logFile) (*FileTabStore, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("x402: couldn't open the tab store: %w", err)
	}
	off, err := endOfRecords(f, size)
	if err != nil {
		return nil, fmt.Errorf("x402: couldn't read the tab store: %w", err)
	}
	s := &FileTabStore{path: path, f: f, wake: make(chan struct{}, 1), done: make(chan struct{}),
		last: map[string]SellerTab{}, off: off, end: size}
	s.room = sync.NewCond(&s.mu)
	go s.writer()
	return s, nil
}

// endOfRecords is the offset just after the file's last complete record
// (its last newline): what follows it is zeros, or a record cut short by
// a crash, never acknowledged, which the next group overwrites.
func endOfRecords(f io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for hi := size; hi > 0; {
		lo := max(hi-int64(len(buf)), 0)
		n, err := f.ReadAt(buf[:hi-lo], lo)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == hi-lo) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return lo + int64(i) + 1, nil
		}
		hi = lo
	}
	return 0, nil
}

// tabRecord is a line of the file: a tab's full state, or (Kind
// "voucher") the fields an accepted voucher changes.
type tabRecord struct {
	SellerTab
	Kind     string `json:"kind,omitempty"`
	Index    int64  `json:"index,omitempty"`
	Preimage string `json:"preimage,omitempty"`
}

const voucherRecord = "voucher"

// Load reads every tab's latest state. Lines that do not parse (a group
// cut short by a crash, never acknowledged) and the zero-filled space are
// skipped. It also makes the store write the next voucher of each tab
// loaded as a voucher record.
func (s *FileTabStore) Load() ([]SellerTab, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return s.load(f)
}

func (s *FileTabStore) load(r io.Reader) ([]SellerTab, error) {
	latest := map[string]*SellerTab{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(splitRecords)
	for sc.Scan() {
		var rec tabRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.ID == "" {
			continue
		}
		if rec.Kind == voucherRecord {
			t := latest[rec.ID]
			if t == nil {
				continue
			}
			t.Charged, t.Vouchers, t.ChainHead = rec.Charged, rec.Vouchers, rec.ChainHead
			t.Voucher.Index, t.Voucher.Preimage = rec.Index, rec.Preimage
			t.Voucher.MaxClaimableAmount = strconv.FormatInt(rec.Charged, 10)
			continue
		}
		if rec.Kind != "" {
			continue
		}
		if latest[rec.ID] == nil {
			order = append(order, rec.ID)
		}
		t := rec.SellerTab
		latest[rec.ID] = &t
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]SellerTab, 0, len(order))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range order {
		out = append(out, *latest[id])
		s.last[id] = *latest[id]
	}
	return out, nil
}

// splitRecords splits the file at newlines and skips the zero bytes of
// its preallocated space (JSON never holds a raw zero byte).
func splitRecords(data []byte, atEOF bool) (int, []byte, error) {
	skip := 0
	for skip < len(data) && (data[skip] == 0 || data[skip] == '\n') {
		skip++
	}
	data = data[skip:]
	if i := bytes.IndexAny(data, "\n\x00"); i >= 0 {
		return skip + i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return skip + len(data), data, nil
	}
	return skip, nil, nil
}

// Save queues t's record and returns once it is synced with its group.
func (s *FileTabStore) Save(t SellerTab) error {
	s.mu.Lock()
	for s.n >= maxGroupRecords || len(s.buf) >= maxGroupBytes {
		if s.failed != nil || s.closed {
			break
		}
		s.room.Wait()
	}
	switch {
	case s.failed != nil:
		s.mu.Unlock()
		return fmt.Errorf("x402: the tab store failed earlier: %w", s.failed)
	case s.closed:
		s.mu.Unlock()
		return ErrTabStoreClosed
	}
	prev, ok := s.last[t.ID]
	var err error
	if ok && sameButCount(&prev, &t) {
		s.buf = appendVoucherRecord(s.buf, &t)
	} else {
		s.buf, err = appendFullRecord(s.buf, &t)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.last[t.ID] = t
	s.n++
	g := s.group
	if g == nil {
		g = &syncGroup{done: make(chan struct{})}
		s.group = g
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // the writer is already called, and takes this group after
	}
	<-g.done
	return g.err
}

// sameButCount reports whether t differs from prev only in what a
// voucher changes, so that a voucher record saves it.
func sameButCount(prev, t *SellerTab) bool {
	pc, tc := prev.Voucher.Commitment, t.Voucher.Commitment
	return prev.PayerKey == t.PayerKey && prev.Balance == t.Balance && prev.ExpiresAt == t.ExpiresAt &&
		prev.Claimed == t.Claimed && prev.Voucher.ChannelID == t.Voucher.ChannelID &&
		(pc == tc || pc != nil && tc != nil && *pc == *tc) &&
		t.Voucher.MaxClaimableAmount == strconv.FormatInt(t.Charged, 10)
}

func appendFullRecord(b []byte, t *SellerTab) ([]byte, error) {
	j, err := json.Marshal(t)
	if err != nil {
		return b, fmt.Errorf("x402: couldn't encode a tab: %w", err)
	}
	return append(append(b, j...), '\n'), nil
}

// appendVoucherRecord appends t's voucher record: written directly (the
// bytes json.Marshal would write) when its strings are plain, as a
// Paybound tab ID and hex preimages and chain heads are.
func appendVoucherRecord(b []byte, t *SellerTab) []byte {
	if !plainJSON(t.ID) || !plainJSON(t.Voucher.Preimage) || !plainJSON(t.ChainHead) {
		j, _ := json.Marshal(map[string]any{"kind": voucherRecord, "id": t.ID, "charged": t.Charged, "vouchers": t.Vouchers,
			"index": t.Voucher.Index, "preimage": t.Voucher.Preimage, "chainHead": t.ChainHead})
		return append(append(b, j...), '\n')
	}
	b = append(b, `{"kind":"voucher","id":"`...)
	b = append(b, t.ID...)
	b = append(b, `","charged":`...)
	b = strconv.AppendInt(b, t.Charged, 10)
	b = append(b, `,"vouchers":`...)
	b = strconv.AppendInt(b, t.Vouchers, 10)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, t.Voucher.Index, 10)
	b = append(b, `,"preimage":"`...)
	b = append(b, t.Voucher.Preimage...)
	b = append(b, `","chainHead":"`...)
	b = append(b, t.ChainHead...)
	return append(b, "\"}\n"...)
}

// writer writes and syncs the queued records group by group until the
// store is closed and nothing waits.
func (s *FileTabStore) writer() {
	defer close(s.done)
	var zeros []byte
	for range s.wake {
		for {
			s.mu.Lock()
			g := s.group
			if g == nil {
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			// the group's buffer is the writer's until the next group:
			// Saves append to the other one
			buf := s.buf
			s.buf, s.n, s.group, s.spare = s.spare[:0], 0, nil, nil
			s.room.Broadcast()
			s.mu.Unlock()
			err := s.failedErr()
			if err == nil {
				grown := false
				if need := s.off + int64(len(buf)); need > s.end {
					// zero-fill a new chunk: the group's sync then also
					// records the file's new size, and the next ones
					// overwrite allocated space
					newEnd := (need + fileChunk - 1) / fileChunk * fileChunk
					if zeros == nil {
						zeros = make([]byte, fileChunk)
					}
					for at := s.end; at < newEnd && err == nil; at += int64(len(zeros)) {
						_, err = s.f.WriteAt(zeros[:min(int64(len(zeros)), newEnd-at)], at)
					}
					s.end, grown = newEnd, true
				}
				if err == nil {
					_, err = s.f.WriteAt(buf, s.off)
				}
				if err == nil {
					err = s.f.SyncData(grown)
				}
				if err == nil {
					s.off += int64(len(buf))
				} else {
					s.mu.Lock()
					s.failed = err
					s.room.Broadcast()
					s.mu.Unlock()
				}
			}
			g.err = err
			close(g.done)
			if cap(buf) <= maxGroupBytes*2 {
				s.spare = buf
			}
		}
	}
}

func (s *FileTabStore) failedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Close writes what is queued, stops the writer, trims the file's unused
// preallocated space and closes it. Saves after Close fail.
func (s *FileTabStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.room.Broadcast()
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake is pending: the writer sees closed after it
	}
	<-s.done
	var errs []error
	if s.failedErr() == nil && s.off < s.end {
		if err := s.f.Truncate(s.off); err == nil {
			errs = append(errs, s.f.SyncData(true))
		}
	}
	errs = append(errs, s.f.Close())
	return errors.Join(errs...)
}

// osFile is a logFile on an *os.File.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) SyncData(grown bool) error {
	if grown {
		return f.Sync()
	}
	return fdatasync(f.File)
}
