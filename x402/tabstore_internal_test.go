package x402

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybound/paybound/x402/wire"
)

// memDisk is a simulated disk: what was written reaches durable only when
// synced; a crash keeps what was synced and, of the writes after it, an
// arbitrary prefix, the last of them cut short anywhere.
type memDisk struct {
	mu       sync.Mutex
	data     []byte // what the process sees
	durable  []byte // what a crash keeps for sure
	unsynced []diskWrite
	failSync error
	syncs    int
}

type diskWrite struct {
	off int64
	b   []byte
}

func (d *memDisk) WriteAt(b []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := off + int64(len(b)); n > int64(len(d.data)) {
		d.data = append(d.data, make([]byte, n-int64(len(d.data)))...)
	}
	copy(d.data[off:], b)
	d.unsynced = append(d.unsynced, diskWrite{off, bytes.Clone(b)})
	return len(b), nil
}

func (d *memDisk) ReadAt(b []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	n := copy(b, d.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (d *memDisk) SyncData(bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failSync != nil {
		return d.failSync
	}
	d.durable, d.unsynced = bytes.Clone(d.data), nil
	d.syncs++
	return nil
}

func (d *memDisk) Size() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int64(len(d.data)), nil
}

func (d *memDisk) Truncate(n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.data = d.data[:n]
	d.unsynced = append(d.unsynced, diskWrite{off: -n}) // a truncation, kept or not by a crash
	return nil
}

func (d *memDisk) Close() error { return nil }

// crash is the disk as a power cut at this instant may leave it.
func (d *memDisk) crash(rnd *rand.Rand) *memDisk {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := bytes.Clone(d.durable)
	k := rnd.IntN(len(d.unsynced) + 1)
	for i, w := range d.unsynced[:k] {
		b := w.b
		if w.off < 0 {
			img = img[:min(int64(len(img)), -w.off)]
			continue
		}
		if i == k-1 {
			b = b[:rnd.IntN(len(b)+1)] // the last write cut short
		}
		if n := w.off + int64(len(b)); n > int64(len(img)) {
			img = append(img, make([]byte, n-int64(len(img)))...)
		}
		copy(img[w.off:], b)
	}
	return &memDisk{data: img, durable: bytes.Clone(img)}
}

func (d *memDisk) load(t *testing.T) map[string]SellerTab {
	t.Helper()
	s := &FileTabStore{last: map[string]SellerTab{}}
	d.mu.Lock()
	r := bytes.NewReader(bytes.Clone(d.data))
	d.mu.Unlock()
	ts, err := s.load(r)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]SellerTab{}
	for _, tb := range ts {
		m[tb.ID] = tb
	}
	return m
}

// testTab is tab i's state after n vouchers of 100 atomic units.
func testTab(i int, n int64) SellerTab {
	id := fmt.Sprintf("tab_%026d", i)
	head := wire.ChainStart(id)
	return SellerTab{ID: id, PayerKey: "key" + strconv.Itoa(i), Balance: 1 << 40, Charged: n * 100, Vouchers: n,
		ChainHead: head[:8] + strconv.FormatInt(n, 10), ExpiresAt: 1767225600,
		Voucher: wire.Voucher{ChannelID: id, MaxClaimableAmount: strconv.FormatInt(n*100, 10), Index: n,
			Preimage: fmt.Sprintf("%064x", n), Commitment: &wire.Commitment{Anchor: strings.Repeat("0", 64), Unit: "100", Length: 1 << 20, Signature: "sig"}}}
}

