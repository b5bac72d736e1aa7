package service

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
)

// TestLogDataIsCanonicalByConstruction: every type the service logs as an
// entry's data has its fields in the order of their JSON names, so that
// encoding/json writes canonical JSON without a round trip
// (pb.EncodeLogEntry's contract).
func TestLogDataIsCanonicalByConstruction(t *testing.T) {
	for _, v := range []any{createdData{}, declinedData{}, askedData{}, authorizedData{}, capturedData{}, approvedData{},
		releasedData{}, refundedData{}, keyData{}, topupData{}, disputeData{}, compensationData{}, pb.RiskOpening{}, pb.RiskDetail{},
		pb.RequestEvidence{}, pb.Actor{}} {
		checkSorted(t, reflect.TypeOf(v))
	}
}

func checkSorted(t *testing.T, typ reflect.Type) {
	t.Helper()
	var names []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" {
			checkSorted(t, ft)
		}
		switch ft.Kind() {
		case reflect.Float32, reflect.Float64, reflect.Interface:
			t.Errorf("%s.%s is a %s: not canonical by construction", typ.Name(), f.Name, ft.Kind())
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("%s's fields are not in the order of their JSON names: %v", typ.Name(), names)
	}
}
