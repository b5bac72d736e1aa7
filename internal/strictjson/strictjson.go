// Package strictjson decodes JSON that others send Paybound (API bodies,
// files given to the CLI) so that it can mean one thing only.
//
// encoding/json reads some documents in its own way: of two members with
// the same name it keeps the last, it fills a struct field from a member
// whose name matches only case-insensitively ("MERCHANT_ID" fills
// merchant_id), and it replaces invalid UTF-8 and unpaired surrogates with
// U+FFFD. A proxy, a firewall or an agent-side check that reads the first
// "amount", or matches names exactly, then sees another payment than the one
// Paybound makes. Unmarshal refuses every such document; what it accepts it
// hands to encoding/json, so that it decodes exactly as encoding/json does,
// and a parser that matches names exactly, as RFC 8259 parsers do, reads
// the same members.
//
// The package is pure: no I/O, and no state but a cache of the field names
// of the types it has decoded into.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultMaxDepth bounds the nesting of arrays and objects when
// Options.MaxDepth is 0: far more than any Paybound document needs, and few
// enough that the recursion stays shallow.
const DefaultMaxDepth = 64

// Kind says why a document was refused.
type Kind int

const (
	// Syntax: the input is not one JSON value (RFC 8259).
	Syntax Kind = iota + 1
	// TrailingData: something other than white space follows the value.
	TrailingData
	// TooDeep: arrays and objects nest deeper than the limit.
	TooDeep
	// InvalidUTF8: a string or a key is not valid UTF-8, or holds a \u
	// escape of an unpaired surrogate.
	InvalidUTF8
	// DuplicateKey: an object has two members with the same name (after
	// unescaping), at any depth, free-form maps included.
	DuplicateKey
	// CaseMismatch: a key names a field of the target only
	// case-insensitively. encoding/json would fill that field.
	CaseMismatch
	// UnknownField: a key names no field of the target (not refused with
	// Options.AllowUnknownFields).
	UnknownField
)

