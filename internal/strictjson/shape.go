package strictjson

import (
	"cmp"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// shape is what the checker needs of a Go type: the field names of the
// objects it decodes into, wherever they are in it. A nil *shape takes any
// value with no name matching (scalars, interfaces, json.RawMessage, types
// with their own UnmarshalJSON or UnmarshalText).
type shape struct {
	kind shapeKind
	// fields maps each JSON name of an object's fields to its value's
	// shape; folded maps foldName of each to the name.
	fields map[string]*shape
	folded map[string]string
	// elem is the shape of a map's values or a list's elements.
	elem *shape
}

type shapeKind int

const (
	object shapeKind = iota + 1
	mapOf
	listOf
)

var (
	shapes             sync.Map // reflect.Type → *shape
	jsonUnmarshalerTyp = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerTyp = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// shapeOf returns the shape of t, from the cache once built.
func shapeOf(t reflect.Type) (*shape, error) {
	if sh, ok := shapes.Load(t); ok {
		return sh.(*shape), nil
	}
	sh, err := build(t, map[reflect.Type]*shape{})
	if err != nil {
		return nil, err
	}
	got, _ := shapes.LoadOrStore(t, sh)
	return got.(*shape), nil
}

// build computes the shape of t. building holds the struct shapes being
// built, so that a recursive type refers to itself.
func build(t reflect.Type, building map[reflect.Type]*shape) (*shape, error) {
	if t.Implements(jsonUnmarshalerTyp) || t.Implements(textUnmarshalerTyp) ||
		reflect.PointerTo(t).Implements(jsonUnmarshalerTyp) || reflect.PointerTo(t).Implements(textUnmarshalerTyp) {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return build(t.Elem(), building)
	case reflect.Slice, reflect.Array:
		elem, err := build(t.Elem(), building)
		if elem == nil || err != nil {
			return nil, err
		}
		return &shape{kind: listOf, elem: elem}, nil
	case reflect.Map:
		// encoding/json turns other keys into values ("1" and "01" into the
		// same int), which would let two different keys collide.
		kt := t.Key()
		if kt.Kind() != reflect.String || reflect.PointerTo(kt).Implements(textUnmarshalerTyp) {
			return nil, fmt.Errorf("strictjson: cannot decode into %v: map keys must be strings", t)
		}
		elem, err := build(t.Elem(), building)
		if elem == nil || err != nil {
			return nil, err
		}
		return &shape{kind: mapOf, elem: elem}, nil
	case reflect.Struct:
		if sh, ok := building[t]; ok {
			return sh, nil
		}
		sh := &shape{kind: object, fields: map[string]*shape{}, folded: map[string]string{}}
		building[t] = sh
		for _, f := range structFields(t) {
			fs, err := build(f.typ, building)
			if err != nil {
				return nil, err
			}
			sh.fields[f.name] = fs
			if _, ok := sh.folded[string(foldName([]byte(f.name)))]; !ok {
				sh.folded[string(foldName([]byte(f.name)))] = f.name
			}
		}
		return sh, nil
	}
	return nil, nil
}

// field is one JSON member of a struct, as encoding/json names it.
type field struct {
	name   string
	tagged bool
	index  []int
	typ    reflect.Type
}

// structFields lists the members encoding/json decodes into t: exported
// fields under their json tag's name or their own, and the fields of
// embedded structs promoted by Go's rules, except that a tagged field wins
// over an untagged one at the same depth, and two of a name at the same
// depth and both tagged or both untagged hide each other.
func structFields(t reflect.Type) []field {
	var all []field
	next := []embedded{{typ: t}}
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		level := next
		next = nil
		seen := map[reflect.Type]int{} // embedded types met at this level
		for _, e := range level {
			seen[e.typ]++
		}
		for _, e := range level {
			if visited[e.typ] {
				continue
			}
			visited[e.typ] = true
			fields, embeds := e.fields()
			all = append(all, fields...)
			if seen[e.typ] > 1 {
				// The same struct embedded twice at one depth: its fields
				// hide each other.
				all = append(all, fields...)
			}
			next = append(next, embeds...)
		}
	}
	return dominant(all)
}

// embedded is a struct type met while listing fields, and the index of
// the field it is (empty for the outermost).
type embedded struct {
	typ   reflect.Type
	index []int
}

// fields lists e's own members as encoding/json names them, and the
// untagged embedded structs whose fields are promoted from the next depth.
func (e embedded) fields() (fields []field, next []embedded) {
	for i := range e.typ.NumField() {
		sf := e.typ.Field(i)
		if sf.Anonymous {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if !sf.IsExported() && et.Kind() != reflect.Struct {
				continue
			}
		} else if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if !validTagName(name) {
			name = ""
		}
		index := append(slices.Clone(e.index), i)
		ft := sf.Type
		if ft.Name() == "" && ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
			next = append(next, embedded{typ: ft, index: index})
			continue
		}
		f := field{name: name, tagged: name != "", index: index, typ: sf.Type}
		if f.name == "" {
			f.name = sf.Name
		}
		fields = append(fields, f)
	}
	return fields, next
}

// dominant keeps, of the fields of each name, the one Go's rules let
// through: the shallowest, and of those the tagged one; two at the same
// depth and both tagged or both untagged hide each other.
func dominant(all []field) []field {
	slices.SortFunc(all, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	var out []field
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		if j-i == 1 || len(all[i].index) != len(all[i+1].index) || all[i].tagged != all[i+1].tagged {
			out = append(out, all[i])
		}
		i = j
	}
	return out
}

// validTagName reports whether encoding/json takes name from a json tag:
// letters, digits and ASCII punctuation other than quotes, backslash and
// comma.
func validTagName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", r) && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// foldName maps a name to a form shared by exactly the names that
// bytes.EqualFold takes as equal to it, which is how encoding/json matches
// keys to fields: each rune to the smallest of its simple case folding
// orbit.
func foldName(name []byte) []byte {
	out := make([]byte, 0, len(name))
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRune(name[i:])
		i += n
		for {
			next := unicode.SimpleFold(r)
			if next <= r {
				r = next
				break
			}
			r = next
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}
