package mcpserver

import (
	"encoding/json"
	"math"
)

// argsSchema is a tool's input schema compiled for the check of every
// call's arguments: the keywords the tools' schemas use (type, enum,
// properties, required, additionalProperties, items; description and
// title are annotations), checked directly on the decoded arguments. The
// general validator (jsonschema-go's Resolved.Validate) walks the schema
// reflectively and was the largest cost of MCP's own in a pay call on the
// server (60% of decoding the arguments, about a sixth of the MCP layer's
// CPU); this check is a fraction of it. It only ever says "valid" when
// the general validator would: a schema with any other keyword does not
// compile (nil), and arguments it finds invalid are checked again by the
// general validator, whose error names the fault.
type argsSchema struct {
	never    bool // the false schema (and {"not": {}})
	types    []string
	enum     []any
	props    map[string]*argsSchema
	required []string
	extra    *argsSchema // additionalProperties; nil: any
	items    *argsSchema // nil: any
}

// compileArgs compiles a schema's JSON, or returns nil when it uses a
// keyword argsSchema does not check.
func compileArgs(raw []byte) *argsSchema {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	s, ok := compileNode(v)
	if !ok {
		return nil
	}
	return s
}

func compileNode(v any) (*argsSchema, bool) {
	switch v := v.(type) {
	case bool:
		return &argsSchema{never: !v}, true
	case map[string]any:
		s := &argsSchema{}
		for k, kv := range v {
			var ok bool
			switch k {
			case "description", "title":
				ok = true
			case "type":
				s.types, ok = compileTypes(kv)
			case "enum":
				s.enum, ok = kv.([]any)
				for _, e := range s.enum {
					switch e.(type) {
					case string, float64, bool:
					default:
						ok = false
					}
				}
			case "required":
				var rs []any
				if rs, ok = kv.([]any); ok {
					for _, r := range rs {
						name, isStr := r.(string)
						ok = ok && isStr
						s.required = append(s.required, name)
					}
				}
			case "properties":
				var ps map[string]any
				if ps, ok = kv.(map[string]any); ok {
					s.props = make(map[string]*argsSchema, len(ps))
					for name, p := range ps {
						var c *argsSchema
						if c, ok = compileNode(p); !ok {
							break
						}
						s.props[name] = c
					}
				}
			case "additionalProperties":
				s.extra, ok = compileNode(kv)
			case "items":
				s.items, ok = compileNode(kv)
			case "not":
				// Only {"not": {}}, the false schema jsonschema-go writes.
				n, isMap := kv.(map[string]any)
				ok = isMap && len(n) == 0
				s.never = true
			}
			if !ok {
				return nil, false
			}
		}
		return s, true
	}
	return nil, false
}

func compileTypes(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, validType(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, t := range v {
			s, ok := t.(string)
			if !ok || !validType(s) {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func validType(t string) bool {
	switch t {
	case "null", "boolean", "object", "array", "string", "number", "integer":
		return true
	}
	return false
}

// valid reports whether v (decoded from JSON into any) is valid.
func (s *argsSchema) valid(v any) bool {
	if s.never {
		return false
	}
	if len(s.types) > 0 && !s.typeOK(v) {
		return false
	}
	if s.enum != nil && !inEnum(s.enum, v) {
		return false
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range s.required {
			if _, ok := v[r]; !ok {
				return false
			}
		}
		for k, kv := range v {
			p, ok := s.props[k]
			switch {
			case ok:
				if !p.valid(kv) {
					return false
				}
			case s.extra != nil:
				if !s.extra.valid(kv) {
					return false
				}
			}
		}
	case []any:
		if s.items != nil {
			for _, e := range v {
				if !s.items.valid(e) {
					return false
				}
			}
		}
	}
	return true
}

func (s *argsSchema) typeOK(v any) bool {
	for _, t := range s.types {
		switch v := v.(type) {
		case nil:
			if t == "null" {
				return true
			}
		case bool:
			if t == "boolean" {
				return true
			}
		case string:
			if t == "string" {
				return true
			}
		case float64:
			if t == "number" || (t == "integer" && v == math.Trunc(v) && !math.IsInf(v, 0)) {
				return true
			}
		case map[string]any:
			if t == "object" {
				return true
			}
		case []any:
			if t == "array" {
				return true
			}
		}
	}
	return false
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if e == v { // strings, numbers and booleans compare by value
			return true
		}
	}
	return false
}
