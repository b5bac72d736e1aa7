package sqlite

import "time"

// SetMergeEvery sets how many new payments s lets build up before it adds
// them to payment_parties, so that tests cross merges with a few payments.
func SetMergeEvery(s *Store, n int) { s.mergeEvery = n }

// SetMoveNoncesAt sets how many nonces s lets build up before it moves them
// into signature_nonces.
func SetMoveNoncesAt(s *Store, n int) { s.moveNoncesAt = n }

// UsageEventsSeenQuery is the statement that looks a batch's event IDs up.
const UsageEventsSeenQuery = usageEventsSeen

// SetIDFilterMin sets the least the usage event ID filters of stores
// opened from now on are built for, and returns the setting before.
func SetIDFilterMin(n int64) int64 { return idFilterMin.Swap(n) }

// SetIDFilterScanning sets what runs once a filter build has read the
// table's first row (nil: nothing).
func SetIDFilterScanning(fn func(s *Store)) {
	if fn == nil {
		testIDFilterScanning.Store(nil)
		return
	}
	testIDFilterScanning.Store(&fn)
}

// WaitIDFilter waits until s has a usage event ID filter and builds none,
// and returns what it was built for.
func WaitIDFilter(s *Store) int64 {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cur := s.idf.cur.Load(); cur != nil && !s.idf.building.Load() {
			return cur.capacity
		}
	}
	panic("the usage event ID filter was not built within 10 s")
}

// IDLookups counts the usage event IDs s's filter left to the database.
func IDLookups(s *Store) int64 { return s.idf.lookups.Load() }
