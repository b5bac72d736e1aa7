package x402_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// BenchmarkTabInProcess measures what paying with a tab costs in CPU,
// without sockets: each op is a request through a payer's Transport into
// a seller's Middleware (an in-memory round trip), with a voucher the
// seller checks and saves. The deposit's facilitator is a local one that
// opens the tab; the rest is the real code. It is the ceiling that HTTP
// then lowers: 1e9 / ns/op is requests per second on all cores.
//
//	go test ./x402 -run '^$' -bench TabInProcess
func BenchmarkTabInProcess(b *testing.B) {
	for _, c := range []struct {
		name  string
		store func(b *testing.B) x402.TabStore
	}{
		{"memory", func(*testing.B) x402.TabStore { return memoryStore{} }},
		{"file", func(b *testing.B) x402.TabStore {
			st, err := x402.OpenFileTabStore(filepath.Join(b.TempDir(), "tabs.jsonl"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			pub, priv, _ := ed25519.GenerateKey(nil)
			const price = 100
			mw := &x402.Middleware{Network: "paybound:local", PayTo: "mch_01jd0000000000000000000000",
				Facilitator: &tabOpener{payerKey: base64.RawURLEncoding.EncodeToString(pub)},
				Price:       x402.Fixed(price, "USD", ""), Tabs: &x402.Tabs{Store: c.store(b), MinDeposit: 10_000}}
			h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"quote":"the early bird pays the worm"}`)
			}))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				hc := &http.Client{Transport: &x402.Transport{Base: inMemory{h}, Payer: x402.Payer{Key: priv, Mandate: "mdt_bench"},
					Asset: "USD", MaxPerRequest: price, MaxPerHour: 1 << 50, TabDeposit: price * 100_000}}
				for pb.Next() {
					res, err := hc.Get("http://seller.test/quote")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("%d %s", res.StatusCode, res.Header.Get(wire.HeaderPaymentRequired))
						return
					}
				}
			})
		})
	}
}

// inMemory is a RoundTripper that serves requests with h in process.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// tabOpener is a facilitator that opens every deposit's tab (for the
// deposit's value, with the payer's key), as Paybound's does once the
// deposit's hold is made.
type tabOpener struct{ payerKey string }

func (f *tabOpener) Verify(context.Context, *x402.FacilitatorRequest) (*x402.VerifyResponse, error) {
	return &x402.VerifyResponse{IsValid: true}, nil
}

func (f *tabOpener) Settle(_ context.Context, req *x402.FacilitatorRequest) (*x402.SettlementResponse, error) {
	tp, err := wire.ParseTabPayload(req.PaymentPayload.Payload)
	if err != nil || tp.Type != wire.TabDeposit {
		return &x402.SettlementResponse{ErrorReason: wire.ReasonInvalidPayload}, nil
	}
	st, _ := json.Marshal(wire.TabState{ChannelID: tp.Voucher.ChannelID, ChargedCumulativeAmount: "0",
		Balance: tp.Deposit.Authorization.Value, PayerKey: f.payerKey, ExpiresAt: time.Now().Add(time.Hour).Unix()})
	return &x402.SettlementResponse{Success: true, Network: req.PaymentRequirements.Network, Transaction: "pay_bench",
		Amount: strconv.Itoa(0), Extensions: map[string]json.RawMessage{wire.ExtensionTab: st}}, nil
}

// memoryStore keeps nothing: what the durable save costs is the
// difference with the file store.
type memoryStore struct{}

func (memoryStore) Load() ([]x402.SellerTab, error) { return nil, nil }
func (memoryStore) Save(x402.SellerTab) error       { return nil }
