package wallet

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Bounds on guessing API keys through the sign-in form, per client
// address, in this process's memory: MaxKeyFailures wrong keys within
// KeyFailureWindow, then that address's key sign-ins are refused until
// the oldest failure leaves the window. An API key is 256 random bits, so
// this bounds load and noise rather than the odds of a guess, which is
// why memory is enough here (one-time codes, six orders of magnitude
// easier, are counted in the store). The address is the connection's
// (Request.RemoteAddr): behind a proxy, every client shares the proxy's.
const (
	MaxKeyFailures   = 20
	KeyFailureWindow = 15 * time.Minute
	// maxKeyGuessers bounds the addresses tracked.
	maxKeyGuessers = 100_000
)

// addrLimiter remembers each client address's recent failures. Safe for
// concurrent use.
type addrLimiter struct {
	mu    sync.Mutex
	addrs map[string][]time.Time // failure times, oldest first, at most max
	max   int
	win   time.Duration
}

func newAddrLimiter(max int, win time.Duration) *addrLimiter {
	return &addrLimiter{addrs: map[string][]time.Time{}, max: max, win: win}
}

// clientAddr is r's client address, without the port.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// wait returns how long addr must wait before trying again, or 0.
func (l *addrLimiter) wait(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := l.addrs[addr]
	if len(fs) < l.max {
		return 0
	}
	return max(fs[0].Add(l.win).Sub(now), 0)
}

// fail records a failure of addr at now.
func (l *addrLimiter) fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.addrs[addr]; !ok && len(l.addrs) >= maxKeyGuessers {
		for a, fs := range l.addrs {
			if !now.Before(fs[len(fs)-1].Add(l.win)) {
				delete(l.addrs, a)
			}
		}
		for a := range l.addrs { // still full: forget one rather than grow
			if len(l.addrs) < maxKeyGuessers {
				break
			}
			delete(l.addrs, a)
		}
	}
	fs := append(l.addrs[addr], now)
	for len(fs) > 0 && !now.Before(fs[0].Add(l.win)) {
		fs = fs[1:]
	}
	if len(fs) > l.max {
		fs = fs[len(fs)-l.max:]
	}
	l.addrs[addr] = fs
}
