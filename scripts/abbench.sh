#!/usr/bin/env bash
# A paired A/B run of a `paybound bench` between two commits of this
# repository: both are built, then run in PAIRS alternating pairs (the
# order flips each pair, so that drift on a shared machine falls on both).
# Prints each pair, then the medians and the median of the pairs' ratios
# (B over A) of the throughput (above 1: B is faster) and of the p99
# latency (below 1: B's tail is shorter), and, with --process (the server
# in a process of its own), of the server's CPU time per payment, which a
# shared machine disturbs less than throughput; and of the bytes the
# server wrote to disk per payment (below 1: B writes less).
#
#   scripts/abbench.sh A B [PAIRS] [bench flags...]
#   e.g. scripts/abbench.sh main~5 main 7 --duration 3s
#        scripts/abbench.sh v1 HEAD 7 --duration 3s --signed
#        ABBENCH=acp scripts/abbench.sh v1 HEAD 5 --duration 5s
#
# A and B are anything `git rev-parse` accepts. ABBENCH names the bench
# (payments, the default, or acp). ABBENCH_DB_A and ABBENCH_DB_B, set
# together, are the --db of A's runs and of B's (two PostgreSQL databases:
# a binary refuses a database that a newer one has migrated). The flags
# go to every run as they are; for payments, --baseline=false is always
# added (the baseline is the other commit, not one commit per operation).
set -euo pipefail
shopt -s inherit_errexit # a failed bench run stops the script
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
	echo "usage: [ABBENCH=payments|acp] scripts/abbench.sh A B [PAIRS] [bench flags...]" >&2
	exit 2
fi
bench=${ABBENCH:-payments}
case $bench in
payments) rate_field=payments_per_sec p99_field=p99_ms cpu_field=server_cpu_us_per_payment bytes_field=disk_bytes_per_payment extra=(--baseline=false) ;;
acp) rate_field=create_complete_per_sec p99_field=request_p99_ms cpu_field=server_cpu_us_per_checkout bytes_field=disk_bytes_per_checkout extra=() ;;
*)
	echo "abbench: ABBENCH must be payments or acp, not $bench" >&2
	exit 2
	;;
esac
a=$(git rev-parse --verify "$1^{commit}")
b=$(git rev-parse --verify "$2^{commit}")
shift 2
pairs=${1:-7}
shift || true
if ! [[ $pairs =~ ^[1-9][0-9]*$ ]]; then
	echo "abbench: PAIRS must be a positive integer, not $pairs" >&2
	exit 2
fi
flags=("$@")
if [ "${ABBENCH_DB_A:+set}" != "${ABBENCH_DB_B:+set}" ]; then
	echo "abbench: set ABBENCH_DB_A and ABBENCH_DB_B together" >&2
	exit 2
fi
[ ${#flags[@]} -gt 0 ] || flags=(--duration 3s)
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
build() { # build COMMIT OUT
	git worktree add --detach -q "$tmp/src" "$1"
	(cd "$tmp/src" && go build -o "$2" ./cmd/paybound)
	git worktree remove --force "$tmp/src"
}
build "$a" "$tmp/a"
build "$b" "$tmp/b"
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }
run() { # run a|b: prints "RATE P99 CPU BYTES" (CPU 0 without --process, BYTES 0 unmeasured)
	local out cpu bytes
	local db=()
	if [ -n "${ABBENCH_DB_A:-}" ]; then
		if [ "$1" = a ]; then db=(--db "$ABBENCH_DB_A"); else db=(--db "$ABBENCH_DB_B"); fi
	fi
	out=$("$tmp/$1" bench "$bench" "${extra[@]}" "${db[@]}" "${flags[@]}")
	cpu=$(field "$cpu_field" "$out")
	bytes=$(field "$bytes_field" "$out")
	printf '%s %s %s %s\n' "$(field "$rate_field" "$out")" "$(field "$p99_field" "$out")" "${cpu:-0}" "${bytes:-0}"
}
for i in $(seq "$pairs"); do
	if [ $((i % 2)) -eq 1 ]; then ra=$(run a); rb=$(run b)
	else rb=$(run b); ra=$(run a); fi
	echo "$ra $rb" | awk -v f="$rate_field" '{printf "pair: A %d, B %d %s (ratio %.3f); p99 A %.1f, B %.1f ms (ratio %.3f)", $1, $5, f, $5/$1, $2, $6, $6/$2
		if ($3 > 0 && $7 > 0) printf "; server CPU A %d, B %d µs (ratio %.3f)", $3, $7, $7/$3
		if ($4 > 0 && $8 > 0) printf "; disk A %d, B %d bytes (ratio %.3f)", $4, $8, $8/$4
		printf "\n" }'
	echo "$ra $rb" >>"$tmp/pairs"
done
awk -v a="${a:0:10}" -v b="${b:0:10}" -v f="$rate_field" '
	function median(x, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j-1] > x[j]; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
		return n % 2 ? x[(n+1)/2] : (x[n/2] + x[n/2+1]) / 2
	}
	{ n++; ra[n] = $1; pa[n] = $2; ca[n] = $3; da[n] = $4; rb[n] = $5; pb[n] = $6; cb[n] = $7; db[n] = $8; r[n] = $5 / $1; q[n] = $6 / $2
	  if ($3 > 0 && $7 > 0) { m++; c[m] = $7 / $3 }
	  if ($4 > 0 && $8 > 0) { k++; d[k] = $8 / $4 } }
	END {
		printf "medians: A (%s) %d, B (%s) %d %s; median ratio B/A %.3f over %d pairs\n", a, median(ra, n), b, median(rb, n), f, median(r, n), n
		printf "p99: A %.1f ms, B %.1f ms; median ratio B/A %.3f\n", median(pa, n), median(pb, n), median(q, n)
		if (m == n) printf "server CPU per operation: A %d µs, B %d µs; median ratio B/A %.3f\n", median(ca, n), median(cb, n), median(c, n)
		if (k == n) printf "disk bytes per operation: A %d, B %d; median ratio B/A %.3f\n", median(da, n), median(db, n), median(d, n)
	}' "$tmp/pairs"
