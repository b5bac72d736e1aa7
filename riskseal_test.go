package paybound

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func sampleRisk() *Risk {
	r := &Risk{Decision: RiskBlock, Rule: "no <casinos> & co", Score: 85, Signals: []RiskSignal{
		{Name: "new_payee_large_amount", Points: 35, Reason: "first payment to this payee"},
		{Name: "untrusted_payee", Points: 30, Reason: "the agent took the payee from content it read"},
	}}
	r.InputHash[0] = 0xab
	return r
}

const sampleSalt = "00112233445566778899aabbccddeeff"

// TestRiskCommitmentKnownAnswer pins the commitment's encoding: a verifier
// written from docs/visibility.md, and entries already logged, depend on
// it, so a change to it must be a new version, never an accident. The
// value was computed apart from this code, from the documented encoding
// (Python: json.dumps(sort_keys=True, separators=(",", ":"),
// ensure_ascii=False) and hashlib).
func TestRiskCommitmentKnownAnswer(t *testing.T) {
	o, err := OpenRisk(sampleRisk(), sampleSalt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.Commitment()
	if err != nil {
		t.Fatal(err)
	}
	const want = "47528fc686ce907b63a0579c4831b5c7d269374046502c38dedcf494b2400fb5"
	if c != want {
		t.Errorf("commitment %s, want %s (opening %+v, detail %+v)", c, want, o, o.Detail)
	}
}

func TestRiskOpeningVerifies(t *testing.T) {
	r := sampleRisk()
	o, err := OpenRisk(r, sampleSalt)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := o.Commitment()
	if err := o.Verify(c); err != nil {
		t.Fatalf("the whole opening: %v", err)
	}
	// The agent's part verifies on its own, and says nothing of the rest.
	part := o.Partial()
	if err := part.Verify(c); err != nil {
		t.Fatalf("the partial opening: %v", err)
	}
	b, _ := json.Marshal(part)
	for _, secret := range []string{`"score"`, `"points"`, "casinos", "input_sha256", o.Detail.Salt, "first payment"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the partial opening shows %q: %s", secret, b)
		}
	}
	if o.Detail.Salt == o.Salt || strings.Contains(sampleSalt, o.Salt) {
		t.Errorf("the salts are not derived apart: outer %s, detail %s", o.Salt, o.Detail.Salt)
	}
	// Another input salt, the same assessment: another commitment, so that
	// the decisions and scores there are cannot be tried against it.
	other, _ := OpenRisk(r, strings.Repeat("f", 32))
	if oc, _ := other.Commitment(); oc == c {
		t.Error("the commitment does not depend on the salt")
	}
	// A JSON round trip (how a receipt carries it) still verifies.
	var back RiskOpening
	b, _ = json.Marshal(o)
	if err := json.Unmarshal(b, &back); err != nil || back.Verify(c) != nil {
		t.Fatalf("after a round trip: %v, %v", err, back.Verify(c))
	}
}

func TestRiskOpeningRefusesChanges(t *testing.T) {
	o, _ := OpenRisk(sampleRisk(), sampleSalt)
	c, _ := o.Commitment()
	for name, change := range map[string]func(o *RiskOpening){
		"decision":         func(o *RiskOpening) { o.Decision = RiskAllow },
		"a signal dropped": func(o *RiskOpening) { o.Signals = o.Signals[:1] },
		"outer salt":       func(o *RiskOpening) { o.Salt = sampleSalt },
		"score":            func(o *RiskOpening) { o.Detail.Score = 20 },
		"points":           func(o *RiskOpening) { o.Detail.Signals[0].Points = 1 },
		"rule":             func(o *RiskOpening) { o.Detail.Rule = "" },
		"input hash":       func(o *RiskOpening) { o.Detail.InputSHA256 = strings.Repeat("0", 64) },
		"detail salt":      func(o *RiskOpening) { o.Detail.Salt = o.Salt },
		// A detail that hashes right but names other signals than the
		// outer level: the detail's hash is recomputed to match.
		"detail signals": func(o *RiskOpening) {
			o.Detail.Signals[0].Name = "bearer_agent"
			o.DetailSHA256, _ = riskHash(o.Detail)
		},
	} {
		var b RiskOpening
		raw, _ := json.Marshal(o)
		json.Unmarshal(raw, &b)
		change(&b)
		if err := b.Verify(c); !errors.Is(err, ErrRiskOpening) {
			t.Errorf("%s changed: Verify = %v, want ErrRiskOpening", name, err)
		}
	}
	if _, err := OpenRisk(sampleRisk(), ""); err == nil {
		t.Error("OpenRisk without the input's salt: no error")
	}
}

// TestRiskPartialJSON: an agent's view of an assessment has the decision
// and the signals' names, and nothing else; every other view is unchanged.
func TestRiskPartialJSON(t *testing.T) {
	r := sampleRisk()
	full, _ := json.Marshal(r)
	for _, want := range []string{`"score":85`, `"rule":"no \u003ccasinos\u003e \u0026 co"`, `"points":35`, `"reason":"first payment to this payee"`} {
		if !strings.Contains(string(full), want) {
			t.Errorf("the full assessment lacks %s: %s", want, full)
		}
	}
	r.Partial = true
	part, _ := json.Marshal(r)
	if want := `{"decision":"block","signals":[{"name":"new_payee_large_amount"},{"name":"untrusted_payee"}]}`; string(part) != want {
		t.Errorf("partial assessment %s, want %s", part, want)
	}
	// Read back, an agent's view says it is one; a score of 0 is a score.
	var back Risk
	if err := json.Unmarshal(part, &back); err != nil || !back.Partial || back.Decision != RiskBlock || len(back.Signals) != 2 {
		t.Errorf("the partial assessment read back: %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"decision":"allow","score":0,"signals":[]}`), &back); err != nil || back.Partial || back.Score != 0 {
		t.Errorf("a whole assessment read back: %+v, %v", back, err)
	}
	if err := json.Unmarshal(full, &back); err != nil || back.Partial || back.Score != 85 || back.Rule != r.Rule || back.Signals[0].Reason == "" {
		t.Errorf("the full assessment read back: %+v, %v", back, err)
	}
	// The store's columns are the full assessment.
	if col, _ := (&Risk{Decision: RiskAllow, Score: 3, Partial: true}).Columns(); !strings.Contains(col, `"score":3`) {
		t.Errorf("columns of an assessment: %s", col)
	}
}

// BenchmarkRiskCommitment is what committing to an assessment adds to a
// payment attempt (assess, before the writer): both levels encoded and
// hashed.
func BenchmarkRiskCommitment(b *testing.B) {
	r := sampleRisk()
	for b.Loop() {
		o, err := OpenRisk(r, sampleSalt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.Commitment(); err != nil {
			b.Fatal(err)
		}
	}
}
