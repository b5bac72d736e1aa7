package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// processUsage is the help of --process.
const processUsage = "run the server as a process of its own (paybound serve), and report its CPU time per payment (server_cpu_us_per_…) and its disk writes apart from the load generator's (Linux)"

// ProcessUsage returns the Usage of a server running as process pid and
// serving url: its ledger counters from url's /metrics (open to loopback),
// and its CPU time and bytes written to storage from Linux's /proc/pid.
func ProcessUsage(ctx context.Context, url string, pid int) func() (Usage, error) {
	return func() (Usage, error) {
		u, err := scrapeLedger(ctx, url)
		if err != nil {
			return Usage{}, err
		}
		if u.CPU, err = ProcCPU(pid); err != nil {
			return Usage{}, err
		}
		u.DiskWrites = ProcWrites(fmt.Sprintf("/proc/%d/io", pid))
		return u, nil
	}
}

// scrapeLedger reads the ledger's batches and commit time from a server's
// /metrics.
func scrapeLedger(ctx context.Context, url string) (Usage, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	if err != nil {
		return Usage{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return Usage{}, fmt.Errorf("couldn't read the server's /metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return Usage{}, fmt.Errorf("the server's /metrics answered %s", res.Status)
	}
	var u Usage
	var found int
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "paybound_ledger_batches_total":
			u.Batches, err = strconv.ParseInt(v, 10, 64)
			found++
		case "paybound_ledger_commit_duration_seconds_sum":
			var sec float64
			sec, err = strconv.ParseFloat(v, 64)
			u.CommitTime = time.Duration(sec * float64(time.Second))
			found++
		}
		if err != nil {
			return Usage{}, fmt.Errorf("the server's /metrics has an unreadable %s: %w", name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Usage{}, fmt.Errorf("couldn't read the server's /metrics: %w", err)
	}
	if found != 2 {
		return Usage{}, fmt.Errorf("the server's /metrics lacks the ledger's batches or commit time")
	}
	return u, nil
}

// clockTicks is Linux's USER_HZ, the unit of /proc/pid/stat's CPU times:
// 100 on every architecture Linux supports today.
const clockTicks = 100

// ProcCPU is the CPU time, user and system, that process pid has used
// (Linux).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("couldn't read the server's CPU time (Linux only): %w", err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat is unreadable", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat is unreadable", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// ProcWrites is the bytes a process has caused to be written to storage
// (write_bytes of the io file given), or 0 where that is not available.
func ProcWrites(io string) int64 {
	b, err := os.ReadFile(io)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
