package sqlite

// SetMergeEvery sets how many new payments s lets build up before it adds
// them to payment_parties, so that tests cross merges with a few payments.
func SetMergeEvery(s *Store, n int) { s.mergeEvery = n }

// SetMoveNoncesAt sets how many nonces s lets build up before it moves them
// into signature_nonces.
func SetMoveNoncesAt(s *Store, n int) { s.moveNoncesAt = n }

// UsageEventsSeenQuery is the statement that looks a batch's event IDs up.
const UsageEventsSeenQuery = usageEventsSeen
