package service_test

import (
	"github.com/paybound/paybound/internal/risk"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
)

// riskWith is risk control over c's store, clock and logger with
// thresholds (nil: the defaults), as Main composes it for
// service.Config.Risk.
func riskWith(c *service.Config, thresholds *risk.Config) *riskctl.Control {
	rc, err := riskctl.NewControl(c.Store, riskctl.Config{Thresholds: thresholds, Clock: c.Clock, Logger: c.Logger})
	if err != nil {
		panic(err)
	}
	return rc
}

// riskOf is risk control's operations (the operator's rules and flags)
// over e's core and the risk control it was given, as Main composes them.
func riskOf(e *env) *riskctl.Service {
	return riskctl.New(e.svc, e.cfg.Risk.(*riskctl.Control))
}