// TestFileTabStoreSurvivesPowerCuts saves the vouchers of several tabs
// concurrently and cuts the power at random instants: every voucher whose
// Save returned is in the store after the cut, exactly as saved, and a
// store reopened over what was left keeps working across the next cut
// (its first group overwrites a record cut short, not appends to it).
func TestFileTabStoreSurvivesPowerCuts(t *testing.T) {
	const tabs = 8
	rnd := rand.New(rand.NewPCG(1, 2))
	disk := &memDisk{}
	var next [tabs]int64 // the next voucher of each tab
	for round := range 12 {
		s, err := openTabStore("", disk)
		if err != nil {
			t.Fatal(err)
		}
		before := disk.load(t)
		for i := range tabs {
			if tb, ok := before[testTab(i, 0).ID]; ok {
				next[i] = tb.Vouchers + 1
			} else {
				next[i] = 1
			}
		}
		var acked [tabs]atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		for i := range tabs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := next[i]; !stop.Load(); n++ {
					tb := testTab(i, n)
					if round%3 == 1 && n%50 == 0 {
						tb.Claimed = n%100 == 0 // now and then a full record
					}
					if err := s.Save(tb); err != nil {
						if !errors.Is(err, ErrTabStoreClosed) {
							t.Error(err)
						}
						return
					}
					acked[i].Store(n)
				}
			}()
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
			var n int64
			for i := range tabs {
				n += max(acked[i].Load()-next[i], 0)
			}
			if n >= 40 {
				break
			}
		}
		time.Sleep(time.Duration(rnd.IntN(2000)) * time.Microsecond)
		var sure [tabs]int64
		for i := range tabs {
			sure[i] = acked[i].Load()
		}
		img := disk.crash(rnd)
		stop.Store(true)
		wg.Wait()
		s.Close()
		got := img.load(t)
		for i := range tabs {
			tb, ok := got[testTab(i, 0).ID]
			if sure[i] == 0 && !ok {
				continue
			}
			if !ok || tb.Vouchers < sure[i] {
				t.Fatalf("round %d: tab %d has %d vouchers after the cut; %d were acknowledged", round, i, tb.Vouchers, sure[i])
			}
			want := testTab(i, tb.Vouchers)
			want.Claimed = tb.Claimed
			if fmt.Sprint(bare(tb)) != fmt.Sprint(bare(want)) || *tb.Voucher.Commitment != *want.Voucher.Commitment {
				t.Fatalf("round %d: tab %d loaded as\n%+v\nwant\n%+v", round, i, tb, want)
			}
		}
		disk = img
	}
	var saved int64
	for _, tb := range disk.load(t) {
		saved += tb.Vouchers
	}
	if saved < 100 {
		t.Fatalf("only %d vouchers saved in all: the test did not test", saved)
	}
}

// bare is t without its commitment pointer, for comparing and printing.
func bare(t SellerTab) SellerTab { t.Voucher.Commitment = nil; return t }

// TestFileTabStoreFailedSync checks that a failed sync fails the Saves of
// its group and every later one (the file's state is unknown), so nothing
// is served as paid that might not be on disk.
func TestFileTabStoreFailedSync(t *testing.T) {
	disk := &memDisk{}
	s, err := openTabStore("", disk)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(testTab(1, 1)); err != nil {
		t.Fatal(err)
	}
	disk.mu.Lock()
	disk.failSync = errors.New("EIO")
	disk.mu.Unlock()
	if err := s.Save(testTab(1, 2)); err == nil {
		t.Fatal("a Save whose sync failed returned nil")
	}
	disk.mu.Lock()
	disk.failSync = nil
	disk.mu.Unlock()
	if err := s.Save(testTab(1, 3)); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("a Save after a failed sync: %v", err)
	}
	if tb := disk.crash(rand.New(rand.NewPCG(3, 4))).load(t)[testTab(1, 0).ID]; tb.Vouchers != 1 {
		t.Fatalf("after the failure the store holds %d vouchers", tb.Vouchers)
	}
}

// TestFileTabStoreFile runs the store on a real file: one sync per group,
// voucher records after a tab's first, the file trimmed at Close, and a
// file written by the previous format (full lines only, the last one cut
// short) read and appended to.
func TestFileTabStoreFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tabs.jsonl")
	var old []byte
	for n := int64(1); n <= 3; n++ {
		old, _ = appendFullRecord(old, ptr(testTab(1, n)))
	}
	old = append(old, `{"id":"tab_cut`...)
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFileTabStore(path)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := s.Load()
	if err != nil || len(ts) != 1 || ts[0].Vouchers != 3 {
		t.Fatalf("loaded %+v, %v", ts, err)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := int64(4); n <= 200; n++ {
				if err := s.Save(testTab(i, n)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if bytes.IndexByte(b, 0) >= 0 || !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("the file keeps its preallocated space or a cut record after Close: %q", b[max(0, len(b)-64):])
	}
	if full := bytes.Count(b, []byte(`"payerKey"`)); full != 3+3 {
		t.Fatalf("%d full records, want the 3 old ones and one per new tab (tab 1 goes on with voucher records)", full)
	}
	s2, _ := OpenFileTabStore(path)
	defer s2.Close()
	ts, _ = s2.Load()
	if len(ts) != 4 {
		t.Fatalf("%d tabs", len(ts))
	}
	for _, tb := range ts {
		var i int
		fmt.Sscanf(tb.ID, "tab_%d", &i)
		if fmt.Sprint(bare(tb)) != fmt.Sprint(bare(testTab(i, 200))) {
			t.Fatalf("reloaded %+v", tb)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestVoucherRecordCoversSellerTab fails when SellerTab or Voucher gains
// a field: sameButCount and the voucher record must then learn of it, or
// a voucher record would drop it.
func TestVoucherRecordCoversSellerTab(t *testing.T) {
	if n, v := reflect.TypeFor[SellerTab]().NumField(), reflect.TypeFor[wire.Voucher]().NumField(); n != 9 || v != 5 {
		t.Fatalf("SellerTab has %d fields and Voucher %d (9 and 5 when sameButCount was written): update sameButCount and appendVoucherRecord", n, v)
	}
}
