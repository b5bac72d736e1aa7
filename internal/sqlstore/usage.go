package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// BillingUsagePacks is the usage events, only ever inserted, packed: a
// row (a pack) holds the events of one provider's customer whose own
// times fall in one hour, as one batch brought them. The usage read of a
// customer over a time range reads the packs of the hours it spans, and a
// pack's row is a single insert however many events it holds: a row an
// event, keyed by customer and time, cost an ingest about a third of its
// CPU (8 µs an event of 24, BenchmarkTokenPayIngest). seq numbers the
// packs as they came (an INTEGER PRIMARY KEY in SQLite, an identity in
// PostgreSQL); created_ms is the latest arrival of its events, to the
// second (UsageLine.CreatedAt): each of their IDs was seen before
// created_ms + 1 s, which the SQLite store's forgetting of IDs relies on.
// The deduplication is BillingEventIDs'.
var BillingUsagePacks = NewTable("billing_usage_packs", "provider_id, customer_id, hour_ms, created_ms, events, data", "")

// hourMS is an hour in milliseconds, a pack's span of event times.
const hourMS = int64(time.Hour / time.Millisecond)

// floorHour is the start of the hour that holds ms.
func floorHour(ms int64) int64 { return ms - ((ms%hourMS)+hourMS)%hourMS }

// UsagePack is the lines of one pack: all of one provider, customer and
// hour of event time; an event's lines consecutive, as Token Pay writes
// them.
type UsagePack struct {
	Lines []pb.UsageLine
}

// maxPackLines bounds a pack: a pack holds at most this many lines but
// for the rest of an event's (a batch may hold thousands of operations of
// one customer), so that its JSON stays within a few MB, far below what
// Inflate accepts (maxInflated).
const maxPackLines = 4096

// UsagePacks groups a batch's lines into packs, in the order their first
// lines come. The common batch, one customer in one hour, is one pack
// over lines itself, copied nowhere.
func UsagePacks(lines []pb.UsageLine) []UsagePack {
	if len(lines) == 0 {
		return nil
	}
	type key struct {
		provider, customer string
		hour               int64
	}
	keyOf := func(l *pb.UsageLine) key { return key{l.ProviderID, l.CustomerID, floorHour(l.Time.UnixMilli())} }
	first := keyOf(&lines[0])
	i := 1
	for i < len(lines) && keyOf(&lines[i]) == first {
		i++
	}
	if i == len(lines) && len(lines) <= maxPackLines {
		return []UsagePack{{Lines: lines}}
	}
	var out []UsagePack
	at := map[key]int{} // the pack each key fills now
	for j := range lines {
		k := keyOf(&lines[j])
		n, ok := at[k]
		if ok {
			// A full pack takes no new event.
			if p := out[n].Lines; len(p) >= maxPackLines && !sameEvent(&p[len(p)-1], &lines[j]) {
				ok = false
			}
		}
		if !ok {
			n = len(out)
			at[k] = n
			out = append(out, UsagePack{})
		}
		out[n].Lines = append(out[n].Lines, lines[j])
	}
	return out
}

