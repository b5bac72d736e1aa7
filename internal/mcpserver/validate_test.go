package mcpserver

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestQuickArgsCheck: every tool's input schema compiles for the quick
// check, and the quick check never finds valid what the general validator
// refuses (arguments of random shapes, values and extra properties), while
// it does find valid the well-formed calls (so the fast path is taken).
func TestQuickArgsCheck(t *testing.T) {
	pool := []any{nil, true, false, 0.0, 1.0, 1.5, -3.0, 1e300, "", "x", "USD", "GET", "user", "not_as_intended", "day",
		map[string]any{}, map[string]any{"payee": "user"}, map[string]any{"api_version": "2026-04-17"}, []any{}, []any{"mch_1"}, []any{1.0}}
	rng := rand.New(rand.NewPCG(1, 2))
	quickValid := 0
	for _, side := range []Side{AgentSide, MerchantSide} {
		srv, err := NewServer(side, Config{Backend: func(context.Context, *mcp.RequestExtra) (Backend, error) { return nil, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ct, st := mcp.NewInMemoryTransports()
		ss, _ := srv.Connect(context.Background(), st, nil)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(context.Background(), ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		tools, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range tools.Tools {
			raw, _ := json.Marshal(tool.InputSchema)
			quick := compileArgs(raw)
			if quick == nil {
				t.Errorf("%s: the input schema does not compile for the quick check", tool.Name)
				continue
			}
			var s jsonschema.Schema
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			full, err := s.Resolve(nil)
			if err != nil {
				t.Fatal(err)
			}
			if tool.Name == "pay" {
				var good any
				json.Unmarshal([]byte(`{"merchant_id":"mch_1","amount":100,"currency":"USD","description":"x","mandate_id":"mdt_1","idempotency_key":"k","provenance":{"payee":"user","amount":"user"}}`), &good)
				if !quick.valid(good) {
					t.Error("pay: a well-formed call does not take the fast path")
				}
			}
			props := []string{"unknown_argument"}
			for name := range s.Properties {
				props = append(props, name)
			}
			for range 400 {
				args := map[string]any{}
				for _, p := range props {
					if rng.IntN(3) > 0 || p == "unknown_argument" && rng.IntN(4) > 0 {
						continue
					}
					v := pool[rng.IntN(len(pool))]
					if ps := s.Properties[p]; ps != nil && len(ps.Enum) > 0 && rng.IntN(2) == 0 {
						v = ps.Enum[rng.IntN(len(ps.Enum))]
					}
					args[p] = v
				}
				b, _ := json.Marshal(args)
				var generic any
				json.Unmarshal(b, &generic)
				if quick.valid(generic) {
					quickValid++
					if err := full.Validate(generic); err != nil {
						t.Errorf("%s(%s): the quick check passed what the validator refuses: %v", tool.Name, b, err)
					}
				}
			}
		}
		cs.Close()
		ss.Wait()
	}
	if quickValid < 100 {
		t.Fatalf("the quick check found only %d calls valid: the test does not exercise the fast path", quickValid)
	}
}

// BenchmarkDecodePayArgs: decoding a pay call's arguments with the quick
// check, and with the general validator alone (as before it).
//
//	go test ./internal/mcpserver -run '^$' -bench DecodePayArgs
func BenchmarkDecodePayArgs(b *testing.B) {
	in, err := jsonschema.For[payIn](nil)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(in)
	full, err := in.Resolve(nil)
	if err != nil {
		b.Fatal(err)
	}
	args := json.RawMessage(`{"merchant_id":"mch_01m92mhwf01nf8vc3q989mp7n5","amount":100,"currency":"USD","description":"bench","mandate_id":"mdt_01m92mhwf01nf8vc3q989mp7n5","idempotency_key":"mdt_01m92mhwf01nf8vc3q989mp7n5-1234","provenance":{"payee":"user","amount":"user"}}`)
	for _, c := range []struct {
		name  string
		quick *argsSchema
	}{{"quick", compileArgs(raw)}, {"validator", nil}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeArgs[payIn](args, c.quick, full); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
