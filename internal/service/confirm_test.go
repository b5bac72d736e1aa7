package service_test

import (
	"github.com/paybound/paybound/internal/confirm"
)

// confirmOf is step-up over e's core, store, operator key and clock, as
// Main composes it: these tests follow confirmations through the payments
// that wait for them. newEnv makes one per env (e.confirm), as Main makes
// one per process: its limit on wrong codes counts in the process.
func confirmOf(t tb, e *env) *confirm.Service {
	t.Helper()
	c, err := confirm.New(e.svc, e.st, confirm.Config{OperatorKey: e.cfg.OperatorKey, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
