package service

import (
	"encoding/json"
	"reflect"
	"testing"

	pb "github.com/paybound/paybound"
)

// TestLogDataIsCanonicalByConstruction: every type the service logs as an
// entry's data has its fields in the order of their JSON names, so that
// encoding/json writes canonical JSON without a round trip
// (pb.EncodeLogEntry's contract).
func TestLogDataIsCanonicalByConstruction(t *testing.T) {
	t.Parallel()
	for _, v := range []any{createdData{}, declinedData{}, askedData{}, authorizedData{}, capturedData{},
		releasedData{}, refundedData{}, keyData{}, topupData{}, pb.RiskOpening{}, pb.RiskDetail{},
		pb.RequestEvidence{}, pb.Actor{}} {
		checkSorted(t, reflect.TypeOf(v))
	}
}

func checkSorted(t *testing.T, typ reflect.Type) {
	t.Helper()
	if err := pb.CanonicalByConstruction(typ); err != nil {
		t.Error(err)
	}
}

// TestNewSalt: the salt that keeps an entry withheld from a party from
// being guessed from its leaf hash (internal/translog's viewEntry gives
// the leaf hash only of a salted entry) is 16 random bytes in hex.
func TestNewSalt(t *testing.T) {
	t.Parallel()
	var m map[string]any
	if a, b := newSalt(), newSalt(); json.Unmarshal([]byte(a), &m) == nil || len(a) != 32 || a == b {
		t.Error("newSalt is not 16 random bytes in hex")
	}
}
