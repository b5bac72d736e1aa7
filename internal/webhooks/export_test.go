package webhooks

import "time"

// Next is the delivery schedule's next attempt, for tests.
func Next(s *Service, n int, at time.Time) *time.Time { return s.next(n, at) }
