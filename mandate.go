package paybound

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// A Mandate is what a user lets one agent spend without asking again: the
// user's intent in their own words (Description, kept verbatim) and the
// limits that enforce it. The checks are pure functions of the mandate, the
// payment, the time and the mandate's usage so far; the ledger writer
// applies them and reserves the budget in the same batch as the hold.
type Mandate struct {
	ID          string    `json:"id"`
	Object      string    `json:"object"`
	UserID      string    `json:"user_id"`
	AgentID     string    `json:"agent_id"`
	Description string    `json:"description"`
	Currency    string    `json:"currency"`
	MaxAmount   int64     `json:"max_amount"` // per payment
	Budget      Budget    `json:"budget"`
	MerchantIDs []string  `json:"merchant_ids"`
	Categories  []string  `json:"merchant_categories"`
	ValidFrom   time.Time `json:"valid_from"`
	// ExpiresAt is the end of validity; nil: until revoked.
	ExpiresAt *time.Time `json:"expires_at"`
	Schedule  *Schedule  `json:"schedule"`
	// MaxPayments caps the payments made under the mandate (0: no cap).
	MaxPayments int64 `json:"max_payments"`
	// ConfirmAbove sends payments above it to the user for confirmation
	// instead of paying at once (0: never).
	ConfirmAbove int64 `json:"confirm_above"`
	// Condition is an optional CEL expression over the payment, merchant and
	// time, evaluated by the caller after these checks.
	Condition        string     `json:"condition,omitempty"`
	RequireSignature bool       `json:"require_signature"`
	RevokedAt        *time.Time `json:"revoked_at"`
	CreatedAt        time.Time  `json:"created_at"`
}

// Budget is what a mandate may spend per Period.
type Budget struct {
	Amount int64        `json:"amount"`
	Period BudgetPeriod `json:"period"`
}

// BudgetPeriod is the window a budget renews over, in the mandate's time
// zone (its schedule's, else UTC): calendar days, ISO weeks (from Monday),
// calendar months, or the mandate's whole life.
type BudgetPeriod string

const (
	PeriodDay   BudgetPeriod = "day"
	PeriodWeek  BudgetPeriod = "week"
	PeriodMonth BudgetPeriod = "month"
	PeriodTotal BudgetPeriod = "total"
)

// Schedule limits a mandate to some days and hours, in TimeZone (an IANA
// name). End before Start is a window over midnight ("22:00"–"02:00"); a day
// is the day the window opens.
type Schedule struct {
	Days     []string `json:"days"` // mon … sun
	Start    string   `json:"start"`
	End      string   `json:"end"`
	TimeZone string   `json:"time_zone"`
}

// MandateUsage is what a mandate has used: the amount reserved in the
// budget period that PeriodKey names, and the payments made ever.
type MandateUsage struct {
	PeriodKey string
	Spent     int64
	Payments  int64
}

// Mandate decline codes, in the order the checks run.
const (
	DeclineMandateNotForAgent      Code = "mandate_not_for_agent"
	DeclineMandateRevoked          Code = "mandate_revoked"
	DeclineMandateExpired          Code = "mandate_expired"
	DeclineMandateNotYetValid      Code = "mandate_not_yet_valid"
	DeclineMandateCurrencyMismatch Code = "mandate_currency_mismatch"
	DeclineMandateAmountExceeded   Code = "mandate_amount_exceeded"
	DeclineMandateBudgetExhausted  Code = "mandate_budget_exhausted"
	DeclineMandateMerchant         Code = "mandate_merchant_not_allowed"
	DeclineMandateSchedule         Code = "mandate_outside_schedule"
	DeclineMandateMaxPayments      Code = "mandate_max_payments_reached"
	DeclineMandateCondition        Code = "mandate_condition_failed"
)

// Limits on a mandate's fields.
const (
	MaxMandateDescription = 2000
	MaxMandateMerchants   = 100
	MaxMandateCondition   = 2000
)

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// locations caches loaded time zones: LoadLocation reads the zone database
// each time, and every payment under a mandate needs its zone.
var locations sync.Map // name → *time.Location

// location is the mandate's time zone: its schedule's, else UTC.
func (m *Mandate) location() *time.Location {
	if m.Schedule == nil || m.Schedule.TimeZone == "" {
		return time.UTC
	}
	name := m.Schedule.TimeZone
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC // Validate refused it; a stored mandate always has a valid zone
	}
	locations.Store(name, loc)
	return loc
}

