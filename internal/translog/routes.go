package translog

import (
	"strconv"
	"strings"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
)

// Routes are the log's part of the REST API, which the server mounts: a
// payment's trace and receipt, and the log's own read paths (the key, the
// checkpoint, an entry, proofs, C2SP tiles), most of them public.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "GET", Pattern: "/v1/payments/{id}/trace", Handler: s.trace},
		{Method: "GET", Pattern: "/v1/payments/{id}/receipt", Handler: s.receipt},
		{Method: "GET", Pattern: "/v1/log/key", Public: true, Handler: s.logKey},
		{Method: "GET", Pattern: "/v1/log/checkpoint", Public: true, Handler: s.logCheckpoint},
		{Method: "GET", Pattern: "/v1/log/entries/{index}", Handler: s.logEntry},
		{Method: "GET", Pattern: "/v1/log/proof/inclusion", Public: true, Handler: s.inclusionProof},
		{Method: "GET", Pattern: "/v1/log/proof/consistency", Public: true, Handler: s.consistencyProof},
		{Method: "GET", Pattern: "/v1/log/tile/{path...}", Public: true, Handler: s.tile},
	}
}

func (s *Service) logKey(q *rest.Request) (int, any, error) {
	return 200, rest.Raw{ContentType: "text/plain; charset=utf-8", Body: []byte(s.LogKey() + "\n")}, nil
}

func (s *Service) logCheckpoint(q *rest.Request) (int, any, error) {
	c, err := s.SignedCheckpoint(q.Ctx)
	if err != nil {
		return 0, nil, err
	}
	return 200, rest.Raw{ContentType: "text/plain; charset=utf-8", Body: c.Note}, nil
}

// int64Param reads a required non-negative integer query parameter.
func int64Param(q *rest.Request, name string) (int64, error) {
	v := q.Query(name)
	if v == "" {
		return 0, pb.Errorf(pb.ErrParameterMissing, name, "%s is required", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, pb.Errorf(pb.ErrParameterInvalid, name, "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (s *Service) logEntry(q *rest.Request) (int, any, error) {
	v := q.PathValue("index")
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "index", "index must be a non-negative integer")
	}
	e, err := s.LogEntry(q.Ctx, q.Caller, i)
	if err != nil {
		return 0, nil, err
	}
	return 200, rest.Raw{ContentType: "application/json", Body: e.Body}, nil
}

func (s *Service) inclusionProof(q *rest.Request) (int, any, error) {
	index, err := int64Param(q, "index")
	if err != nil {
		return 0, nil, err
	}
	size, err := int64Param(q, "size")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.InclusionProof(q.Ctx, index, size)
	return 200, p, err
}

func (s *Service) consistencyProof(q *rest.Request) (int, any, error) {
	old, err := int64Param(q, "old")
	if err != nil {
		return 0, nil, err
	}
	nw, err := int64Param(q, "new")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.ConsistencyProof(q.Ctx, old, nw)
	return 200, p, err
}

// tile serves the C2SP tlog-tiles read paths under /v1/log/:
// tile/<L>/<N>[.p/<W>] (hashes, public) and tile/entries/<N>[.p/<W>]
// (entries, operator). N is written in groups of three digits, every
// group but the last prefixed with x: 1234067 is x001/x234/067.
func (s *Service) tile(q *rest.Request) (int, any, error) {
	level, n, width, ok := parseTilePath(q.PathValue("path"))
	if ok && level == -1 { // entry bundles carry payment details: the operator's key
		var err error
		if q.Caller, err = q.Bearer(); err != nil {
			return 0, nil, err
		}
	}
	if !ok {
		return 0, nil, pb.Errorf(pb.ErrNotFound, "", "not a tile path: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
	}
	body, err := s.Tile(q.Ctx, q.Caller, level, n, width)
	if err != nil {
		return 0, nil, err
	}
	return 200, rest.Raw{ContentType: "application/octet-stream", Body: body}, nil
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

func (s *Service) trace(q *rest.Request) (int, any, error) {
	t, err := s.PaymentTrace(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, t, err
}

func (s *Service) receipt(q *rest.Request) (int, any, error) {
	r, err := s.PaymentReceipt(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, r, err
}
