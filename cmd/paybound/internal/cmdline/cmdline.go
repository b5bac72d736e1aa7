// Package cmdline holds what the paybound command's parts share: the
// server (package main), the client commands (cli) and the load generator
// (bench) print their flags one way, end with the same errors for the same
// exit statuses, read the files their flags name within bounds, and agree
// on what --db names.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrReported is wrapped by the error of a command that already printed
// it; ErrUsage by that of a command given a command line it cannot run,
// after printing its usage. main exits 1 for the first and 2 for the
// second.
var (
	ErrReported = errors.New("reported")
	ErrUsage    = errors.New("usage")
)

// UsageFor sets fs's usage to synopsis and its flags, the --name way.
func UsageFor(fs *flag.FlagSet, w io.Writer, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: %s\n\nflags:\n", synopsis)
		printFlags(w, fs)
	}
}

// printFlags lists fs's flags as the README writes them, --name VALUE,
// with their defaults; the flag package itself accepts -name and --name.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}

// ReadFile reads the file at path, which must hold at most limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, err
}

// IsPostgres reports whether db, the value of a --db flag, is a
// PostgreSQL URL rather than a SQLite file path.
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}
