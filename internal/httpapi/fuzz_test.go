package httpapi_test

import (
	"context"
	"encoding/json"
	"github.com/paybound/paybound/internal/tlog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/sqlite"
)

// FuzzCreatePayment sends arbitrary bodies to POST /v1/payments: every
// answer is a 201, a 402 decline, or a 4xx with a coded JSON error, and the
// ledger stays sound.
func FuzzCreatePayment(f *testing.F) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true})
	if err != nil {
		f.Fatal(err)
	}
	logKey, _, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		f.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: st, Ledger: w, OperatorKey: service.NewAPIKey(pb.RoleOperator), LogKey: logKey, Sandbox: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { svc.Close(); w.Close(); st.Close() })
	op := pb.Principal{Role: pb.RoleOperator, ID: "operator"}
	u := svc.CreateUser(ctx, op, nil, "fuzz").Value.(*service.NewUser)
	m := svc.CreateMerchant(ctx, op, nil, "shop", "").Value.(*service.NewMerchant)
	svc.Topup(ctx, pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}, nil, 1_000_000, "USD")
	h := httpapi.New(svc, nil)

	for _, s := range []string{
		`{"amount":100,"currency":"USD","merchant_id":"` + m.ID + `"}`,
		`{"amount":100,"currency":"USD","merchant_id":"` + m.ID + `","capture_method":"manual","metadata":{"a":"b"}}`,
		`{"amount":1e3,"currency":"USD"}`, `{"amount":-1}`, `{`, `[]`, `null`, `{"amount":9223372036854775807,"currency":"JPY","merchant_id":"mch_"}`,
		`{"authorization_expires_at":"2026-13-45T99:00:00Z"}`, `{"metadata":{"":""}}`, "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		req := httptest.NewRequest("POST", "/v1/payments", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+u.APIKey)
		req.Header.Set("Idempotency-Key", "fuzz-"+strconv.Itoa(n))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
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
		if r, err := ledger.Verify(ctx, st); err != nil || !r.OK {
			t.Fatalf("ledger after %q: %+v %v", body, r, err)
		}
	})
}
