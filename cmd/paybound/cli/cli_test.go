package cli

import (
	"bytes"
	"io"
	"slices"
	"testing"
)

// TestParseArguments: flags go anywhere; an argument that starts with '-'
// or '--' (an agent key's ID may) is an argument where one is due; a
// flag's value may start with '-' or be --; everything after -- is an
// argument; unknown flags, a flag without its value, extra arguments and
// -h are refused.
func TestParseArguments(t *testing.T) {
	for _, c := range []struct {
		args   []string
		want   []string
		amount string
		json   bool
		bad    bool
	}{
		{args: []string{"agt_x", "-IzLg4dhKzA5TZNc"}, want: []string{"agt_x", "-IzLg4dhKzA5TZNc"}},
		{args: []string{"-IzLg4dhKzA5TZNc", "agt_x"}, want: []string{"-IzLg4dhKzA5TZNc", "agt_x"}},
		{args: []string{"agt_x", "--json", "-k"}, want: []string{"agt_x", "-k"}, json: true},
		{args: []string{"--amount", "-5", "agt_x", "k", "-json"}, want: []string{"agt_x", "k"}, amount: "-5", json: true},
		{args: []string{"--amount=-5", "agt_x", "--", "--json"}, want: []string{"agt_x", "--json"}, amount: "-5"},
		{args: []string{"agt_x", "--IzLg4dhKzA5TZNc"}, want: []string{"agt_x", "--IzLg4dhKzA5TZNc"}},
		{args: []string{"--url", "--", "agt_x", "-json", "k"}, want: []string{"agt_x", "k"}, json: true},
		{args: []string{"-", "--json=true", "k"}, want: []string{"-", "k"}, json: true},
		{args: []string{"agt_x", "k", "-extra"}, bad: true},
		{args: []string{"agt_x", "k", "--amount"}, bad: true},
		{args: []string{"-h"}, bad: true},
		{args: []string{"--bogus", "agt_x", "k"}, bad: true},
		{args: []string{"agt_x"}, bad: true},
	} {
		var stderr bytes.Buffer
		cl := &cli{ctx: t.Context(), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
		cmd := cl.command("agents keys revoke", "agents keys revoke AGENT KEYID", false)
		amount := cmd.fs.String("amount", "", "an amount")
		pos, err := cmd.parse(c.args, "AGENT", "KEYID")
		if c.bad {
			if err == nil {
				t.Errorf("parse(%q) = %q, want an error", c.args, pos)
			}
			continue
		}
		if err != nil || !slices.Equal(pos, c.want) || *amount != c.amount || cmd.json != c.json {
			t.Errorf("parse(%q) = %q %v, amount %q, json %v; want %q, amount %q, json %v\n%s",
				c.args, pos, err, *amount, cmd.json, c.want, c.amount, c.json, stderr.String())
		}
	}
}
