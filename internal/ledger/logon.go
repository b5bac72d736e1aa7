//go:build !paybound_nolog

package ledger

// logOff: see logoff.go.
const logOff = false
