package service_test

import "github.com/paybound/paybound/internal/translog"

// logOf is the transparency log over e's core and store, signing with e's
// log key, as Main composes it: the tests that follow a payment into its
// trace read it there. Its checkpointer is not started: a trace signs the
// checkpoint it needs.
func logOf(e *env) *translog.Service {
	l, err := translog.New(e.svc, e.st, translog.Config{Key: e.logKey})
	if err != nil {
		panic(err) // a key from newLogKey, and no witness policy
	}
	return l
}
