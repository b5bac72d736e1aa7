package x402_test

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// killedSellerKey is the payers' key in TestTabSellerKilled, known to the
// seller's process too.
var killedSellerKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

const killedPrice = 100

// killedSeller is a seller on store whose facilitator opens every deposit.
func killedSeller(store x402.TabStore) http.Handler {
	pub := killedSellerKey.Public().(ed25519.PublicKey)
	mw := &x402.Middleware{Network: "paybound:local", PayTo: "mch_01jd0000000000000000000000",
		Facilitator: &tabOpener{payerKey: base64.RawURLEncoding.EncodeToString(pub)},
		Price:       x402.Fixed(killedPrice, "USD", ""), Tabs: &x402.Tabs{Store: store, MinDeposit: 10_000}}
	return mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tock") }))
}

// recorder keeps the last payment header answered 200.
type recorder struct {
	mu     sync.Mutex
	base   http.RoundTripper
	header string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := r.base.RoundTrip(req)
	if h := req.Header.Get(wire.HeaderPaymentSignature); err == nil && h != "" && res.StatusCode == 200 {
		r.mu.Lock()
		r.header = h
		r.mu.Unlock()
	}
	return res, err
}

// TestTabSellerKilled kills a seller's process (SIGKILL) while payers pay
// it with tabs as fast as they can, then starts a seller over its voucher
// file: every voucher a payer got an answer for is there (the seller has
// at most the one voucher more that was saved but not answered), a
// replayed voucher earns nothing, and the payers go on with their tabs.
func TestTabSellerKilled(t *testing.T) {
	if path := os.Getenv("X402_KILLED_SELLER"); path != "" {
		runKilledSeller(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	path := filepath.Join(t.TempDir(), "tabs.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestTabSellerKilled$")
	cmd.Env = append(os.Environ(), "X402_KILLED_SELLER="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url = url[:len(url)-1]
	const payers = 8
	trs := make([]*x402.Transport, payers)
	recs := make([]*recorder, payers)
	served := make([]int, payers)
	var progress atomic.Int64
	var wg sync.WaitGroup
	for i := range payers {
		recs[i] = &recorder{base: &http.Transport{}}
		trs[i] = &x402.Transport{Base: recs[i], Payer: x402.Payer{Key: killedSellerKey, Mandate: "mdt_killed"}, Asset: "USD",
			MaxPerRequest: killedPrice, MaxPerHour: 1 << 50, TabDeposit: killedPrice * 100_000}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: trs[i]}
			for {
				res, err := hc.Get(url + "/tick")
				if err != nil {
					return // the seller is gone
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("payer %d: %d", i, res.StatusCode)
					return
				}
				served[i]++
				progress.Add(1)
			}
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); progress.Load() < 300 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // somewhere in a group's write or sync
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	cmd.Wait()

	st, err := x402.OpenFileTabStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	saved, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]x402.SellerTab{}
	for _, tb := range saved {
		byID[tb.ID] = tb
	}
	total := 0
	for i, tr := range trs {
		tabs := tr.Tabs()
		if len(tabs) != 1 {
			t.Fatalf("payer %d has %d tabs", i, len(tabs))
		}
		paid, kept := tabs[0], byID[tabs[0].ID]
		if int(paid.Vouchers) != served[i] {
			t.Fatalf("payer %d: %d answers, %d vouchers recorded", i, served[i], paid.Vouchers)
		}
		if kept.Charged < paid.Charged || kept.Charged > paid.Charged+killedPrice ||
			(kept.Charged == paid.Charged && paid.Vouchers > 0 && kept.ChainHead != paid.ChainHead) {
			t.Fatalf("payer %d: answered for %d (chain %s), the seller kept %d (chain %s)", i, paid.Charged, paid.ChainHead, kept.Charged, kept.ChainHead)
		}
		total += served[i]
	}
	if total < 300 {
		t.Fatalf("only %d requests were served before the kill: the test did not test", total)
	}

	// A seller over the same file: a replayed voucher earns nothing; the
	// payers go on from where they were answered.
	srv := httptest.NewServer(killedSeller(st))
	defer srv.Close()
	for i, tr := range trs {
		req, _ := http.NewRequest("GET", srv.URL+"/tick", nil)
		req.Header.Set(wire.HeaderPaymentSignature, recs[i].header)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 402 {
			t.Fatalf("payer %d's replayed voucher: %d", i, res.StatusCode)
		}
		res, err = (&http.Client{Transport: tr}).Get(srv.URL + "/tick")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("payer %d after the restart: %d", i, res.StatusCode)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, _ := x402.OpenFileTabStore(path)
	defer st2.Close()
	again, _ := st2.Load()
	for _, tb := range again {
		for i, tr := range trs {
			if paid := tr.Tabs()[0]; paid.ID == tb.ID && (tb.Charged != paid.Charged || tb.ChainHead != paid.ChainHead) {
				t.Fatalf("payer %d paid %d (chain %s); the seller kept %d (chain %s)", i, paid.Charged, paid.ChainHead, tb.Charged, tb.ChainHead)
			}
		}
	}
}

// runKilledSeller is the seller's process: it serves until it is killed.
func runKilledSeller(path string) {
	st, err := x402.OpenFileTabStore(path)
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println("http://" + ln.Addr().String())
	srv := &http.Server{Handler: killedSeller(st)}
	panic(srv.Serve(ln))
}
