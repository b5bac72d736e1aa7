package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/agentid"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/httpapi"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
)

// fixture is the API over a fresh SQLite store, with a user funded with
// 10,000.00 USD and a merchant.
type fixture struct {
	h                 http.Handler
	st                *sqlite.Store
	userKey, merchant string
	merchantKey       string
	seq               int // of the Idempotency-Keys do makes
}

func newFixture(tb testing.TB) *fixture {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "api.db"))
	if err != nil {
		tb.Fatal(err)
	}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true})
	if err != nil {
		tb.Fatal(err)
	}
	logKey, _, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		tb.Fatal(err)
	}
	opKey := service.NewAPIKey(pb.RoleOperator)
	rc, err := riskctl.NewControl(st, riskctl.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: st, Ledger: w, OperatorKey: opKey, Sandbox: true,
		Mandates: mandates.NewPolicy(), Risk: rc})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close(); w.Close(); st.Close() })
	log, err := translog.New(svc, st, translog.Config{Key: logKey})
	if err != nil {
		tb.Fatal(err)
	}
	op := pb.Principal{Role: pb.RoleOperator, ID: "operator"}
	u := svc.CreateUser(ctx, op, nil, "fuzz").Value.(*service.NewUser)
	m := svc.CreateMerchant(ctx, op, nil, "shop", "").Value.(*service.NewMerchant)
	svc.Topup(ctx, pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}, nil, 1_000_000, "USD")
	ids := agentid.New(svc, st, nil)
	cfm, err := confirm.New(svc, st, confirm.Config{OperatorKey: opKey})
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{h: httpapi.New(svc, nil, ids, ids, disputes.New(svc, log, st), cfm, log, mandates.New(svc, st, mandates.Config{}), riskctl.New(svc, rc)), st: st, userKey: u.APIKey, merchant: m.ID, merchantKey: m.APIKey}
}

// FuzzCreatePayment sends arbitrary bodies to POST /v1/payments: every
// answer is a 201, a 402 decline, or a 4xx with a coded JSON error, and the
// ledger stays sound.
func FuzzCreatePayment(f *testing.F) {
	ctx := context.Background()
	fx := newFixture(f)
	for _, s := range []string{
		`{"amount":100,"currency":"USD","merchant_id":"` + fx.merchant + `"}`,
		`{"amount":100,"currency":"USD","merchant_id":"` + fx.merchant + `","capture_method":"manual","metadata":{"a":"b"}}`,
		`{"amount":1e3,"currency":"USD"}`, `{"amount":-1}`, `{`, `[]`, `null`, `{"amount":9223372036854775807,"currency":"JPY","merchant_id":"mch_"}`,
		`{"authorization_expires_at":"2026-13-45T99:00:00Z"}`, `{"metadata":{"":""}}`, "\x00\xff",
		`{"amount":1,"currency":"USD","merchant_id":"` + fx.merchant + `","amount":250}`,
		`{"amount":1,"currency":"USD","MERCHANT_ID":"` + fx.merchant + `","metadata":{"a":"1","a":"\ud800"}}`,
	} {
		f.Add([]byte(s))
	}
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		req := httptest.NewRequest("POST", "/v1/payments", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+fx.userKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "fuzz-"+strconv.Itoa(n))
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
			return
		case http.StatusBadRequest, http.StatusPaymentRequired:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var e struct {
			Error struct{ Type, Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("error body for %q: %s", body, rec.Body)
		}
		if r, err := ledger.Verify(ctx, fx.st); err != nil || !r.OK {
			t.Fatalf("ledger after %q: %+v %v", body, r, err)
		}
	})
}
