package cli

import (
	"fmt"
	"io"
	"strings"
)

// signinCode is `paybound signin-code`: a user asks for a one-time code to
// sign in to the wallet with, so their API key never enters the browser.
func (cl *cli) signinCode(args []string) error {
	c := cl.command("signin-code", "signin-code", false)
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	sc, err := api.CreateSignInCode(ctx)
	if err != nil {
		return err
	}
	base, _ := c.serverURL() // checked by c.call
	return c.print(sc, func(w io.Writer) {
		fmt.Fprintf(w, "code %s %s for %s, once, until %s\nenter it with your user ID at %s/wallet/signin\n",
			sc.Code[:4], sc.Code[4:], sc.UserID, stamp(sc.ExpiresAt), strings.TrimRight(base, "/"))
	})
}