var kindNames = map[Kind]string{Syntax: "syntax", TrailingData: "trailing data", TooDeep: "too deep",
	InvalidUTF8: "invalid UTF-8", DuplicateKey: "duplicate key", CaseMismatch: "case mismatch", UnknownField: "unknown field"}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a document refused by Unmarshal. Type errors (a string where a
// number is due) are not *Error: they are encoding/json's own
// *json.UnmarshalTypeError, as encoding/json reports them.
type Error struct {
	Kind Kind
	// Path names the member at fault: "amount", "budget.period",
	// "metadata.note", "[2].name"; "" for the document itself. Keys in it
	// are cut to 64 bytes.
	Path string
	// Field is, for CaseMismatch, the name of the field the key would have
	// filled.
	Field string
	// Offset is where in the input the problem was found, in bytes.
	Offset int
	detail string
}

func (e *Error) Error() string {
	switch e.Kind {
	case DuplicateKey:
		return fmt.Sprintf("%q is sent twice in the same object; send each key once", e.Path)
	case CaseMismatch:
		return fmt.Sprintf("key %q matches %q only in letter case; keys are case-sensitive", e.Path, e.Field)
	case UnknownField:
		return fmt.Sprintf("unknown field %q", e.Path)
	case InvalidUTF8:
		if e.Path == "" {
			return fmt.Sprintf("%s (byte %d): JSON text must be UTF-8", e.detail, e.Offset)
		}
		return fmt.Sprintf("%s in %q (byte %d): JSON text must be UTF-8", e.detail, e.Path, e.Offset)
	}
	return fmt.Sprintf("%s (byte %d)", e.detail, e.Offset)
}

// Options adjust Unmarshal. The zero value is the strictest.
type Options struct {
	// AllowUnknownFields skips members that name no field (a JWK's "kid",
	// a newer export's fields) instead of refusing them. A member that
	// names a field only case-insensitively is refused all the same.
	AllowUnknownFields bool
	// MaxDepth bounds the nesting of arrays and objects; 0 is
	// DefaultMaxDepth.
	MaxDepth int
}

// Unmarshal decodes data into v, which must be a non-nil pointer, with the
// zero Options: see Options.Unmarshal.
func Unmarshal(data []byte, v any) error { return Options{}.Unmarshal(data, v) }

// Unmarshal decodes the one JSON value in data into v as encoding/json
// does, after refusing, with an *Error, a document that is not one JSON
// value, a key sent twice in one object, a key that names a field of v only
// case-insensitively, an unknown field (unless o.AllowUnknownFields),
// invalid UTF-8 or an unpaired surrogate, or nesting deeper than
// o.MaxDepth. These checks run at every depth, inside maps, slices,
// json.RawMessage and interface values too; only the keys of objects
// decoded into structs are matched against fields (the keys of maps, of
// interface values and of types with their own UnmarshalJSON or
// UnmarshalText are free). Nothing is written to v when the document is
// refused; encoding/json's type errors may leave v partly filled, as
// encoding/json does.
//
// Maps must have string keys: other key types are an error of the caller,
// reported as a plain error before data is read.
func (o Options) Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	sh, err := shapeOf(rv.Type())
	if err != nil {
		return err
	}
	c := checker{data: data, maxDepth: o.MaxDepth, allowUnknown: o.AllowUnknownFields,
		keys: make([][]byte, 0, 8), path: make([]segment, 0, 4)}
	if c.maxDepth <= 0 {
		c.maxDepth = DefaultMaxDepth
	}
	if err := c.document(sh); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if !o.AllowUnknownFields {
		// Already refused by the checker; kept so that a gap in its field
		// rules could only refuse more.
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
}

// checker reads a document once, validating it against a shape.
type checker struct {
	data         []byte
	pos          int
	depth        int
	maxDepth     int
	allowUnknown bool
	// keys holds the keys of the objects being read, innermost last, for
	// the duplicate check of small objects.
	keys [][]byte
	// path is where the value being read is, for errors.
	path []segment
}

// segment is one step of a path: a key, or an index in an array.
type segment struct {
	key   []byte
	index int
	isKey bool
}

// smallObject is how many keys an object may have before its duplicate
// check moves from comparing each key with the ones before to a set.
const smallObject = 16

// maxPathKey bounds each key quoted in an error's path.
const maxPathKey = 64

func (c *checker) fail(kind Kind, offset int, detail string) *Error {
	return &Error{Kind: kind, Path: c.pathString(), Offset: offset, detail: detail}
}

func (c *checker) pathString() string {
	var b strings.Builder
	for i, s := range c.path {
		if !s.isKey {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		k := s.key
		if len(k) > maxPathKey {
			cut := maxPathKey
			for cut > 0 && !utf8.RuneStart(k[cut]) {
				cut--
			}
			k = append(k[:cut:cut], "…"...)
		}
		b.Write(k)
	}
	return b.String()
}

func (c *checker) document(sh *shape) error {
	c.skipSpace()
	if c.pos == len(c.data) {
		return c.fail(Syntax, c.pos, "no JSON value")
	}
	if err := c.value(sh); err != nil {
		return err
	}
	c.skipSpace()
	if c.pos != len(c.data) {
		return c.fail(TrailingData, c.pos, "data after the JSON value; send exactly one")
	}
	return nil
}

func (c *checker) skipSpace() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value reads one value, its leading white space skipped by the caller.
func (c *checker) value(sh *shape) error {
	if c.pos == len(c.data) {
		return c.fail(Syntax, c.pos, "unexpected end of JSON input")
	}
	switch b := c.data[c.pos]; {
	case b == '{':
		return c.object(sh)
	case b == '[':
		return c.array(sh)
	case b == '"':
		_, err := c.str(false)
		return err
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || ('0' <= b && b <= '9'):
		return c.number()
	}
	return c.fail(Syntax, c.pos, fmt.Sprintf("invalid character %s looking for a value", quoteByte(c.data[c.pos])))
}

func quoteByte(b byte) string {
	if b < utf8.RuneSelf {
		return strconv.QuoteRune(rune(b))
	}
	return fmt.Sprintf("byte 0x%02x", b)
}

func (c *checker) enter() error {
	c.depth++
	if c.depth > c.maxDepth {
		return c.fail(TooDeep, c.pos, fmt.Sprintf("arrays and objects nest deeper than %d levels", c.maxDepth))
	}
	return nil
}

func (c *checker) object(sh *shape) error {
	if err := c.enter(); err != nil {
		return err
	}
	c.pos++ // {
	first := len(c.keys)
	var set map[string]struct{} // once the object is no longer small
	c.skipSpace()
	if c.at('}') {
		c.pos++
		c.depth--
		return nil
	}
	for n := 0; ; n++ {
		c.skipSpace()
		if !c.at('"') {
			return c.expected("a key in quotes")
		}
		at := c.pos
		key, err := c.str(true)
		if err != nil {
			return err
		}
		c.path = append(c.path, segment{key: key, isKey: true})
		switch {
		case set != nil:
			if _, dup := set[string(key)]; dup {
				return c.fail(DuplicateKey, at, "")
			}
			set[string(key)] = struct{}{}
		case n < smallObject:
			for _, k := range c.keys[first:] {
				if bytes.Equal(k, key) {
					return c.fail(DuplicateKey, at, "")
				}
			}
			c.keys = append(c.keys, key)
		default:
			set = make(map[string]struct{}, 2*smallObject)
			for _, k := range c.keys[first:] {
				set[string(k)] = struct{}{}
			}
			if _, dup := set[string(key)]; dup {
				return c.fail(DuplicateKey, at, "")
			}
			set[string(key)] = struct{}{}
		}
		member, err := c.member(sh, key, at)
		if err != nil {
			return err
		}
		c.skipSpace()
		if !c.at(':') {
			return c.expected("':' after the key")
		}
		c.pos++
		c.skipSpace()
		if err := c.value(member); err != nil {
			return err
		}
		c.path = c.path[:len(c.path)-1]
		if more, err := c.separator('}', "an object member"); !more {
			c.keys = c.keys[:first]
			c.depth--
			return err
		}
	}
}

// separator reads what follows a member or an element: a comma (more
// true), or close, or refuses anything else.
func (c *checker) separator(close byte, after string) (more bool, err error) {
	c.skipSpace()
	switch {
	case c.at(','):
		c.pos++
		return true, nil
	case c.at(close):
		c.pos++
		return false, nil
	}
	return false, c.expected(fmt.Sprintf("',' or '%c' after %s", close, after))
}

// at reports whether the next byte is b.
func (c *checker) at(b byte) bool { return c.pos < len(c.data) && c.data[c.pos] == b }

// member resolves key in an object read as sh: the shape of its value, or
// the refusal of a key that names no field, or one only case-insensitively.
func (c *checker) member(sh *shape, key []byte, at int) (*shape, error) {
	switch {
	case sh == nil:
		return nil, nil
	case sh.kind == mapOf:
		return sh.elem, nil
	case sh.kind != object:
		return nil, nil // encoding/json reports the type error
	}
	if f, ok := sh.fields[string(key)]; ok {
		return f, nil
	}
	if name, ok := sh.folded[string(foldName(key))]; ok {
		e := c.fail(CaseMismatch, at, "")
		e.Field = name
		return nil, e
	}
	if !c.allowUnknown {
		return nil, c.fail(UnknownField, at, "")
	}
	return nil, nil
}

func (c *checker) array(sh *shape) error {
	if err := c.enter(); err != nil {
		return err
	}
	c.pos++ // [
	var elem *shape
	if sh != nil && sh.kind == listOf {
		elem = sh.elem
	}
	c.skipSpace()
	if c.at(']') {
		c.pos++
		c.depth--
		return nil
	}
	c.path = append(c.path, segment{})
	for i := 0; ; i++ {
		c.path[len(c.path)-1].index = i
		c.skipSpace()
		if err := c.value(elem); err != nil {
			return err
		}
		if more, err := c.separator(']', "an array element"); !more {
			c.path = c.path[:len(c.path)-1]
			c.depth--
			return err
		}
	}
}

func (c *checker) expected(what string) error {
	if c.pos == len(c.data) {
		return c.fail(Syntax, c.pos, "unexpected end of JSON input, expecting "+what)
	}
	return c.fail(Syntax, c.pos, fmt.Sprintf("invalid character %s, expecting %s", quoteByte(c.data[c.pos]), what))
}

func (c *checker) literal(word string) error {
	if !bytes.HasPrefix(c.data[c.pos:], []byte(word)) {
		return c.fail(Syntax, c.pos, fmt.Sprintf("invalid literal, expecting %s", word))
	}
	c.pos += len(word)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; what may
// follow is the caller's to check.
func (c *checker) number() error {
	start := c.pos
	if c.data[c.pos] == '-' {
		c.pos++
	}
	switch {
	case c.at('0'):
		c.pos++
	case c.digits() == 0:
		return c.fail(Syntax, start, "invalid number")
	}
	if c.at('.') {
		c.pos++
		if c.digits() == 0 {
			return c.fail(Syntax, start, "invalid number: no digit after the decimal point")
		}
	}
	if c.at('e') || c.at('E') {
		c.pos++
		if c.at('+') || c.at('-') {
			c.pos++
		}
		if c.digits() == 0 {
			return c.fail(Syntax, start, "invalid number: no digit in the exponent")
		}
	}
	return nil
}

func (c *checker) digits() int {
	n := 0
	for c.pos < len(c.data) && '0' <= c.data[c.pos] && c.data[c.pos] <= '9' {
		c.pos++
		n++
	}
	return n
}

// str reads a string. For a key (key true) it returns its content
// unescaped: a slice of the input when it has no escapes.
func (c *checker) str(key bool) ([]byte, error) {
	c.pos++ // "
	start := c.pos
	var buf []byte // the unescaped key, once it has an escape
	for c.pos < len(c.data) {
		b := c.data[c.pos]
		switch {
		case b == '"':
			s := c.data[start:c.pos]
			if buf != nil {
				s = buf
			}
			c.pos++
			return s, nil
		case b == '\\':
			if key && buf == nil {
				buf = append([]byte(nil), c.data[start:c.pos]...)
			}
			r, err := c.escape(key)
			if err != nil {
				return nil, err
			}
			if key {
				buf = utf8.AppendRune(buf, r)
			}
		case b < 0x20:
			return nil, c.fail(Syntax, c.pos, "control character in a string; escape it")
		case b < utf8.RuneSelf:
			c.pos++
			if buf != nil {
				buf = append(buf, b)
			}
		default:
			r, n := utf8.DecodeRune(c.data[c.pos:])
			if r == utf8.RuneError && n == 1 {
				return nil, c.badUTF8(key, c.pos, "invalid UTF-8")
			}
			if buf != nil {
				buf = append(buf, c.data[c.pos:c.pos+n]...)
			}
			c.pos += n
		}
	}
	return nil, c.fail(Syntax, c.pos, "unexpected end of JSON input in a string")
}

// badUTF8 refuses a string; in a key, the path ends at the object.
func (c *checker) badUTF8(key bool, at int, detail string) error {
	if key {
		detail += " in a key"
	}
	return c.fail(InvalidUTF8, at, detail)
}

// escape reads the escape at c.pos (a backslash), in a key or a value, and
// returns the rune it stands for; a \u escape of a surrogate must be a high one followed by a
// \u escape of a low one.
func (c *checker) escape(key bool) (rune, error) {
	at := c.pos
	c.pos++
	if c.pos == len(c.data) {
		return 0, c.fail(Syntax, at, "unexpected end of JSON input in an escape")
	}
	b := c.data[c.pos]
	c.pos++
	switch b {
	case '"', '\\', '/':
		return rune(b), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, c.fail(Syntax, at, fmt.Sprintf("invalid escape \\%c", b))
	}
	r, ok := c.hex4()
	if !ok {
		return 0, c.fail(Syntax, at, "invalid \\u escape: it needs 4 hex digits")
	}
	switch {
	case r < 0xd800 || r > 0xdfff:
		return r, nil
	case r >= 0xdc00:
		return 0, c.badUTF8(key, at, fmt.Sprintf("an unpaired surrogate \\u%04x", r))
	}
	if c.pos+1 < len(c.data) && c.data[c.pos] == '\\' && c.data[c.pos+1] == 'u' {
		c.pos += 2
		lo, ok := c.hex4()
		if !ok {
			return 0, c.fail(Syntax, c.pos-2, "invalid \\u escape: it needs 4 hex digits")
		}
		if 0xdc00 <= lo && lo <= 0xdfff {
			return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), nil
		}
	}
	return 0, c.badUTF8(key, at, fmt.Sprintf("an unpaired surrogate \\u%04x", r))
}

func (c *checker) hex4() (rune, bool) {
	if len(c.data)-c.pos < 4 {
		return 0, false
	}
	var r rune
	for _, b := range c.data[c.pos : c.pos+4] {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b -= 'a' - 10
		case 'A' <= b && b <= 'F':
			b -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(b)
	}
	c.pos += 4
	return r, true
}
