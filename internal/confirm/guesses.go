package confirm

import (
	"sync"
	"time"

	pb "github.com/paybound/paybound"
)

// Limits on guessing a user's one-time codes. Each confirmation takes at
// most pb.MaxConfirmationCodeFailures wrong codes, counted in the store
// across processes; on top of that a user may get at most
// MaxCodeFailuresPerUser codes wrong within CodeFailureWindow per process,
// then every code is refused with rate_limited until the oldest failure
// leaves the window. A legitimate user mistypes a code or two; an attacker
// holding only the user's API key gets a handful of guesses at 1 in 10^6.
const (
	MaxCodeFailuresPerUser = 10
	CodeFailureWindow      = 15 * time.Minute
	// maxGuessers bounds the users tracked at once; past it, users whose
	// failures all left the window are dropped first.
	maxGuessers = 100_000
)

// guessLimiter remembers each user's recent wrong codes. Safe for
// concurrent use.
type guessLimiter struct {
	mu    sync.Mutex
	users map[string][]time.Time // failure times, oldest first, at most MaxCodeFailuresPerUser
}

// wait returns how long user must wait before trying a code again, or 0.
func (g *guessLimiter) wait(user string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	fs := g.users[user]
	if len(fs) < MaxCodeFailuresPerUser {
		return 0
	}
	if d := fs[0].Add(CodeFailureWindow).Sub(now); d > 0 {
		return d
	}
	return 0
}

// fail records a wrong code by user at now.
func (g *guessLimiter) fail(user string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.users == nil {
		g.users = map[string][]time.Time{}
	}
	if _, ok := g.users[user]; !ok && len(g.users) >= maxGuessers {
		for u, fs := range g.users {
			if !now.Before(fs[len(fs)-1].Add(CodeFailureWindow)) {
				delete(g.users, u)
			}
		}
		if len(g.users) >= maxGuessers {
			// Every tracked user failed within the window: forget one
			// rather than grow. Its confirmations stay locked in the store.
			for u := range g.users {
				delete(g.users, u)
				break
			}
		}
	}
	fs := append(g.users[user], now)
	for len(fs) > 0 && !now.Before(fs[0].Add(CodeFailureWindow)) {
		fs = fs[1:]
	}
	if len(fs) > MaxCodeFailuresPerUser {
		fs = fs[len(fs)-MaxCodeFailuresPerUser:]
	}
	g.users[user] = fs
}

// guessAllowed refuses a code from user while it is rate-limited, and logs
// the refusal as a security event.
func (s *Service) guessAllowed(user, what string) error {
	d := s.guesses.wait(user, s.clock.Now())
	if d == 0 {
		return nil
	}
	secs := int64((d + time.Second - 1) / time.Second)
	s.log.Warn("security event: one-time codes rate-limited", "event", "code_rate_limited", "user", user, "on", what, "retry_after_s", secs)
	return &pb.Error{Code: pb.ErrRateLimited, RetryAfter: time.Duration(secs) * time.Second,
		Message: "too many wrong one-time codes; wait before trying again, or approve with a passkey"}
}

// codeFailed counts a wrong code by user and logs it as a security event.
func (s *Service) codeFailed(user, what string, attrs ...any) {
	s.guesses.fail(user, s.clock.Now())
	s.log.Warn("security event: wrong one-time code", append([]any{"event", "code_failed", "user", user, "on", what}, attrs...)...)
}
