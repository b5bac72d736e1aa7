package gateway

import "testing"

func TestUsageOf(t *testing.T) {
	for in, want := range map[string]usage{
		`{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`: {Input: 10, Cached: 4, Output: 5, Reasoning: 2},
		`{"usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":1}}}`:            {Input: 7, Cached: 1, Output: 3, Reasoning: 1},
		`{"type":"response.completed","response":{"usage":{"input_tokens":2,"output_tokens":9}}}`:                                                             {Input: 2, Output: 9},
		`{"usage":{"prompt_tokens":7,"total_tokens":7}}`: {Input: 7},
		`{"choices":[]}`: {},
		`not json`:       {},
	} {
		if got := usageOf([]byte(in)); got != want {
			t.Errorf("usageOf(%s) = %+v, want %+v", in, got, want)
		}
	}
}

// FuzzUsageOf: the gateway reads the upstream's answers and stream chunks
// without ever failing on them.
func FuzzUsageOf(f *testing.F) {
	f.Add([]byte(`{"usage":{"prompt_tokens":10,"completion_tokens":5}}`))
	f.Add([]byte(`{"choices":[{"delta":{"content":"tok "}}]}`))
	f.Add([]byte(`{"response":{"usage":{"input_tokens":1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		usageOf(b)
		if n := contentTokens(b); n < 0 {
			t.Fatalf("contentTokens = %d", n)
		}
	})
}
