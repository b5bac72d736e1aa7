package wallet

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Every action form carries an idempotency key made when the page was
// rendered (the idem field): submitting the same form twice (a double
// click, a reload that resends it) runs the action once, as the API's
// Idempotency-Key does; the keys live in the wallet's own space
// ("wallet:…"), apart from the API's.

// maxIdemField bounds the form's key.
const maxIdemField = 200

// errNoIdem refuses an action form without its key.
var errNoIdem = pb.Errorf(pb.ErrIdempotencyRequired, "idem", "this form is incomplete; reload the page and try again")

// idem returns the idempotency record of an action: the form's key, and a
// hash of what the action does with which values, so the same key with
// other values is refused as the API refuses it.
func (h *Handler) idem(r *http.Request, ss *session, action string, values ...string) (*service.Idempotency, error) {
	key := r.PostFormValue("idem")
	if key == "" || len(key) > maxIdemField || strings.ContainsFunc(key, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return nil, errNoIdem
	}
	hash := sha256.New()
	hash.Write([]byte(action))
	for _, v := range values {
		hash.Write([]byte{0})
		hash.Write([]byte(v))
	}
	id := &service.Idempotency{Caller: ss.principal.ID, Key: "wallet:" + key}
	copy(id.Hash[:], hash.Sum(nil))
	id.Render = func(v any, err error) (int, []byte) {
		if err != nil {
			return rest.ErrorJSON(h.cfg.Logger, err)
		}
		b, merr := json.Marshal(v)
		if merr != nil {
			return rest.ErrorJSON(h.cfg.Logger, merr)
		}
		return http.StatusOK, b
	}
	return id, nil
}

// outcome is an action's error as the page shows it: nil for success and
// for a replay (the first submission's outcome stands; the page shows the
// resource as it is now), else the error. A replayed failure is the
// stored error.
func outcome(res service.Result, idem *service.Idempotency) error {
	if res.Replayed {
		if idem != nil && idem.Status >= 300 {
			var env struct {
				Error *pb.Error `json:"error"`
			}
			if json.Unmarshal(idem.Body, &env) == nil && env.Error != nil {
				return env.Error
			}
			return errors.New("the stored outcome could not be read")
		}
		return nil
	}
	return res.Err
}
