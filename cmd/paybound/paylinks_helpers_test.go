package main

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// page is a response read as it is, for routes that answer other than
// the API's JSON.
type page struct {
	status int
	header http.Header
	raw    []byte
}

// get fetches path with an Accept header and no key, as a browser or an
// agent reading a public page does.
func (a *api) get(t *testing.T, path, accept string) page {
	t.Helper()
	req, err := http.NewRequest("GET", a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header, raw}
}

func (p page) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(p.raw, v); err != nil {
		t.Fatalf("%s: %v", p.raw, err)
	}
}

// field is a top-level string field of a JSON body.
func (p page) field(k string) string {
	var m map[string]any
	_ = json.Unmarshal(p.raw, &m)
	s, _ := m[k].(string)
	return s
}
