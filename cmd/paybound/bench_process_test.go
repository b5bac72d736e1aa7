package main

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// TestBenchProcess runs `paybound bench payments --process`: the server in
// a process of its own, whose CPU time and disk writes are reported apart
// from the load generator's.
func TestBenchProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary and starts it")
	}
	bin := buildBinary(t)
	out, err := exec.Command(bin, "bench", "payments", "--process", "--duration", "1s", "--baseline=false", "--clients", "8", "--payers", "8").Output()
	if err != nil {
		t.Fatalf("bench payments --process: %v\n%s", err, out)
	}
	var r struct {
		Payments      int64   `json:"payments"`
		Batches       int64   `json:"batches"`
		CommitBusy    float64 `json:"commit_busy"`
		CPUPerPayment int64   `json:"server_cpu_us_per_payment"`
		DiskPer       int64   `json:"disk_bytes_per_payment"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench output %s: %v", out, err)
	}
	// A payment costs the server well over a microsecond of CPU and writes
	// its rows; a server that did nothing, or figures read from the wrong
	// process, would show zeros.
	if r.Payments < 10 || r.Batches < 1 || r.CommitBusy <= 0 || r.CPUPerPayment < 1 || r.DiskPer < 100 {
		t.Fatalf("bench payments --process = %s: want payments, batches, commit_busy, server CPU and disk writes per payment", out)
	}
	if out, err := exec.Command(bin, "bench", "payments", "--process", "--url", "http://127.0.0.1:1").CombinedOutput(); err == nil {
		t.Fatalf("--process with --url was accepted: %s", out)
	}
}
