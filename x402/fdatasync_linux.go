package x402

import (
	"os"
	"syscall"
)

// fdatasync makes f's data durable without its times: the tab store's
// file keeps its size between chunks, so this is all a group needs.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