// UsagePackArgs encodes a pack as BillingUsagePacks' columns. Its data is
// Compact of a JSON array with an array per event: ID, time (ms), arrival
// (s), meter, model, reservation, dims (an object), and the lines that
// differ, packed (appendPackedLines). JSON so that a migration can write the same
// from rows (json_array, json_build_array); packed, the events' repeats
// (model, meter, price IDs, the arrival) cost little.
func UsagePackArgs(d []any, p *UsagePack) ([]any, error) {
	x := &p.Lines[0]
	buf := append(make([]byte, 0, 128*len(p.Lines)), '[')
	created := x.CreatedAt
	n := 0
	for i := 0; i < len(p.Lines); {
		j := i + 1
		for j < len(p.Lines) && sameEvent(&p.Lines[i], &p.Lines[j]) {
			j++
		}
		e := &p.Lines[i]
		if e.CreatedAt.After(created) {
			created = e.CreatedAt
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = AppendJSONString(append(buf, '['), e.EventID)
		buf = strconv.AppendInt(append(buf, ','), e.Time.UnixMilli(), 10)
		buf = strconv.AppendInt(append(buf, ','), e.CreatedAt.Unix(), 10)
		for _, f := range []string{e.Meter, e.Model, e.ReservationID} {
			buf = AppendJSONString(append(buf, ','), f)
		}
		buf = append(buf, ",{}"...)
		if len(e.Dims) > 0 {
			dims, err := json.Marshal(e.Dims)
			if err != nil {
				return d, fmt.Errorf("couldn't encode usage event %s: %w", e.EventID, err)
			}
			buf = append(buf[:len(buf)-2], dims...)
		}
		buf = appendPackedLines(append(buf, ','), p.Lines[i:j])
		buf = append(buf, ']')
		n++
		i = j
	}
	buf = append(buf, ']')
	return append(d, x.ProviderID, x.CustomerID, floorHour(x.Time.UnixMilli()), created.UnixMilli(), n, Compact(buf)), nil
}

// AppendJSONString appends s as a JSON string.
func AppendJSONString(b []byte, s string) []byte {
	return append(appendJSONChars(append(b, '"'), s), '"')
}

// appendJSONChars appends s as the inside of a JSON string. IDs, meters
// and most models need no escape and are copied. Bytes from 0x80 are
// copied as they are: the strings came from JSON requests, valid UTF-8.
func appendJSONChars(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		}
		last = i + 1
	}
	return append(b, s[last:]...)
}

// appendPackedLines appends, as a JSON string, what differs between an
// event's lines: per line, its name, quantity, price, charged, overdraft
// and uncollected, separated by tabs, the lines by newlines (unpackLines
// reads them; names and price IDs hold neither).
func appendPackedLines(b []byte, ls []pb.UsageLine) []byte {
	b = append(b, '"')
	for i := range ls {
		l := &ls[i]
		if i > 0 {
			b = append(b, `\n`...)
		}
		b = append(appendJSONChars(b, l.Line), `\t`...)
		b = append(strconv.AppendInt(b, l.Quantity, 10), `\t`...)
		b = append(appendJSONChars(b, l.PriceID), `\t`...)
		b = append(strconv.AppendInt(b, l.Charged, 10), `\t`...)
		b = append(strconv.AppendInt(b, l.Overdraft, 10), `\t`...)
		b = strconv.AppendInt(b, l.Uncollected, 10)
	}
	return append(b, '"')
}

