package paybound

import (
	"testing"
	"time"
)

func breakfastMandate(t *testing.T, now time.Time) *Mandate {
	t.Helper()
	exp := now.Add(30 * 24 * time.Hour)
	m := &Mandate{ID: "mdt_1", UserID: "usr_1", AgentID: NewID(PrefixAgent, now),
		Description: "buy me breakfast on weekday mornings, at most 30 CNY each, 150 a week",
		Currency:    "CNY", MaxAmount: 3000, Budget: Budget{Amount: 15000, Period: PeriodWeek},
		Categories: []string{"food_and_drink"}, ExpiresAt: &exp, MaxPayments: 20, ConfirmAbove: 2500,
		Schedule: &Schedule{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "07:00", End: "10:00", TimeZone: "Asia/Shanghai"}}
	if err := m.Validate(now); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMandateChecks: each check refuses with its own code, in the order of
// the contract, and a payment inside every limit passes.
func TestMandateChecks(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	// Wednesday 2026-11-25 08:30 in Shanghai.
	now := time.Date(2026, 11, 25, 8, 30, 0, 0, sh)
	m := breakfastMandate(t, now.Add(-24*time.Hour))
	cafe := &Merchant{ID: NewID(PrefixMerchant, now), Category: "food_and_drink"}
	books := &Merchant{ID: NewID(PrefixMerchant, now), Category: "books"}
	key := m.PeriodKey(now)
	fresh := MandateUsage{PeriodKey: key}
	revoked, expired := now.Add(-time.Minute), now.Add(-time.Second)
	cases := []struct {
		name     string
		mutate   func(m *Mandate)
		agent    string
		amount   int64
		currency string
		merchant *Merchant
		at       time.Time
		usage    MandateUsage
		want     Code
	}{
		{name: "inside every limit", want: ""},
		{name: "other agent", agent: "agt_other", want: DeclineMandateNotForAgent},
		{name: "revoked", mutate: func(m *Mandate) { m.RevokedAt = &revoked }, want: DeclineMandateRevoked},
		{name: "expired", mutate: func(m *Mandate) { m.ExpiresAt = &expired }, want: DeclineMandateExpired},
		{name: "not yet valid", mutate: func(m *Mandate) { m.ValidFrom = now.Add(time.Hour) }, want: DeclineMandateNotYetValid},
		{name: "currency", currency: "USD", want: DeclineMandateCurrencyMismatch},
		{name: "above max_amount", amount: 3001, want: DeclineMandateAmountExceeded},
		{name: "budget used up", usage: MandateUsage{PeriodKey: key, Spent: 14000}, amount: 1001, want: DeclineMandateBudgetExhausted},
		{name: "budget exactly reached", usage: MandateUsage{PeriodKey: key, Spent: 14000}, amount: 1000, want: ""},
		{name: "last week's spending does not count", usage: MandateUsage{PeriodKey: "2026-W47", Spent: 15000}, want: ""},
		{name: "merchant category", merchant: books, want: DeclineMandateMerchant},
		{name: "merchant listed by ID", mutate: func(m *Mandate) { m.MerchantIDs = []string{books.ID} }, merchant: books, want: ""},
		{name: "too early", at: time.Date(2026, 11, 25, 6, 59, 0, 0, sh), want: DeclineMandateSchedule},
		{name: "end is exclusive", at: time.Date(2026, 11, 25, 10, 0, 0, 0, sh), want: DeclineMandateSchedule},
		{name: "Saturday", at: time.Date(2026, 11, 28, 8, 0, 0, 0, sh), want: DeclineMandateSchedule},
		{name: "schedule is the mandate's time zone", at: time.Date(2026, 11, 25, 0, 30, 0, 0, time.UTC), want: ""},
		{name: "max payments", usage: MandateUsage{PeriodKey: key, Payments: 20}, want: DeclineMandateMaxPayments},
		// Order: a payment failing several checks gets the first code.
		{name: "order: agent before currency", agent: "agt_other", currency: "USD", want: DeclineMandateNotForAgent},
		{name: "order: amount before budget", amount: 5000, usage: MandateUsage{PeriodKey: key, Spent: 15000}, want: DeclineMandateAmountExceeded},
		{name: "order: budget before merchant", merchant: books, usage: MandateUsage{PeriodKey: key, Spent: 15000}, want: DeclineMandateBudgetExhausted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mm := *m
			if c.mutate != nil {
				c.mutate(&mm)
			}
			agent, amount, cur, merch, at, usage := m.AgentID, int64(2000), "CNY", cafe, now, fresh
			if c.agent != "" {
				agent = c.agent
			}
			if c.amount != 0 {
				amount = c.amount
			}
			if c.currency != "" {
				cur = c.currency
			}
			if c.merchant != nil {
				merch = c.merchant
			}
			if !c.at.IsZero() {
				at = c.at
			}
			if c.usage != (MandateUsage{}) {
				usage = c.usage
			}
			if got := mm.Check(agent, amount, cur, merch, at, usage); got != c.want {
				t.Fatalf("Check = %q, want %q", got, c.want)
			}
		})
	}
	if m.NeedsConfirmation(2500) || !m.NeedsConfirmation(2501) {
		t.Fatal("confirm_above is not the threshold")
	}
	for _, code := range []Code{DeclineMandateBudgetExhausted, DeclineMandateSchedule, DeclineMandateCondition} {
		if code.Type() != TypeDeclined {
			t.Fatalf("%s is not a decline", code)
		}
	}
}

