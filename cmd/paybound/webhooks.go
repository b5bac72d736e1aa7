package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/paybound/paybound/internal/webhooks"
)

// webhookHTTP sends webhook deliveries over HTTP: the webhooks' one
// outbound HTTP, kept here so that the capability does not speak HTTP
// itself. It follows no redirect (a 3xx is a failed attempt), uses no
// proxy from the environment, reads at most maxWebhookAnswer bytes of an
// answer, and refuses to connect to an address that is not public
// (webhooks.PublicAddr: loopback, private, link-local, unspecified,
// multicast), checked on the address actually dialed, after DNS, unless
// the URL's host is one the operator allowed (--webhook-allow-hosts).
type webhookHTTP struct{ hc *http.Client }

// Timeouts of a delivery's connection; the attempt as a whole is bounded
// by the context webhooks gives (its Config.Timeout).
const (
	webhookDialTimeout   = 5 * time.Second
	webhookHeaderTimeout = 10 * time.Second
	maxWebhookAnswer     = 4 << 10
)

func newWebhookHTTP(allow []string) webhookHTTP {
	allowed := map[string]bool{}
	for _, h := range allow {
		allowed[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	checked := &net.Dialer{Timeout: webhookDialTimeout, Control: func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || (!webhooks.PublicAddr(ip) && !allowed[ip.Unmap().String()]) {
			return fmt.Errorf("refused to connect to %s: not a public address (the operator may allow its host with --webhook-allow-hosts)", host)
		}
		return nil
	}}
	open := &net.Dialer{Timeout: webhookDialTimeout}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if allowed[strings.ToLower(host)] {
				return open.DialContext(ctx, network, addr)
			}
			return checked.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   webhookDialTimeout,
		ResponseHeaderTimeout: webhookHeaderTimeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return webhookHTTP{hc: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Post sends one delivery and returns the answer's status.
func (w webhookHTTP) Post(ctx context.Context, url string, headers map[string]string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) && uerr.Unwrap() != nil {
			err = uerr.Unwrap() // without the URL, which the owner knows
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookAnswer))
	return resp.StatusCode, nil
}

// loadOrCreateWebhookKey reads the Ed25519 key that signs deliveries (v1a)
// from path, creating it (mode 0600) on first start: whsk_ and the base64
// of its 32-byte seed. Every process of a deployment must have the same
// one, as receivers pin its public key.
func loadOrCreateWebhookKey(path string) (ed25519.PrivateKey, error) {
	key, _, err := loadOrCreateSecret(path, "a webhook signing key",
		func() (string, error) {
			seed := make([]byte, ed25519.SeedSize)
			_, _ = rand.Read(seed)
			return "whsk_" + base64.StdEncoding.EncodeToString(seed), nil
		},
		func(key string) error {
			_, err := parseWebhookKey(key)
			return err
		})
	if err != nil {
		return nil, err
	}
	return parseWebhookKey(key)
}

func parseWebhookKey(key string) (ed25519.PrivateKey, error) {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, "whsk_"))
	if err != nil || !strings.HasPrefix(key, "whsk_") || len(seed) != ed25519.SeedSize {
		return nil, errors.New("not whsk_ and the base64 of a 32-byte Ed25519 seed")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
