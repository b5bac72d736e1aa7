// Package signin is signing in to the wallet: its sessions, persisted in
// the store so that a restart signs no one out and every process shares
// them (sessions.go), and signing in without a passkey or an API key in
// the browser: one-time sign-in codes, asked for with the user's
// API key (POST /v1/signin_codes, `paybound signin-code`) and entered on
// the wallet's sign-in page with the user's ID. A code is good once, for
// CodeTTL; guessing is bounded by a count of wrong codes per user kept in
// the store (pb.SignInStore), so that neither a restart nor another
// process resets it: MaxFailures wrong codes lock the user's codes for
// LockFor, and while locked even the right code is refused.
//
// The package has no batch part: it moves no money and logs nothing. Its
// writes are single atomic statements of its store interface.
package signin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
)

// Defaults of Config.
const (
	DefaultCodeTTL     = 10 * time.Minute
	DefaultMaxFailures = 5
	DefaultLockFor     = 15 * time.Minute
	// CodeDigits is a code's length: 10^8 codes, of which an attacker
	// may try MaxFailures per LockFor, and only while a code is live.
	CodeDigits = 8
)

// Store is what sign-in reads and writes: its own rows and the users.
type Store interface {
	pb.SignInStore
	User(ctx context.Context, id string) (*pb.User, error)
}

// Config configures sign-in. Zero values take the defaults.
type Config struct {
	// Key keys the codes' hashes (HMAC-SHA-256), so that a copy of the
	// table does not give the codes away by trying all 10^8; Main derives
	// it from the operator key. Required.
	Key         []byte
	CodeTTL     time.Duration // how long a code is good for
	MaxFailures int           // wrong codes that lock a user's codes
	LockFor     time.Duration // how long they stay locked
	SessionTTL  time.Duration // how long a wallet session lasts
	MaxSessions int           // one party's live sessions at most
	Clock       pb.Clock
	Logger      *slog.Logger // security events are logged here
}

// Service issues and checks sign-in codes. Safe for concurrent use.
type Service struct {
	st  Store
	cfg Config

	// ghosts counts wrong codes for IDs that name no user, so that they
	// are answered exactly as a user's are (the tries left go down, then
	// a lock) and the answers do not tell which IDs exist. In memory and
	// bounded: they guard nothing, so only the answers must look alike.
	ghostMu sync.Mutex
	ghosts  map[string]pb.SignInGuard
}

// maxGhosts bounds Service.ghosts; past it the map starts over.
const maxGhosts = 10000

