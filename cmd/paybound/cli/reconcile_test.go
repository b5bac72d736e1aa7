package cli

import (
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestReadStatement: columns in any order and case (a BOM, quoted cells,
// aliases), decimal or minor-unit amounts, refunds of either sign; and a
// precise error, naming the line, for what can't be read.
func TestReadStatement(t *testing.T) {
	rows, idCol, err := readStatement(strings.NewReader("\ufeffAmount,\"Reference\",TYPE,currency,Created_At,payment_id\n" +
		"12.50,\"order 1, table 4\",charge,usd,2026-12-01T10:00:00Z,pay_a\n" +
		"-300,order 1,Refund,JPY,2026-12-02,pay_b\n\n" +
		"300,order 2,chargeback,JPY,,pay_c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if idCol != "payment_id" {
		t.Fatalf("matched on %s, want payment_id (before reference)", idCol)
	}
	want := []stmtRow{{line: 2, id: "pay_a", typ: pb.SettlementCapture, amount: 1250, currency: "USD", date: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{line: 3, id: "pay_b", typ: pb.SettlementRefund, amount: -300, currency: "JPY", date: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{line: 5, id: "pay_c", typ: pb.SettlementDisputeRefund, amount: -300, currency: "JPY"}}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	for _, c := range []struct{ in, want string }{
		{"type,amount,currency\ncapture,1,USD\n", "needs an ID column"},
		{"payment_id,amount,currency\npay_a,1,USD\n", "needs a type column"},
		{"payment_id,payment,type,amount,currency\n", "names payment_id twice"},
		{"payment_id,type,amount,currency\npay_a,gift,1,USD\n", "line 2: type \"gift\""},
		{"payment_id,type,amount,currency\npay_a,capture,1.005,USD\n", "line 2: amount"},
		{"payment_id,type,amount,currency\npay_a,capture,1,US\n", "line 2: currency"},
		{"payment_id,type,amount,currency\n,capture,1,USD\n", "line 2: payment_id is empty"},
		{"payment_id,type,amount,currency,date\npay_a,capture,1,USD,monday\n", "line 2: date"},
	} {
		if _, _, err := readStatement(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("readStatement(%q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

// TestReconcile: sums per (ID, type) are compared; a row whose type alone
// differs is one difference, not two; a currency that differs is named;
// fees count once the statement has any.
func TestReconcile(t *testing.T) {
	rep := &pb.SettlementReport{Rows: []pb.SettlementRow{
		{Type: pb.SettlementCapture, Amount: 1000, Currency: "USD", PaymentID: "pay_a", SourceID: "pay_a"},
		{Type: pb.SettlementFee, Amount: -30, Currency: "USD", PaymentID: "pay_a", SourceID: "pay_a"},
		{Type: pb.SettlementRefund, Amount: -388, FeeReturned: 12, Currency: "USD", PaymentID: "pay_a", SourceID: "re_1"},
		{Type: pb.SettlementRefund, Amount: -100, Currency: "USD", PaymentID: "pay_a", SourceID: "re_2"},
		{Type: pb.SettlementCapture, Amount: 500, Currency: "EUR", PaymentID: "pay_b", SourceID: "pay_b"},
		{Type: pb.SettlementDisputeRefund, Amount: -700, Currency: "USD", PaymentID: "pay_c", SourceID: "re_3"},
	}}
	stmt := []stmtRow{
		{line: 2, id: "pay_a", typ: pb.SettlementCapture, amount: 1000, currency: "USD"},
		{line: 3, id: "pay_a", typ: pb.SettlementRefund, amount: -500, currency: "USD"}, // two refunds, summed
		{line: 4, id: "pay_b", typ: pb.SettlementCapture, amount: 500, currency: "USD"},
		{line: 5, id: "pay_c", typ: pb.SettlementRefund, amount: -700, currency: "USD"},
	}
	res := reconcile(stmt, "payment_id", rep)
	if res.Matched != 2 || !res.FeesSkipped || len(res.Findings) != 2 {
		t.Fatalf("%+v", res)
	}
	if f := res.Findings[0]; f.Kind != "differs" || f.ID != "pay_b" || !strings.Contains(f.Detail, "currency: USD in the statement, EUR in Paybound") {
		t.Errorf("finding 0: %+v", f)
	}
	if f := res.Findings[1]; f.Kind != "differs" || f.ID != "pay_c" || !strings.Contains(f.Detail, "type: refund in the statement, dispute_refund in Paybound") {
		t.Errorf("finding 1: %+v", f)
	}
	// With a fee row, fees count: pay_a's is right, and so is re_1's fee
	// returned; matched on source_id, a refund of the two is missing.
	stmt = []stmtRow{{line: 2, id: "pay_a", typ: pb.SettlementFee, amount: -30, currency: "USD"},
		{line: 3, id: "re_1", typ: pb.SettlementRefund, amount: -400, currency: "USD"},
		{line: 4, id: "re_1", typ: pb.SettlementFee, amount: 12, currency: "USD"}}
	res = reconcile(stmt, "source_id", rep)
	if res.FeesSkipped || res.Matched != 3 || len(res.Findings) != 4 {
		t.Fatalf("%+v", res)
	}
	for _, f := range res.Findings {
		if f.Kind != "missing_in_statement" {
			t.Errorf("finding %+v, want missing_in_statement", f)
		}
	}
}
