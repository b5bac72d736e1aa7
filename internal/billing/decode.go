package billing

import (
	"math"
	"time"

	pb "github.com/paybound/paybound"
)

// decodeEvents reads body, the usual POST /v1/billing/events, into its
// events without reflection, and reports whether it could. It reads only
// a plain shape: {"events": [...]} of events whose members are among id,
// customer, meter, timestamp, reservation, model and usage, each once,
// spelled exactly; strings of printable ASCII without escapes; token
// counts as plain integers. Anything else (a generic meter's data, null,
// an escape, a byte from 0x80, an unknown or repeated member, a fraction,
// a number past int64, trailing bytes) it leaves to strictjson (ok false),
// which decodes or refuses it with its own errors. What it reads, it
// reads as strictjson.Unmarshal does (FuzzDecodeEvents): a thousand
// events decoded through reflection cost a sixth of an ingest's CPU.
func decodeEvents(body []byte) (events []Event, ok bool) {
	d := eventDecoder{b: body}
	if !d.next('{') || string(d.key()) != "events" || !d.next(':') || !d.next('[') {
		return nil, false
	}
	// Room for the events the body may hold: one is some 80 bytes.
	events = make([]Event, 0, min(len(body)/64, pb.MaxEventBatch)+1)
	if d.peek(']') {
		d.i++
	} else {
		for {
			events = append(events, Event{})
			if !d.event(&events[len(events)-1]) {
				return nil, false
			}
			if d.peek(',') {
				d.i++
				continue
			}
			if !d.next(']') {
				return nil, false
			}
			break
		}
	}
	if !d.next('}') {
		return nil, false
	}
	d.space()
	return events, d.i == len(d.b)
}

// eventDecoder reads b from i. Its methods report false, having read an
// unknown amount, at anything outside decodeEvents' shape.
type eventDecoder struct {
	b []byte
	i int
}

func (d *eventDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek skips white space and reports whether c comes next.
func (d *eventDecoder) peek(c byte) bool {
	d.space()
	return d.i < len(d.b) && d.b[d.i] == c
}

// next reads c, after white space.
func (d *eventDecoder) next(c byte) bool {
	if !d.peek(c) {
		return false
	}
	d.i++
	return true
}

// str reads a string of printable ASCII without escapes and returns its
// bytes, quotes included (nil when it can't).
func (d *eventDecoder) str() []byte {
	if !d.next('"') {
		return nil
	}
	start := d.i - 1
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return d.b[start:d.i]
		case c < 0x20 || c == '\\' || c >= 0x80:
			return nil
		}
	}
	return nil
}

// key reads a member's name (nil when it can't), without its quotes.
func (d *eventDecoder) key() []byte {
	s := d.str()
	if s == nil {
		return nil
	}
	return s[1 : len(s)-1]
}

// text reads a member's string value into *v.
func (d *eventDecoder) text(v *string) bool {
	s := d.str()
	if s == nil {
		return false
	}
	*v = string(s[1 : len(s)-1])
	return true
}

// integer reads a JSON number that is a plain integer within int64.
func (d *eventDecoder) integer() (int64, bool) {
	d.space()
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	start := d.i
	var u uint64
	for ; d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9'; d.i++ {
		if u > (math.MaxInt64-9)/10 {
			return 0, false // may pass int64: strictjson says what it is
		}
		u = u*10 + uint64(d.b[d.i]-'0')
	}
	n := d.i - start
	if n == 0 || (n > 1 && d.b[start] == '0') {
		return 0, false
	}
	if d.i < len(d.b) {
		if c := d.b[d.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// Members of an event, as bits of what one has read.
const (
	memberID = 1 << iota
	memberCustomer
	memberMeter
	memberTimestamp
	memberReservation
	memberModel
	memberUsage
)

// event reads one event object into e.
func (d *eventDecoder) event(e *Event) bool {
	if !d.next('{') {
		return false
	}
	if d.peek('}') {
		d.i++
		return true
	}
	seen := 0
	for {
		k := d.key()
		if k == nil || !d.next(':') {
			return false
		}
		var bit int
		var ok bool
		switch string(k) {
		case "id":
			bit, ok = memberID, d.text(&e.ID)
		case "customer":
			bit, ok = memberCustomer, d.text(&e.Customer)
		case "meter":
			bit, ok = memberMeter, d.text(&e.Meter)
		case "reservation":
			bit, ok = memberReservation, d.text(&e.Reservation)
		case "model":
			bit, ok = memberModel, d.text(&e.Model)
		case "timestamp":
			bit = memberTimestamp
			if s := d.str(); s != nil {
				t := new(time.Time)
				ok = t.UnmarshalJSON(s) == nil
				e.Timestamp = t
			}
		case "usage":
			bit, ok = memberUsage, d.usage(e)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if d.peek(',') {
			d.i++
			continue
		}
		return d.next('}')
	}
}

// usage reads the LLM meter's token counts into e.Usage.
func (d *eventDecoder) usage(e *Event) bool {
	if !d.next('{') {
		return false
	}
	e.Usage = make(map[string]int64, 4)
	if d.peek('}') {
		d.i++
		return true
	}
	for {
		k := d.key()
		if k == nil || !d.next(':') {
			return false
		}
		if _, dup := e.Usage[string(k)]; dup {
			return false
		}
		v, ok := d.integer()
		if !ok {
			return false
		}
		e.Usage[string(k)] = v
		if d.peek(',') {
			d.i++
			continue
		}
		return d.next('}')
	}
}
