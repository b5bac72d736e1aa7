package riskctl_test

import (
	"strings"
	"testing"

	"github.com/paybound/paybound/internal/riskctl"
)

// TestParseRiskConfig: a risk configuration is one JSON object of known
// fields in range; anything else is refused with what is wrong.
func TestParseRiskConfig(t *testing.T) {
	c, err := riskctl.ParseRiskConfig([]byte(`{"review_at": 50, "per_minute": 20}`))
	if err != nil || c.ReviewAt != 50 || c.PerMinute != 20 || c.BlockAt != 80 {
		t.Fatalf("a partial config: %+v, %v", c, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"review_at": 50} {"block_at": 1}`, `{"review_at": 50} x`, `{"review_at": 50`,
		`{"reveiw_at": 50}`, `{"review_at": 0}`, `{"review_at": 90, "block_at": 80}`, `{"block_at": 102}`,
		`{"amount_outlier_ratio": 9000000000000000000}`, `{"amount_outlier_mads": 0}`, `{"drain_percent": 101}`,
		`{"large_new_payee": -1}`, `{"per_minute": 0}`, `{"per_day": 2000000000000}`, `{"min_history": 201}`,
		`{"new_merchant_hours": -1}`, `{"review_at": "50"}`,
	} {
		if c, err := riskctl.ParseRiskConfig([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "risk config:") {
			t.Errorf("ParseRiskConfig(%q) = %+v, %v; want a risk config error", bad, c, err)
		}
	}
}
