package cli

import (
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
)

// FuzzReadStatement: any file either reads or is refused with an error;
// what reads holds only known types and currencies, amounts in range and
// signed by type, and an ID.
func FuzzReadStatement(f *testing.F) {
	f.Add("payment_id,type,amount,currency\npay_a,capture,1250,USD\npay_a,refund,-2.50,USD\n")
	f.Add("\ufeffReference,Amount,Type,Currency,Date\n\"a,b\",12.50,charge,eur,2026-12-01\n")
	f.Add("source_id,type,amount,currency\nre_1,fee,9223372036854775807,JPY\n")
	f.Fuzz(func(t *testing.T, in string) {
		rows, idCol, err := readStatement(strings.NewReader(in))
		if err != nil {
			return
		}
		if idCol == "" {
			t.Fatal("rows without an ID column")
		}
		for _, r := range rows {
			if r.id == "" || pb.ValidateCurrency(r.currency, "") != nil || r.amount > pb.MaxAmount || r.amount < -pb.MaxAmount ||
				(r.typ == pb.SettlementCapture) != (r.amount >= 0) && r.amount != 0 {
				t.Fatalf("a row read wrongly: %+v", r)
			}
			if _, ok := map[string]bool{pb.SettlementCapture: true, pb.SettlementRefund: true, pb.SettlementDisputeRefund: true, pb.SettlementFee: true}[r.typ]; !ok {
				t.Fatalf("type %q", r.typ)
			}
		}
	})
}