// New returns sign-in over st.
func New(st Store, cfg Config) (*Service, error) {
	if len(cfg.Key) < 16 {
		return nil, fmt.Errorf("signin: Config.Key must be at least 16 bytes")
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.LockFor <= 0 {
		cfg.LockFor = DefaultLockFor
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, cfg: cfg, ghosts: map[string]pb.SignInGuard{}}, nil
}

// ghostFailed counts a wrong code for an ID that names no user, as
// SignInFailed counts a user's, and returns the guard after it.
func (s *Service) ghostFailed(id string, now time.Time) pb.SignInGuard {
	s.ghostMu.Lock()
	defer s.ghostMu.Unlock()
	g := s.ghosts[id]
	if !now.Before(g.LockedUntil) && !g.LockedUntil.IsZero() {
		g = pb.SignInGuard{} // a lock that ended starts the count over
	}
	g.UserID = id
	if g.Failures++; g.Failures >= s.cfg.MaxFailures {
		g.Failures, g.LockedUntil = 0, time.Unix(now.Add(s.cfg.LockFor).Unix(), 0) // seconds, as stored
	}
	if len(s.ghosts) >= maxGhosts {
		clear(s.ghosts)
	}
	s.ghosts[id] = g
	return g
}

// ghostGuard is the guard of an ID that names no user.
func (s *Service) ghostGuard(id string) pb.SignInGuard {
	s.ghostMu.Lock()
	defer s.ghostMu.Unlock()
	return s.ghosts[id]
}

// Code is a new sign-in code, as its user sees it once.
type Code struct {
	Object    string    `json:"object"` // "signin_code"
	UserID    string    `json:"user_id"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// IssueCode (user) makes a new sign-in code for the caller, voiding the
// one asked for before. It does not unlock a locked user: the lock says
// how long to wait, and the code made now is good when it ends if it has
// not expired by then.
func (s *Service) IssueCode(ctx context.Context, caller pb.Principal) (*Code, error) {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return nil, err
	}
	code := newCode()
	now := s.cfg.Clock.Now().Truncate(time.Second)
	c := pb.SignInCode{UserID: caller.ID, Hash: s.hash(caller.ID, code), CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL)}
	if err := s.st.PutSignInCode(ctx, c); err != nil {
		return nil, err
	}
	return &Code{Object: "signin_code", UserID: caller.ID, Code: code, ExpiresAt: c.ExpiresAt}, nil
}

// newCode is CodeDigits random decimal digits, uniformly.
func newCode() string {
	var b strings.Builder
	for b.Len() < CodeDigits {
		var x [1]byte
		rand.Read(x[:])
		if x[0] < 250 { // 250 = 25·10: no bias
			b.WriteByte('0' + x[0]%10)
		}
	}
	return b.String()
}

func (s *Service) hash(userID, code string) []byte {
	m := hmac.New(sha256.New, s.cfg.Key)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// normalize takes the code as a person types it: spaces and dashes are
// dropped.
func normalize(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
}

// Locked is a refusal because of too many wrong codes: until when.
func (s *Service) locked(userID string, until time.Time) error {
	s.cfg.Logger.Warn("security event: sign-in code tried while locked", "event", "signin_code_locked", "user", userID, "until", until)
	e := pb.Errorf(pb.ErrRateLimited, "code", "sign-in codes for %s are locked until %s UTC after %d wrong codes; sign in with a passkey or your API key, or wait",
		userID, until.UTC().Format("15:04"), s.cfg.MaxFailures)
	e.RetryAfter = max(until.Sub(s.cfg.Clock.Now()).Truncate(time.Second)+time.Second, time.Second)
	return e
}

// SignIn checks userID's code and, when it is right, live and unused,
// returns the user as a principal; the code is then used up. A wrong,
// expired or used code counts against the user (in the store) and is
// answered alike, with how many tries are left; at MaxFailures the
// user's codes are locked for LockFor, and until then every code, even
// the right one, is refused with rate_limited saying until when. An ID
// that names no user is answered the same way, counted in memory only
// (ghostFailed), so that the answers do not tell which IDs exist.
func (s *Service) SignIn(ctx context.Context, userID, code string) (pb.Principal, error) {
	userID, code = strings.TrimSpace(userID), normalize(code)
	if !pb.HasPrefix(userID, pb.PrefixUser) {
		return pb.Principal{}, pb.Errorf(pb.ErrParameterInvalid, "user_id", "enter your user ID: usr_ and 26 characters, as `paybound signin-code` shows it")
	}
	if len(code) != CodeDigits || strings.Trim(code, "0123456789") != "" {
		return pb.Principal{}, pb.Errorf(pb.ErrParameterInvalid, "code", "the code is %d digits", CodeDigits)
	}
	now := s.cfg.Clock.Now()
	g, err := s.st.SignInGuard(ctx, userID)
	if err != nil {
		return pb.Principal{}, err
	}
	if now.Before(g.LockedUntil) {
		return pb.Principal{}, s.locked(userID, g.LockedUntil)
	}
	if _, err := s.st.User(ctx, userID); err != nil {
		if pb.ErrorCode(err) != pb.ErrNotFound {
			return pb.Principal{}, err
		}
		if gg := s.ghostGuard(userID); now.Before(gg.LockedUntil) {
			return pb.Principal{}, s.locked(userID, gg.LockedUntil)
		}
		s.hash(userID, code) // the same work as for a user
		if gg := s.ghostFailed(userID, now); now.Before(gg.LockedUntil) {
			return pb.Principal{}, s.locked(userID, gg.LockedUntil)
		} else {
			return pb.Principal{}, s.wrong(s.cfg.MaxFailures - gg.Failures)
		}
	}
	want := s.hash(userID, code)
	c, err := s.st.SignInCode(ctx, userID)
	if err != nil && pb.ErrorCode(err) != pb.ErrNotFound {
		return pb.Principal{}, err
	}
	right := c != nil && subtle.ConstantTimeCompare(c.Hash, want) == 1 && now.Before(c.ExpiresAt)
	if right {
		// Of two sign-ins with one code at once, one deletes it.
		if right, err = s.st.UseSignInCode(ctx, userID, want); err != nil {
			return pb.Principal{}, err
		}
	}
	if !right {
		g, err := s.st.SignInFailed(ctx, userID, s.cfg.MaxFailures, now.Add(s.cfg.LockFor))
		if err != nil {
			return pb.Principal{}, err
		}
		s.cfg.Logger.Warn("security event: wrong sign-in code", "event", "signin_code_wrong", "user", userID, "failures", g.Failures)
		if now.Before(g.LockedUntil) {
			return pb.Principal{}, s.locked(userID, g.LockedUntil)
		}
		return pb.Principal{}, s.wrong(s.cfg.MaxFailures - g.Failures)
	}
	if err := s.st.ClearSignInFailures(ctx, userID); err != nil {
		return pb.Principal{}, err
	}
	return pb.Principal{Role: pb.RoleUser, ID: userID, UserID: userID}, nil
}

func (s *Service) wrong(left int) error {
	return pb.Errorf(pb.ErrUnauthenticated, "code", "that code is wrong, expired or already used; %d more wrong codes lock sign-in with codes for %s",
		left, s.cfg.LockFor)
}

// Limits are the service's limits, to tell the person: how long a code
// is good for, how many wrong codes lock, and for how long.
func (s *Service) Limits() (codeTTL time.Duration, maxFailures int, lockFor time.Duration) {
	return s.cfg.CodeTTL, s.cfg.MaxFailures, s.cfg.LockFor
}

// Guard returns the wrong codes counted against userID and its lock, to
// show the person (a malformed ID has none).
func (s *Service) Guard(ctx context.Context, userID string) (pb.SignInGuard, error) {
	if !pb.HasPrefix(userID, pb.PrefixUser) {
		return pb.SignInGuard{UserID: userID}, nil
	}
	g, err := s.st.SignInGuard(ctx, userID)
	if err == nil && g.Failures == 0 && g.LockedUntil.IsZero() {
		if gg := s.ghostGuard(userID); gg.UserID != "" {
			return gg, nil // an ID that names no user looks like one that does
		}
	}
	return g, err
}