// unpackLines reads appendPackedLines' lines onto base, the event's shared fields.
func unpackLines(base pb.UsageLine, packed string, out []pb.UsageLine) ([]pb.UsageLine, error) {
	for _, ln := range strings.Split(packed, "\n") {
		f := strings.Split(ln, "\t")
		if len(f) != 6 {
			return out, fmt.Errorf("usage event %s has an unreadable line %q", base.EventID, ln)
		}
		l := base
		l.Line, l.PriceID = f[0], f[2]
		var err error
		for i, p := range []*int64{&l.Quantity, &l.Charged, &l.Overdraft, &l.Uncollected} {
			if *p, err = strconv.ParseInt(f[[]int{1, 3, 4, 5}[i]], 10, 64); err != nil {
				return out, fmt.Errorf("usage event %s has an unreadable line %q", base.EventID, ln)
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func sameEvent(a, b *pb.UsageLine) bool {
	return a.ProviderID == b.ProviderID && a.EventID == b.EventID && a.CustomerID == b.CustomerID && a.Meter == b.Meter &&
		a.Time.Equal(b.Time) && a.Model == b.Model && a.ReservationID == b.ReservationID && a.CreatedAt.Equal(b.CreatedAt) &&
		len(a.Dims) == 0 && len(b.Dims) == 0
}

// packedEvent is one event of a pack, as UsagePackArgs wrote it.
type packedEvent struct {
	id, meter, model, rsv, lines string
	ms, created                  int64
	dims                         map[string]string
}

// UnmarshalJSON reads the event's array, field by field into e.
func (e *packedEvent) UnmarshalJSON(b []byte) error {
	fields := [...]any{&e.id, &e.ms, &e.created, &e.meter, &e.model, &e.rsv, &e.dims, &e.lines}
	return json.Unmarshal(b, &fields)
}

// unpackUsage appends the lines of pack data (of provider's customer)
// whose event time is in [from, to), in ms.
func unpackUsage(provider, customer string, data []byte, from, to int64, out []pb.UsageLine) ([]pb.UsageLine, error) {
	evs, err := unpackEvents(data)
	if err != nil {
		return out, fmt.Errorf("usage of %s: %w", customer, err)
	}
	for i := range evs {
		e := &evs[i]
		if e.ms < from || e.ms >= to {
			continue
		}
		base := pb.UsageLine{ProviderID: provider, CustomerID: customer, EventID: e.id, Meter: e.meter, Model: e.model, ReservationID: e.rsv,
			Time: time.UnixMilli(e.ms).UTC(), CreatedAt: unix(e.created)}
		if len(e.dims) > 0 {
			base.Dims = e.dims
		}
		if out, err = unpackLines(base, e.lines, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// PackEventIDs returns the IDs of a pack's events (its data column), in
// the order stored.
func PackEventIDs(data []byte) ([]string, error) {
	evs, err := unpackEvents(data)
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].id
	}
	return ids, err
}

// unpackEvents decodes a pack's data column.
func unpackEvents(data []byte) ([]packedEvent, error) {
	raw, err := Inflate(data)
	if err != nil {
		return nil, fmt.Errorf("a usage pack is damaged: %w", err)
	}
	var evs []packedEvent
	if err := json.Unmarshal(raw, &evs); err != nil {
		return nil, fmt.Errorf("a usage pack is unreadable: %w", err)
	}
	return evs, nil
}

// sortUsage orders lines as UsageLines returns them: by event time, event
// ID and arrival, an event's lines by Line.
func sortUsage(lines []pb.UsageLine) {
	slices.SortFunc(lines, func(a, b pb.UsageLine) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.EventID, b.EventID); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Line, b.Line)
	})
}

// errEnoughLines stops UsageLines once it read more than its limit.
var errEnoughLines = errors.New("more usage lines than the limit")

func (r Reads) UsageLines(ctx context.Context, f pb.UsageFilter) ([]pb.UsageLine, error) {
	from, to := f.From.UnixMilli(), f.To.UnixMilli()
	out := []pb.UsageLine{}
	hour, n := int64(math.MinInt64), 0 // the hour being read, and where its lines begin in out
	err := r.DB.Query(ctx, func(s Scanner) error {
		var h int64
		var data []byte
		if err := s.Scan(&h, &data); err != nil {
			return err
		}
		if h != hour {
			// The hour before is whole: order it, and stop once past the limit.
			sortUsage(out[n:])
			if len(out) > f.Limit {
				return errEnoughLines
			}
			hour, n = h, len(out)
		}
		var err error
		out, err = unpackUsage(f.ProviderID, f.CustomerID, data, from, to, out)
		return err
	}, `SELECT hour_ms, data FROM billing_usage_packs WHERE provider_id = $1 AND customer_id = $2 AND hour_ms >= $3 AND hour_ms < $4
		ORDER BY hour_ms, seq`, f.ProviderID, f.CustomerID, floorHour(from), to)
	if err != nil && !errors.Is(err, errEnoughLines) {
		return nil, fmt.Errorf("couldn't read usage: %w", err)
	}
	sortUsage(out[n:])
	return out, nil
}
