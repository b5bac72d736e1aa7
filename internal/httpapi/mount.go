package httpapi

import (
	"net/http"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
)

// Handle mounts h, another protocol's adapter (ACP), at pattern on the
// server's mux, inside its access log and metrics. h answers every
// request under pattern itself.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Authenticate authenticates r as the REST API does, for an adapter that
// serves another protocol with the same credentials: the request's RFC 9421
// signature over body when it is signed and sends no Authorization header,
// else its bearer key. A refusal is logged as a security event and
// returned as a coded error.
func (s *Server) Authenticate(r *http.Request, body []byte) (pb.Principal, error) {
	q := &rest.Request{HTTP: r, Ctx: r.Context(), Body: body}
	if err := s.authenticate(r, Route{}, q); err != nil {
		return pb.Principal{}, err
	}
	return q.Caller, nil
}
