package translog

import (
	"testing"

	"github.com/paybound/paybound/internal/tlog"
)

func TestParseTilePath(t *testing.T) {
	for _, c := range []struct {
		path  string
		level int
		n     int64
		width int
		ok    bool
	}{
		{"0/000", 0, 0, 256, true},
		{"1/x001/x234/067.p/8", 1, 1234067, 8, true},
		{"entries/005", -1, 5, 256, true},
		{"entries/x001/000.p/255", -1, 1000, 255, true},
		{"0/1", 0, 0, 0, false},         // not three digits
		{"0/000.p/0", 0, 0, 0, false},   // an empty partial tile
		{"0/000.p/256", 0, 0, 0, false}, // a full tile is not partial
		{"0/001/002", 0, 0, 0, false},   // groups before the last need x
		{"64/000", 0, 0, 0, false},      // no such level
		{"00/000", 0, 0, 0, false},      // not canonical
		{"0/x000/000.p/08", 0, 0, 0, false},
		{"0/x000/005", 0, 0, 0, false}, // a leading zero group
	} {
		level, n, width, ok := parseTilePath(c.path)
		if ok != c.ok || (ok && (level != c.level || n != c.n || width != c.width)) {
			t.Errorf("parseTilePath(%q) = %d %d %d %v; want %d %d %d %v", c.path, level, n, width, ok, c.level, c.n, c.width, c.ok)
		}
	}
}

// FuzzTilePath: every path parseTilePath accepts is the canonical spelling
// of the tile it names.
func FuzzTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "1/x001/x234/067.p/8", "entries/005", "entries/x001/000.p/255", "0/1", "0/000.p/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		level, n, width, ok := parseTilePath(s)
		if !ok {
			return
		}
		if got := tlog.TilePath(level, n, width); got != s {
			t.Fatalf("parseTilePath(%q) = %d %d %d, which is spelled %q", s, level, n, width, got)
		}
	})
}
