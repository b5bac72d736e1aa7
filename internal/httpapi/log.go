package httpapi

import (
	"strconv"
	"strings"

	pb "github.com/paybound/paybound"
)

// raw is a response that is not JSON, or JSON whose exact bytes matter (a
// log entry): wrap writes Body as it is.
type raw struct {
	ContentType string
	Body        []byte
}

func (s *Server) logKey(q *request) (int, any, error) {
	return 200, raw{"text/plain; charset=utf-8", []byte(s.svc.LogKey() + "\n")}, nil
}

func (s *Server) logCheckpoint(q *request) (int, any, error) {
	c, err := s.svc.SignedCheckpoint(q.ctx)
	if err != nil {
		return 0, nil, err
	}
	return 200, raw{"text/plain; charset=utf-8", c.Note}, nil
}

// int64Param reads a required non-negative integer query parameter.
func int64Param(q *request, name string) (int64, error) {
	v := q.r.URL.Query().Get(name)
	if v == "" {
		return 0, pb.Errorf(pb.ErrParameterMissing, name, "%s is required", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, pb.Errorf(pb.ErrParameterInvalid, name, "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (s *Server) logEntry(q *request) (int, any, error) {
	v := q.r.PathValue("index")
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "index", "index must be a non-negative integer")
	}
	e, err := s.svc.LogEntry(q.ctx, q.caller, i)
	if err != nil {
		return 0, nil, err
	}
	return 200, raw{"application/json", e.Body}, nil
}

func (s *Server) inclusionProof(q *request) (int, any, error) {
	index, err := int64Param(q, "index")
	if err != nil {
		return 0, nil, err
	}
	size, err := int64Param(q, "size")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.svc.InclusionProof(q.ctx, index, size)
	return 200, p, err
}

func (s *Server) consistencyProof(q *request) (int, any, error) {
	old, err := int64Param(q, "old")
	if err != nil {
		return 0, nil, err
	}
	nw, err := int64Param(q, "new")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.svc.ConsistencyProof(q.ctx, old, nw)
	return 200, p, err
}

// tile serves the C2SP tlog-tiles read paths under /v1/log/:
// tile/<L>/<N>[.p/<W>] (hashes, public) and tile/entries/<N>[.p/<W>]
// (entries, operator). N is written in groups of three digits, every
// group but the last prefixed with x: 1234067 is x001/x234/067.
func (s *Server) tile(q *request) (int, any, error) {
	level, n, width, ok := parseTilePath(q.r.PathValue("path"))
	if ok && level == -1 { // entry bundles carry payment details: the operator's key
		var err error
		if q.caller, err = s.bearer(q.r); err != nil {
			return 0, nil, err
		}
	}
	if !ok {
		return 0, nil, pb.Errorf(pb.ErrNotFound, "", "not a tile path: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
	}
	body, err := s.svc.Tile(q.ctx, q.caller, level, n, width)
	if err != nil {
		return 0, nil, err
	}
	return 200, raw{"application/octet-stream", body}, nil
}

// parseTilePath parses what follows tile/ in a C2SP tile path; level -1 is
// an entry bundle. Only canonical spellings are accepted.
func parseTilePath(p string) (level int, n int64, width int, ok bool) {
	first, rest, found := strings.Cut(p, "/")
	if !found {
		return 0, 0, 0, false
	}
	if first == "entries" {
		level = -1
	} else {
		l, err := strconv.Atoi(first)
		if err != nil || l < 0 || l > 63 || strconv.Itoa(l) != first {
			return 0, 0, 0, false
		}
		level = l
	}
	width = 256
	if idx, w, partial := strings.Cut(rest, ".p/"); partial {
		v, err := strconv.Atoi(w)
		if err != nil || v < 1 || v > 255 || strconv.Itoa(v) != w {
			return 0, 0, 0, false
		}
		rest, width = idx, v
	}
	groups := strings.Split(rest, "/")
	if len(groups) > 7 || (len(groups) > 1 && groups[0] == "x000") {
		return 0, 0, 0, false
	}
	for i, g := range groups {
		if i < len(groups)-1 {
			var had bool
			if g, had = strings.CutPrefix(g, "x"); !had {
				return 0, 0, 0, false
			}
		}
		if len(g) != 3 || strings.Trim(g, "0123456789") != "" {
			return 0, 0, 0, false
		}
		d, _ := strconv.Atoi(g)
		if n > (1<<63-1-999)/1000 {
			return 0, 0, 0, false
		}
		n = n*1000 + int64(d)
	}
	return level, n, width, true
}

func (s *Server) trace(q *request) (int, any, error) {
	t, err := s.svc.PaymentTrace(q.ctx, q.caller, q.r.PathValue("id"))
	return 200, t, err
}

func (s *Server) receipt(q *request) (int, any, error) {
	r, err := s.svc.PaymentReceipt(q.ctx, q.caller, q.r.PathValue("id"))
	return 200, r, err
}