func TestMandateOvernightSchedule(t *testing.T) {
	m := &Mandate{Schedule: &Schedule{Days: []string{"fri"}, Start: "22:00", End: "02:00", TimeZone: "UTC"}}
	for at, want := range map[time.Time]bool{
		time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC): true,  // Friday night
		time.Date(2026, 11, 28, 1, 59, 0, 0, time.UTC): true,  // early Saturday: Friday's window
		time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC):  false, // the window has closed
		time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC): false, // Saturday night is not open
		time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC):  false, // Thursday's night
	} {
		if got := m.inSchedule(at); got != want {
			t.Errorf("%s: inSchedule = %v, want %v", at, got, want)
		}
	}
}

func TestMandatePeriodKeys(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	// Sunday 2026-11-29 23:30 UTC is Monday 07:30 in Shanghai: another day,
	// another ISO week.
	at := time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)
	for period, want := range map[BudgetPeriod]string{PeriodDay: "2026-11-30", PeriodWeek: "2026-W49", PeriodMonth: "2026-11", PeriodTotal: "total"} {
		m := &Mandate{Budget: Budget{Period: period}, Schedule: &Schedule{TimeZone: sh.String()}}
		if got := m.PeriodKey(at); got != want {
			t.Errorf("%s: %s, want %s", period, got, want)
		}
	}
	utc := &Mandate{Budget: Budget{Period: PeriodWeek}}
	if got := utc.PeriodKey(at); got != "2026-W48" {
		t.Errorf("UTC week: %s", got)
	}
}

func TestMandateValidate(t *testing.T) {
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour)
	for name, c := range map[string]struct {
		mutate func(m *Mandate)
		param  string
	}{
		"agent":        {func(m *Mandate) { m.AgentID = "bob" }, "agent_id"},
		"description":  {func(m *Mandate) { m.Description = " " }, "description"},
		"currency":     {func(m *Mandate) { m.Currency = "cny" }, "currency"},
		"max_amount":   {func(m *Mandate) { m.MaxAmount = 0 }, "max_amount"},
		"budget":       {func(m *Mandate) { m.Budget.Amount = -1 }, "budget.amount"},
		"period":       {func(m *Mandate) { m.Budget.Period = "year" }, "budget.period"},
		"max > budget": {func(m *Mandate) { m.MaxAmount = m.Budget.Amount + 1 }, "max_amount"},
		"merchant id":  {func(m *Mandate) { m.MerchantIDs = []string{"shop"} }, "merchant_ids"},
		"expires":      {func(m *Mandate) { m.ExpiresAt = &past }, "expires_at"},
		"days":         {func(m *Mandate) { m.Schedule.Days = []string{"monday"} }, "schedule.days"},
		"no days":      {func(m *Mandate) { m.Schedule.Days = nil }, "schedule.days"},
		"clock":        {func(m *Mandate) { m.Schedule.Start = "7:00" }, "schedule"},
		"same times":   {func(m *Mandate) { m.Schedule.End = m.Schedule.Start }, "schedule"},
		"zone":         {func(m *Mandate) { m.Schedule.TimeZone = "Mars/Olympus" }, "schedule.time_zone"},
		"confirm":      {func(m *Mandate) { m.ConfirmAbove = -1 }, "confirm_above"},
	} {
		m := breakfastMandate(t, now)
		m.ValidFrom = time.Time{}
		c.mutate(m)
		err := m.Validate(now)
		var e *Error
		if err == nil || !asErr(err, &e) || e.Param != c.param {
			t.Errorf("%s: Validate = %v, want an error naming %s", name, err, c.param)
		}
	}
	m := &Mandate{AgentID: NewID(PrefixAgent, now), Description: "tips", Currency: "CNY", MaxAmount: 500, Budget: Budget{Amount: 5000}}
	if err := m.Validate(now); err != nil || m.Budget.Period != PeriodTotal || !m.ValidFrom.Equal(now) || m.Object != "mandate" {
		t.Fatalf("defaults: %+v %v", m, err)
	}
}

func asErr(err error, target **Error) bool {
	e, ok := err.(*Error)
	*target = e
	return ok
}

// BenchmarkMandateCheck is the cost of a mandate's checks for one payment.
func BenchmarkMandateCheck(b *testing.B) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	now := time.Date(2026, 11, 25, 8, 30, 0, 0, sh)
	exp := now.Add(time.Hour)
	m := &Mandate{AgentID: "agt_1", Currency: "CNY", MaxAmount: 3000, Budget: Budget{Amount: 15000, Period: PeriodWeek},
		Categories: []string{"food_and_drink"}, ExpiresAt: &exp, MaxPayments: 20,
		Schedule: &Schedule{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "07:00", End: "10:00", TimeZone: "Asia/Shanghai"}}
	merchant := &Merchant{ID: "mch_1", Category: "food_and_drink"}
	usage := MandateUsage{PeriodKey: m.PeriodKey(now), Spent: 1000, Payments: 2}
	b.ReportAllocs()
	for b.Loop() {
		if code := m.Check("agt_1", 2000, "CNY", merchant, now, usage); code != "" {
			b.Fatal(code)
		}
	}
}
