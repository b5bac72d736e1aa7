package main

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/paybound/paybound/internal/translog"
)

// witnessHTTP carries the transparency log's add-checkpoint requests to its
// witnesses over HTTP (C2SP tlog-witness): the log's one outbound HTTP,
// kept here so that the log, a capability, does not speak HTTP itself.
type witnessHTTP struct{ hc *http.Client }

func newWitnessHTTP() witnessHTTP {
	return witnessHTTP{hc: &http.Client{Timeout: translog.WitnessTimeout}}
}

// Post sends body to url and reads at most limit bytes of the answer.
func (w witnessHTTP) Post(ctx context.Context, url string, body []byte, limit int64) (translog.Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return translog.Answer{}, err
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return translog.Answer{}, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return translog.Answer{}, err
	}
	return translog.Answer{StatusCode: resp.StatusCode, Status: resp.Status, Body: answer}, nil
}