// PeriodKey names the budget period that contains t: "2026-11-27",
// "2026-W48", "2026-11" or "total".
func (m *Mandate) PeriodKey(t time.Time) string {
	t = t.In(m.location())
	switch m.Budget.Period {
	case PeriodDay:
		return t.Format("2006-01-02")
	case PeriodWeek:
		y, w := t.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	case PeriodMonth:
		return t.Format("2006-01")
	}
	return "total"
}

// Check returns the first mandate check that a payment of amount in
// currency to merchant by agentID at now fails, or "" when all pass.
// usage is the mandate's usage for PeriodKey(now). Whether the payment then
// needs the user's confirmation is NeedsConfirmation's answer.
func (m *Mandate) Check(agentID string, amount int64, currency string, merchant *Merchant, now time.Time, usage MandateUsage) Code {
	spent := usage.Spent
	if usage.PeriodKey != m.PeriodKey(now) {
		spent = 0 // a new period: the budget renews
	}
	if m.AgentID != agentID {
		return DeclineMandateNotForAgent
	}
	if code := m.InForce(now); code != "" {
		return code
	}
	switch {
	case currency != m.Currency:
		return DeclineMandateCurrencyMismatch
	case m.MaxAmount > 0 && amount > m.MaxAmount:
		return DeclineMandateAmountExceeded
	case spent > m.Budget.Amount-amount:
		return DeclineMandateBudgetExhausted
	case !m.allowsMerchant(merchant):
		return DeclineMandateMerchant
	case !m.inSchedule(now):
		return DeclineMandateSchedule
	case m.MaxPayments > 0 && usage.Payments >= m.MaxPayments:
		return DeclineMandateMaxPayments
	}
	return ""
}

// InForce returns why the mandate cannot carry any payment at now (revoked,
// expired or not valid yet), or "" when it can. A user's approval of a
// payment that waited for them answers for its amount, not for this: a
// payment approved under a mandate that is no longer in force is declined.
func (m *Mandate) InForce(now time.Time) Code {
	switch {
	case m.RevokedAt != nil && !now.Before(*m.RevokedAt):
		return DeclineMandateRevoked
	case m.ExpiresAt != nil && !now.Before(*m.ExpiresAt):
		return DeclineMandateExpired
	case now.Before(m.ValidFrom):
		return DeclineMandateNotYetValid
	}
	return ""
}

// NeedsConfirmation reports whether a payment of amount is above the
// mandate's confirm_above.
func (m *Mandate) NeedsConfirmation(amount int64) bool {
	return m.ConfirmAbove > 0 && amount > m.ConfirmAbove
}

func (m *Mandate) allowsMerchant(mc *Merchant) bool {
	if len(m.MerchantIDs) == 0 && len(m.Categories) == 0 {
		return true
	}
	return mc != nil && (slices.Contains(m.MerchantIDs, mc.ID) || slices.Contains(m.Categories, mc.Category))
}

func (m *Mandate) inSchedule(now time.Time) bool {
	s := m.Schedule
	if s == nil {
		return true
	}
	t := now.In(m.location())
	start, _ := clock(s.Start)
	end, _ := clock(s.End)
	mins := t.Hour()*60 + t.Minute()
	day := weekdays[t.Weekday()]
	if end <= start { // over midnight: after start today, or before end on the day after an open day
		if mins >= start {
			return slices.Contains(s.Days, day)
		}
		yesterday := weekdays[(int(t.Weekday())+6)%7]
		return mins < end && slices.Contains(s.Days, yesterday)
	}
	return slices.Contains(s.Days, day) && mins >= start && mins < end
}

// ScheduleText says when the mandate allows payments and what time it is
// at now in the mandate's zone, for a decline message: "payments are
// allowed mon, tue 07:00-10:00 (Asia/Shanghai); it is sat 11:32 there".
func (m *Mandate) ScheduleText(now time.Time) string {
	s := m.Schedule
	if s == nil {
		return "the mandate has no schedule"
	}
	loc := m.location()
	t := now.In(loc)
	return fmt.Sprintf("payments are allowed %s %s-%s (%s); it is %s %s there", strings.Join(s.Days, ", "), s.Start, s.End,
		loc.String(), weekdays[t.Weekday()], t.Format("15:04"))
}

// clock parses "HH:MM" into minutes after midnight.
func clock(s string) (int, bool) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

