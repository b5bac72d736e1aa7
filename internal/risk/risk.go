// Package risk scores a payment attempt before its hold: what a mandate
// technically allows but is likely wrong — an agent tricked into paying a
// stranger, a runaway loop, a drained wallet. It is pure: the caller
// gathers the attempt's context (the user's history, velocity counters,
// the wallet's balance) into an Input, and Evaluate returns a decision, a
// score and the signals that fired, each with its reason. Nothing here
// stores state or does I/O, so a decision can be replayed offline from a
// recorded Input.
//
// Built-in signals each add points to a score from 0 to 100; the score's
// thresholds make the decision (Config.ReviewAt, Config.BlockAt). A few
// signals decide on their own whatever the score (BlockNow, ReviewNow).
// Statistics are robust: the median and the median absolute deviation of
// the user's past amounts, not their mean, so one large past payment does
// not make the next large one look normal.
package risk

import (
	"fmt"
	"math/bits"
	"time"

	pb "github.com/paybound/paybound"
)

// Decision, Signal and Assessment are the root package's, so that a
// payment carries its assessment.
type (
	Decision   = pb.RiskDecision
	Signal     = pb.RiskSignal
	Assessment = pb.Risk
)

const (
	Allow  = pb.RiskAllow
	Review = pb.RiskReview
	Block  = pb.RiskBlock
)

// Assurance levels of the requester, as payments record them.
const (
	AssuranceSigned = string(pb.AssuranceSigned)
	AssuranceBearer = string(pb.AssuranceBearer)
	AssuranceUser   = string(pb.AssuranceUser)
)

// Provenance says where an agent took a payment's payee or amount from:
// "user" (the user said so), "untrusted" (content the agent read: a page,
// an email, a post), or "unknown" (the default).
const (
	ProvenanceUser      = pb.ProvenanceUser
	ProvenanceUntrusted = pb.ProvenanceUntrusted
	ProvenanceUnknown   = pb.ProvenanceUnknown
)

// Window is a velocity count and sum over one period.
type Window struct {
	Count int64 `json:"count,omitzero"`
	Sum   int64 `json:"sum,omitzero"` // minor units
}

// Velocity is what one actor did lately: over the last minute, hour, day.
type Velocity struct {
	Minute Window `json:"minute,omitzero"`
	Hour   Window `json:"hour,omitzero"`
	Day    Window `json:"day,omitzero"`
}

// History summarizes earlier amounts robustly: how many, their median and
// their median absolute deviation (Summarize). A summary, not the amounts,
// is what an Input keeps, so that a recorded Input stays small.
type History struct {
	Count  int   `json:"count,omitzero"`
	Median int64 `json:"median,omitzero"`
	MAD    int64 `json:"mad,omitzero"`
}

// Summarize returns the History of xs (at most their first MaxHistory),
// without allocating and in linear time (selection, not sorting: it runs
// three times on every payment attempt). The median of an even count is
// the lower middle.
func Summarize(xs []int64) History {
	if len(xs) == 0 {
		return History{}
	}
	var buf [MaxHistory]int64
	xs = xs[:min(len(xs), MaxHistory)]
	s := buf[:len(xs)]
	copy(s, xs)
	k := (len(s) - 1) / 2
	med := nth(s, k)
	for i, x := range xs {
		s[i] = max(x-med, med-x)
	}
	return History{Count: len(xs), Median: med, MAD: nth(s, k)}
}

// nth returns the k-th smallest of s (0-based), reordering s: Hoare's
// selection with a median-of-three pivot.
func nth(s []int64, k int) int64 {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}

