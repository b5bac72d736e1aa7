package mcpserver

import "net/http"

// NewHandlerSDK is NewHandler with every request served by the SDK.
func NewHandlerSDK(authn Authenticator, in *InProcess, cfg Config) (http.Handler, error) {
	return newHandler(authn, in, cfg, false)
}

// FastCalls is how many calls fastCall has answered.
func FastCalls() int64 { return fastCalls.Load() }
