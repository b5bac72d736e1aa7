//go:build paybound_nolog

package ledger

// logOff is true only in a build with -tags paybound_nolog, which writes
// no transparency-log entries: scripts/logcost.sh builds one to measure
// what the log costs the payment path. Such a build keeps no evidence and
// is for that measurement alone.
const logOff = true
