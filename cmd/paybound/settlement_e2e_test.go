package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestSettlementReportOverHTTP: after captures (one in part), a canceled
// hold, a refund, a dispute refunded by the merchant and one compensated
// by the platform, the merchant's report sums to the movement of its
// balance, in JSON and CSV; then reconcile finds what a statement misses,
// what it has that Paybound does not, and what differs, and agrees with a
// statement that is right.
func TestSettlementReportOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(m *Main) { m.Config.FeeBPS = 250 })
	from := time.Now().UTC().Add(-time.Second)
	before, _ := w.balance(w.merchKey, "USD")
	pay := func(amount int, manual bool) string {
		body := map[string]any{"amount": amount, "currency": "USD", "merchant_id": w.merch, "metadata": map[string]string{"reference": fmt.Sprintf("order-%d", amount)}}
		if manual {
			body["capture_method"] = "manual"
		}
		return w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", body)).str("id")
	}
	p1 := pay(10000, false)
	p2 := pay(5000, true)
	w.ok(200, w.call("POST", "/v1/payments/"+p2+"/capture", w.merchKey, "", map[string]any{"amount": 3000}))
	p3 := pay(2000, true)
	w.ok(200, w.call("POST", "/v1/payments/"+p3+"/cancel", w.merchKey, "", nil))
	re := w.ok(201, w.call("POST", "/v1/payments/"+p1+"/refunds", w.merchKey, "", map[string]any{"amount": 2500})).str("id")
	p4 := pay(4000, false)
	d := w.ok(201, w.call("POST", "/v1/payments/"+p4+"/disputes", w.userKey, "", map[string]any{"reason": "merchant_error"}))
	dr := w.ok(200, w.call("POST", "/v1/disputes/"+d.str("id")+"/resolve", w.op, "", map[string]any{"outcome": "refund_full", "liable_party": "merchant"}))
	p5 := pay(1000, false)
	d5 := w.ok(201, w.call("POST", "/v1/payments/"+p5+"/disputes", w.userKey, "", map[string]any{"reason": "unauthorized"}))
	w.ok(200, w.call("POST", "/v1/disputes/"+d5.str("id")+"/resolve", w.op, "", map[string]any{"outcome": "refund_full", "liable_party": "platform"}))
	after, _ := w.balance(w.merchKey, "USD")
	to := time.Now().UTC().Add(time.Second)

	q := url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}
	r := w.ok(200, w.call("GET", "/v1/reports/settlement?"+q.Encode(), w.merchKey, "", nil))
	var rep pb.SettlementReport
	if err := json.Unmarshal(r.raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Summary) != 1 || rep.Summary[0].Currency != "USD" || rep.Summary[0].Net != after-before {
		t.Fatalf("summary %+v; the merchant's balance moved by %d", rep.Summary, after-before)
	}
	sm := rep.Summary[0]
	// Captured 10000 + 3000 + 4000 + 1000, fees 2.5% of each, refunds 2500
	// and 4000 less the fee returned with them.
	if sm.Captures != 18000 || sm.Fees != -(250+75+100+25) || sm.DisputeRefunds != -(4000-100) || sm.Refunds != -(2500-62)-(4000-100) || sm.FeesReturned != 62+100 {
		t.Fatalf("summary: %+v", sm)
	}
	kinds := map[string]int{}
	for _, row := range rep.Rows {
		kinds[row.Type+" "+row.PaymentID]++
		if row.PaymentID == p3 {
			t.Errorf("the canceled hold is in the report: %+v", row)
		}
	}
	if kinds["dispute_refund "+p4] != 1 || kinds["refund "+p1] != 1 || kinds["capture "+p5] != 1 || kinds["fee "+p5] != 1 || len(rep.Rows) != 10 {
		t.Fatalf("rows: %v (the compensation of %s is the platform's, not the merchant's)", kinds, p5)
	}
	if last := rep.Rows[len(rep.Rows)-1]; last.Balance != sm.Net {
		t.Fatalf("the running balance ends at %d, the net is %d", last.Balance, sm.Net)
	}
	for _, row := range rep.Rows {
		if row.SourceID == dr.body["resolution"].(map[string]any)["refund_id"] && row.Type != "dispute_refund" {
			t.Fatalf("the dispute's refund is a %s row", row.Type)
		}
		if row.SourceID == re && (row.Amount != -(2500-62) || row.FeeReturned != 62 || row.Reference != "order-10000") {
			t.Fatalf("the refund's row: %+v", row)
		}
	}

	// CSV: a header and the same rows.
	q.Set("format", "csv")
	c := w.ok(200, w.call("GET", "/v1/reports/settlement?"+q.Encode(), w.merchKey, "", nil))
	recs, err := csv.NewReader(bytes.NewReader(c.raw)).ReadAll()
	if err != nil || !strings.HasPrefix(c.header.Get("Content-Type"), "text/csv") || len(recs) != len(rep.Rows)+1 || recs[0][0] != "created_at" ||
		!strings.Contains(c.header.Get("Content-Disposition"), "attachment") || !bytes.Contains(c.raw, []byte("\r\n")) {
		t.Fatalf("CSV: %v %v %d records\n%s", err, c.header, len(recs), c.raw)
	}

	// Bad requests: a precise code each.
	for _, b := range []struct {
		key, query  string
		status      int
		code, param string
	}{
		{w.merchKey, "to=" + url.QueryEscape(to.Format(time.RFC3339)), 400, "parameter_missing", "from"},
		{w.merchKey, "from=yesterday&to=" + url.QueryEscape(to.Format(time.RFC3339)), 400, "parameter_invalid", "from"},
		{w.merchKey, "from=2026-01-01T00:00:00Z&to=2027-02-01T00:00:00Z", 400, "parameter_invalid", "to"},
		{w.merchKey, "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "parameter_invalid", "to"},
		{w.merchKey, "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&format=xml", 400, "parameter_invalid", "format"},
		{w.userKey, "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", 403, "forbidden", ""},
	} {
		if r := w.call("GET", "/v1/reports/settlement?"+b.query, b.key, "", nil); r.status != b.status || r.errField("code") != b.code || r.errField("param") != b.param {
			t.Errorf("GET ?%s: %d %s, want %d %s (%s)", b.query, r.status, r.raw, b.status, b.code, b.param)
		}
	}

	// reconcile: a statement with a row missing, one that Paybound does not
	// have, and one whose amount differs.
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var good, bad strings.Builder
	good.WriteString("Currency,Amount,Type,Payment_ID,date\n") // any order, any case; decimal amounts; refunds positive
	bad.WriteString("payment_id,type,amount,currency\n")
	for _, row := range rep.Rows {
		if row.Type == "fee" {
			continue
		}
		typ := row.Type
		if typ == "dispute_refund" {
			typ = "chargeback"
		}
		whole := row.Amount - row.FeeReturned // a refund as the merchant made it
		fmt.Fprintf(&good, "USD,%s,%s,%s,%s\n", pb.FormatAmount(max(whole, -whole), "USD"), typ, row.PaymentID, row.CreatedAt.Format(time.RFC3339))
		switch row.PaymentID {
		case p2: // missing from the statement
		case p5:
			fmt.Fprintf(&bad, "%s,%s,%d,USD\n", row.PaymentID, typ, whole+1) // differs
		default:
			fmt.Fprintf(&bad, "%s,%s,%d,USD\n", row.PaymentID, typ, whole)
		}
	}
	bad.WriteString("pay_01kzzzzzzzzzzzzzzzzzzzzzzz,capture,999,USD\n") // not in Paybound
	period := []string{"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)}
	out, errOut, err := w.cli(w.merchKey, append([]string{"reconcile", write("bad.csv", bad.String()), "--server", w.base}, period...)...)
	if code := exitCode(io.Discard, err); code != 1 {
		t.Fatalf("reconcile of a statement that differs: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	for _, want := range [][]string{{"missing in statement", p2, "capture"}, {"missing in paybound", "pay_01kzzzzzzzzzzzzzzzzzzzzzzz", "capture", "line 7"},
		{"differs", p5, "capture", "amount: 1001 in the statement, 1000 in Paybound"}, {"4 matched, 3 differences"}} {
		if !hasLine(out, want...) {
			t.Errorf("reconcile's report has no line with %q:\n%s", want, out)
		}
	}
	out, errOut, err = w.cli(w.merchKey, "reconcile", write("good.csv", good.String()), "--json") // the period from its dates
	var res struct {
		Matched     int   `json:"matched"`
		FeesSkipped bool  `json:"fees_skipped"`
		Findings    []any `json:"findings"`
	}
	if jerr := json.Unmarshal([]byte(out), &res); err != nil || jerr != nil || res.Matched != 6 || !res.FeesSkipped || len(res.Findings) != 0 {
		t.Fatalf("reconcile of a right statement: %v %v %+v\n%s%s", err, jerr, res, out, errOut)
	}
	// It could not compare: exit 2.
	for _, args := range [][]string{
		{"reconcile", filepath.Join(dir, "none.csv"), "--from", "2026-01-01", "--to", "2026-01-02"},
		{"reconcile", write("noid.csv", "type,amount,currency\ncapture,1,USD\n"), "--from", "2026-01-01", "--to", "2026-01-02"},
		{"reconcile", write("badamount.csv", "payment_id,type,amount,currency\npay_x,capture,lots,USD\n"), "--from", "2026-01-01", "--to", "2026-01-02"},
		{"reconcile", write("nodates.csv", "payment_id,type,amount,currency\npay_x,capture,1,USD\n")},
	} {
		if _, errOut, err := w.cli(w.merchKey, args...); exitCode(io.Discard, err) != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, exitCode(io.Discard, err), errOut)
		}
	}
	if _, errOut, err := w.cli(w.userKey, append([]string{"reconcile", write("good2.csv", good.String())}, period...)...); exitCode(io.Discard, err) != 2 || !strings.Contains(errOut, "forbidden") {
		t.Errorf("reconcile with a user's key: exit %d, %q", exitCode(io.Discard, err), errOut)
	}
}

// hasLine reports whether a line of out holds every one of parts, in order.
func hasLine(out string, parts ...string) bool {
	for line := range strings.Lines(out) {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}