// Validate checks a mandate as a user creates it and fills in the
// defaults: budget period "total", valid from now, schedule time zone UTC.
// Errors name the field.
func (m *Mandate) Validate(now time.Time) error {
	if !HasPrefix(m.AgentID, PrefixAgent) {
		return Errorf(ErrParameterInvalid, "agent_id", "agent_id must be an agent ID (agt_…)")
	}
	if strings.TrimSpace(m.Description) == "" {
		return Errorf(ErrParameterMissing, "description", "description is required: the user's intent in their own words")
	}
	if len(m.Description) > MaxMandateDescription || !utf8.ValidString(m.Description) {
		return Errorf(ErrParameterInvalid, "description", "description must be valid UTF-8 of at most %d bytes", MaxMandateDescription)
	}
	if err := m.validateAmounts(); err != nil {
		return err
	}
	if err := m.validateMerchants(); err != nil {
		return err
	}
	if m.ValidFrom.IsZero() {
		m.ValidFrom = now
	}
	if m.ExpiresAt != nil && !m.ExpiresAt.After(m.ValidFrom) {
		return Errorf(ErrParameterInvalid, "expires_at", "expires_at must be after valid_from")
	}
	if err := m.Schedule.validate(); err != nil {
		return err
	}
	if m.MaxPayments < 0 {
		return Errorf(ErrParameterInvalid, "max_payments", "max_payments must not be negative")
	}
	if m.ConfirmAbove < 0 || m.ConfirmAbove > MaxAmount {
		return Errorf(ErrParameterInvalid, "confirm_above", "confirm_above must be between 0 (never) and %d", MaxAmount)
	}
	if len(m.Condition) > MaxMandateCondition {
		return Errorf(ErrParameterInvalid, "condition", "condition must be at most %d bytes", MaxMandateCondition)
	}
	m.Object = "mandate"
	return nil
}

// validateAmounts checks the currency and amounts, max_amount within
// budget.amount, and the budget period, defaulting it to "total". Errors
// name the field.
func (m *Mandate) validateAmounts() error {
	if err := ValidateCurrency(m.Currency, "currency"); err != nil {
		return err
	}
	if err := ValidateAmount(m.MaxAmount, "max_amount"); err != nil {
		return err
	}
	if err := ValidateAmount(m.Budget.Amount, "budget.amount"); err != nil {
		return err
	}
	switch m.Budget.Period {
	case PeriodDay, PeriodWeek, PeriodMonth, PeriodTotal:
	case "":
		m.Budget.Period = PeriodTotal
	default:
		return Errorf(ErrParameterInvalid, "budget.period", "budget.period must be day, week, month or total")
	}
	if m.MaxAmount > m.Budget.Amount {
		return Errorf(ErrParameterInvalid, "max_amount", "max_amount is above budget.amount: no payment could use it")
	}
	return nil
}

// validateMerchants checks the merchant and category lists: bounded
// lengths, merchant IDs, and categories of 1-MaxCategoryLength bytes.
// Errors name the field.
func (m *Mandate) validateMerchants() error {
	if len(m.MerchantIDs) > MaxMandateMerchants || len(m.Categories) > MaxMandateMerchants {
		return Errorf(ErrParameterInvalid, "merchant_ids", "at most %d merchants and %d categories", MaxMandateMerchants, MaxMandateMerchants)
	}
	for _, id := range m.MerchantIDs {
		if !HasPrefix(id, PrefixMerchant) {
			return Errorf(ErrParameterInvalid, "merchant_ids", "%q is not a merchant ID (mch_…)", id)
		}
	}
	for _, c := range m.Categories {
		if c == "" || len(c) > MaxCategoryLength {
			return Errorf(ErrParameterInvalid, "merchant_categories", "categories must be 1-%d bytes", MaxCategoryLength)
		}
	}
	return nil
}

// validate checks a mandate's schedule, if any (s may be nil): at least one
// valid day, distinct HH:MM start and end, and an IANA time zone,
// defaulting to UTC. Errors name the field.
func (s *Schedule) validate() error {
	if s == nil {
		return nil
	}
	if len(s.Days) == 0 {
		return Errorf(ErrParameterInvalid, "schedule.days", "schedule.days must name at least one day (mon … sun)")
	}
	for _, d := range s.Days {
		if !slices.Contains(weekdays, d) {
			return Errorf(ErrParameterInvalid, "schedule.days", "%q is not a day; use mon, tue, wed, thu, fri, sat, sun", d)
		}
	}
	st, ok1 := clock(s.Start)
	en, ok2 := clock(s.End)
	if !ok1 || !ok2 || st == en {
		return Errorf(ErrParameterInvalid, "schedule", "schedule.start and schedule.end must be different HH:MM times")
	}
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(s.TimeZone); err != nil {
		return Errorf(ErrParameterInvalid, "schedule.time_zone", "%q is not an IANA time zone such as Asia/Shanghai", s.TimeZone)
	}
	return nil
}