// Input is one attempt with its context: everything Evaluate and the
// operator's rules look at, so that a recorded Input replays exactly. Its
// JSON leaves out zero values: a payment keeps its Input, so every byte
// is written with every payment.
// Amounts are minor units of Currency; histories are of the user's earlier
// payments in the same currency.
type Input struct {
	Amount      int64             `json:"amount,omitzero"`
	Currency    string            `json:"currency,omitempty"`
	MerchantID  string            `json:"merchant_id,omitempty"`
	Merchant    string            `json:"merchant_name,omitempty"`
	Category    string            `json:"category,omitempty"`
	UserID      string            `json:"user_id,omitempty"`
	AgentID     string            `json:"agent_id,omitempty"` // "" for the user's own payment
	MandateID   string            `json:"mandate_id,omitempty"`
	Assurance   string            `json:"assurance,omitempty"`
	Description string            `json:"description,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Now         time.Time         `json:"now,omitzero"`

	// History with this merchant, with this merchant's category, and of
	// this mandate.
	MerchantHistory History `json:"merchant_history,omitzero"`
	CategoryHistory History `json:"category_history,omitzero"`
	MandateHistory  History `json:"mandate_history,omitzero"`
	// PaidMerchantBefore says whether the user ever paid this merchant.
	PaidMerchantBefore bool `json:"paid_merchant_before,omitzero"`

	// Available is the wallet's available balance before this payment.
	Available int64 `json:"available,omitzero"`

	// Velocity per agent, per mandate and per payee (merchant) of this
	// user. DeclinesLastHour counts the agent's attempts declined in the
	// last hour, other than by risk control itself, to another merchant or
	// of another amount than this attempt: a burst of declines followed by
	// a retry with different parameters (probing), not the same payment
	// tried again.
	AgentVelocity    Velocity `json:"agent_velocity,omitzero"`
	MandateVelocity  Velocity `json:"mandate_velocity,omitzero"`
	PayeeVelocity    Velocity `json:"payee_velocity,omitzero"`
	DeclinesLastHour int64    `json:"declines_last_hour,omitzero"`

	// MerchantFlags are set by the operator ("suspected_fraud", …);
	// MerchantAgeHours is how long ago the merchant was created.
	MerchantFlags    []string `json:"merchant_flags,omitempty"`
	MerchantAgeHours int64    `json:"merchant_age_hours,omitzero"`

	// PayeeProvenance and AmountProvenance are what the agent declared;
	// "" is unknown.
	PayeeProvenance  string `json:"payee_provenance,omitempty"`
	AmountProvenance string `json:"amount_provenance,omitempty"`

	// Salt is random, and not an input to any decision: it makes the hash
	// of the Input that the log records unguessable to those who know
	// everything else about the payment (the merchant reads the log).
	Salt string `json:"salt,omitempty"`
}

// MaxHistory bounds each history a summary covers: the newest amounts.
const MaxHistory = 200

// Config holds the thresholds, each documented with its default. As JSON
// (the server's --risk-config file) its fields are named as below; a
// missing field keeps its default.
type Config struct {
	// ReviewAt and BlockAt are the score thresholds (defaults 40 and 80).
	ReviewAt int `json:"review_at"`
	BlockAt  int `json:"block_at"`
	// AmountOutlierMADs: an amount more than this many MADs above the
	// history's median is an outlier (default 6). MinHistory is the fewest
	// past payments that make a history (default 5).
	AmountOutlierMADs int64 `json:"amount_outlier_mads"`
	MinHistory        int   `json:"min_history"`
	// AmountOutlierRatio: with a history whose MAD is 0 (all alike), an
	// amount more than this many times the median is an outlier (default 3).
	AmountOutlierRatio int64 `json:"amount_outlier_ratio"`
	// LargeNewPayee is the amount above which a first payment to a payee is
	// large (default 10,000 minor units: 100.00 in a two-decimal currency).
	LargeNewPayee int64 `json:"large_new_payee"`
	// DrainPercent: a payment taking more than this share of the
	// available balance drains the wallet (default 80).
	DrainPercent int64 `json:"drain_percent"`
	// Velocity limits of an agent's payments per agent, mandate and payee:
	// most payments a minute, an hour, a day (defaults 10, 120, 300).
	PerMinute int64 `json:"per_minute"`
	PerHour   int64 `json:"per_hour"`
	PerDay    int64 `json:"per_day"`
	// DeclineBurst is how many declines in the last hour make a retry
	// suspicious (default 5).
	DeclineBurst int64 `json:"decline_burst"`
	// NewMerchantHours: a merchant younger than this is new (default 24).
	NewMerchantHours int64 `json:"new_merchant_hours"`
}

// maxLimit bounds the count thresholds: past it they mean "never".
const maxLimit = 1_000_000_000_000

// Validate reports a threshold out of range.
func (c *Config) Validate() error {
	switch {
	case c.ReviewAt < 1 || c.ReviewAt > 100 || c.BlockAt < c.ReviewAt || c.BlockAt > 101:
		return fmt.Errorf("risk config: need 1 <= review_at <= block_at <= 101 (101: never block by score); have %d and %d", c.ReviewAt, c.BlockAt)
	case c.AmountOutlierMADs < 1 || c.AmountOutlierMADs > 1000 || c.AmountOutlierRatio < 1 || c.AmountOutlierRatio > 1000 ||
		c.MinHistory < 1 || c.MinHistory > MaxHistory:
		return fmt.Errorf("risk config: amount_outlier_mads and amount_outlier_ratio must be 1 to 1000, min_history 1 to %d", MaxHistory)
	case c.LargeNewPayee < 0 || c.LargeNewPayee > pb.MaxAmount || c.DrainPercent < 1 || c.DrainPercent > 100:
		return fmt.Errorf("risk config: large_new_payee must be 0 to %d, drain_percent 1 to 100", pb.MaxAmount)
	case c.PerMinute < 1 || c.PerHour < 1 || c.PerDay < 1 || c.DeclineBurst < 1 || c.NewMerchantHours < 0 ||
		max(c.PerMinute, c.PerHour, c.PerDay, c.DeclineBurst, c.NewMerchantHours) > maxLimit:
		return fmt.Errorf("risk config: per_minute, per_hour, per_day and decline_burst must be 1 to %d, new_merchant_hours 0 to %d", maxLimit, maxLimit)
	}
	return nil
}

// Defaults returns the documented default thresholds.
func Defaults() Config {
	return Config{ReviewAt: 40, BlockAt: 80, AmountOutlierMADs: 6, MinHistory: 5, AmountOutlierRatio: 3,
		LargeNewPayee: 10_000, DrainPercent: 80, PerMinute: 10, PerHour: 120, PerDay: 300, DeclineBurst: 5,
		NewMerchantHours: 24}
}

// Evaluate scores in under cfg. It is deterministic and allocates little:
// it runs inside the payment request.
func Evaluate(in *Input, cfg *Config) Assessment {
	a := Assessment{Signals: []Signal{}}
	add := func(name string, points int, format string, args ...any) {
		a.Signals = append(a.Signals, Signal{Name: name, Points: points, Reason: fmt.Sprintf(format, args...)})
		a.Score += points
	}
	agent := in.AgentID != ""
	money := func(v int64) string { return pb.FormatAmount(v, in.Currency) + " " + in.Currency }
	// Amount against the user's own history, and the mandate's.
	for _, h := range []struct {
		name    string
		history History
		what    string
	}{
		{"amount_vs_merchant_history", in.MerchantHistory, "this merchant"},
		{"amount_vs_category_history", in.CategoryHistory, "this category"},
		{"amount_vs_mandate_history", in.MandateHistory, "this mandate"},
	} {
		if outlier(in.Amount, h.history, cfg) {
			add(h.name, 25, "%s is far above the median %s (MAD %s) of %d earlier payments to %s", money(in.Amount), money(h.history.Median), money(h.history.MAD), h.history.Count, h.what)
		}
	}

	// A payee never paid, especially with a large amount.
	if !in.PaidMerchantBefore {
		switch {
		case in.Amount > cfg.LargeNewPayee:
			add("new_payee_large_amount", 35, "first payment to this payee, and %s is above %s", money(in.Amount), money(cfg.LargeNewPayee))
		default:
			add("new_payee", 10, "first payment to this payee")
		}
	}

	// Share of the available balance.
	if Drains(in, cfg) {
		add("drains_wallet", 25, "takes %s of the %s available (over %d%%)", money(in.Amount), money(in.Available), cfg.DrainPercent)
	}

	// Velocity per agent, mandate and payee.
	for _, v := range []struct {
		name, who string
		w         Velocity
		skip      bool
	}{
		{"agent", "by this agent", in.AgentVelocity, !agent},
		{"mandate", "under this mandate", in.MandateVelocity, in.MandateID == ""},
		{"payee", "to this payee", in.PayeeVelocity, !agent},
	} {
		if v.skip {
			continue
		}
		switch {
		case v.w.Minute.Count >= cfg.PerMinute:
			add("velocity_"+v.name, 30, "%d payments %s in the last minute (limit %d)", v.w.Minute.Count, v.who, cfg.PerMinute)
		case v.w.Hour.Count >= cfg.PerHour:
			add("velocity_"+v.name, 20, "%d payments %s in the last hour (limit %d)", v.w.Hour.Count, v.who, cfg.PerHour)
		case v.w.Day.Count >= cfg.PerDay:
			add("velocity_"+v.name, 15, "%d payments %s in the last day (limit %d)", v.w.Day.Count, v.who, cfg.PerDay)
		}
	}
	if agent && in.DeclinesLastHour >= cfg.DeclineBurst {
		add("decline_burst", 25, "%d declined attempts by this agent in the last hour, and this one is different from them", in.DeclinesLastHour)
	}

	// Who asked.
	if agent && in.Assurance == AssuranceBearer {
		add("bearer_agent", 10, "the agent used a bearer key, not a signed request")
	}

	// The merchant.
	if len(in.MerchantFlags) > 0 {
		add("merchant_flagged", 40, "the operator flagged this merchant: %v", in.MerchantFlags)
	}
	if in.MerchantAgeHours < cfg.NewMerchantHours {
		add("new_merchant", 10, "the merchant account is %dh old", in.MerchantAgeHours)
	}

	// What the agent read.
	if in.PayeeProvenance == ProvenanceUntrusted {
		add("untrusted_payee", 30, "the agent took the payee from content it read")
	}
	if in.AmountProvenance == ProvenanceUntrusted {
		add("untrusted_amount", 20, "the agent took the amount from content it read")
	}

	a.Score = min(a.Score, 100)
	switch {
	case a.Score >= cfg.BlockAt:
		a.Decision = Block
	case a.Score >= cfg.ReviewAt:
		a.Decision = Review
	default:
		a.Decision = Allow
	}
	// A user paying themselves is never blocked by the score alone: they
	// are asked to confirm.
	if !agent && a.Decision == Block {
		a.Decision = Review
	}
	return a
}

// Drains reports whether in takes more than cfg.DrainPercent of the
// available balance: the drains_wallet signal. It is the one built-in
// signal a low balance raises, so a caller that read the balance from a
// cache confirms it against the store when it fires.
func Drains(in *Input, cfg *Config) bool {
	return in.Available > 0 && productGreater(in.Amount, 100, in.Available, cfg.DrainPercent)
}

// outlier reports whether amount is far above history: a robust z-score
// on the median and the MAD, or a multiple of the median when the MAD is 0
// (all alike). A history shorter than cfg.MinHistory says nothing.
func outlier(amount int64, h History, cfg *Config) bool {
	if h.Count < cfg.MinHistory {
		return false
	}
	if h.MAD == 0 {
		return productGreater(amount, 1, h.Median, cfg.AmountOutlierRatio)
	}
	return amount > h.Median && productGreater(amount-h.Median, 1, h.MAD, cfg.AmountOutlierMADs)
}

// productGreater reports whether a*b > c*d for non-negative values, in 128
// bits: amounts go up to 10^18 and thresholds multiply them.
func productGreater(a, b, c, d int64) bool {
	hi1, lo1 := bits.Mul64(uint64(max(a, 0)), uint64(max(b, 0)))
	hi2, lo2 := bits.Mul64(uint64(max(c, 0)), uint64(max(d, 0)))
	return hi1 > hi2 || hi1 == hi2 && lo1 > lo2
}
