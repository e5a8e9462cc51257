#!/usr/bin/env bash
# Runs Chaser's benchmarks beside the bare runtime on this machine (as root)
# and prints one Markdown table: medians (p50) where the benchmark measures
# each operation, and Chaser/bare ratios from the same run.
#
# Usage: sudo bench/run.sh [N]   N: iterations of create/exec (default 20)
# The raw `go test` output is kept in $OUT (default /tmp/chaser-bench.txt);
# bench/run.sh --table FILE prints the table of a saved output again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
if [ "${1:-}" = --table ]; then
	out=$2
else
n=${1:-20}
out=${OUT:-/tmp/chaser-bench.txt}
echo "# $(date -u +%F), $(nproc) cores, $(uname -r), $(runc --version | head -1), load average at start $(cut -d' ' -f1-3 /proc/loadavg)" >"$out"
# One build for every go test below (testserver runs CHASER_TEST_BIN).
if [ -z "${CHASER_TEST_BIN:-}" ]; then
	bin=$(mktemp -d)
	trap 'rm -rf "$bin"' EXIT
	CGO_ENABLED=0 go build -o "$bin/" ./cmd/chaser ./cmd/chaser-agent
	export CHASER_TEST_BIN=$bin/chaser
fi
bench() { # bench REGEX BENCHTIME
	echo "== go test ./bench -bench '$1' -benchtime $2" >&2
	go test ./bench -run '^$' -bench "$1" -benchtime "$2" -count 1 -timeout 60m 2>&1 | tee -a "$out" | grep -E '^(Benchmark|---|FAIL|ok)' >&2 || true
}
bench '^BenchmarkCreate$/(chaser-create|runc-run|noquota-interleaved)' "${n}x"
bench '^BenchmarkCreatePooled$' "${n}x"
bench '^BenchmarkExec$' "$((n * 10))x"
bench '^BenchmarkPTYKeystrokeEcho$' 1000x
bench '^BenchmarkFiles$/(upload|download)' 10x
bench '^BenchmarkForward$' 2000x
bench '^BenchmarkIdleMemory$' 1x
bench '^BenchmarkParallelCreate$' 2x
bench '^BenchmarkIdleHostMemory$' 3x
bench '^BenchmarkExecLoad$' 6000x
if [ -x "$(command -v runsc || echo /var/cache/chaser-runsc/runsc)" ]; then
	bench '^BenchmarkRuntimes$' "${n}x"
fi
fi

# metric NAME UNIT: the value reported for UNIT on the line of benchmark
# NAME (a prefix of the name before -GOMAXPROCS); "" if absent.
metric() {
	awk -v n="$1" -v u="$2" '
		$1 ~ /^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name) }
		name == n { for (i = 2; i < NF; i++) if ($(i+1) == u) { print $i; exit } }' "$out"
}
ms() { awk -v v="$1" 'BEGIN { if (v == "") print "—"; else printf "%.1f ms", v / 1e6 }'; }
num() { # three significant digits or whole numbers
	awk -v v="$1" -v u="$2" 'BEGIN { if (v == "") print "—"; else if (v >= 100 || v == int(v)) printf "%.0f%s", v, u; else if (v >= 10) printf "%.1f%s", v, u; else printf "%.2f%s", v, u }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "—"; else printf "%.2f×", a / b }'; }

cc=$(metric BenchmarkCreate/chaser-create+exec p50-ms)
rr=$(metric BenchmarkCreate/runc-run p50-ms)
cn=$(metric BenchmarkCreate/chaser-create+exec-noquota p50-ms)
cp=$(metric BenchmarkCreatePooled/chaser-pooled-create+exec p50-ms)
cg_=$(metric BenchmarkCreate/chaser-create+exec-egress p50-ms)
cpg=$(metric BenchmarkCreatePooled/chaser-pooled-create+exec-egress p50-ms)
ia=$(metric BenchmarkCreate/noquota-interleaved argv-p50-ms)
it=$(metric BenchmarkCreate/noquota-interleaved runc-true-p50-ms)
il=$(metric BenchmarkCreate/noquota-interleaved command-p50-ms)
is=$(metric BenchmarkCreate/noquota-interleaved shell-p50-ms)
ib=$(metric BenchmarkCreate/noquota-interleaved runc-bash-p50-ms)
inos=$(metric BenchmarkCreate/noquota-interleaved runc-true-noseccomp-p50-ms)
lx=$(metric BenchmarkExecLoad/closed exec/s)
l50=$(metric BenchmarkExecLoad/closed p50-ms)
l99=$(metric BenchmarkExecLoad/closed p99-ms)
lmax=$(metric BenchmarkExecLoad/closed max-ms)
# The paced run's name carries its rate (paced-RATEps: CHASER_BENCH_RATE, 612 by default).
paced=$(awk '$1 ~ /^BenchmarkExecLoad\/paced-/ { n = $1; sub(/-[0-9]+$/, "", n); print n; exit }' "$out")
prate=${paced#BenchmarkExecLoad/paced-}; prate=${prate%ps}
pcx=$(metric "$paced" exec/s)
pc50=$(metric "$paced" p50-ms)
pc99=$(metric "$paced" p99-ms)
pcmax=$(metric "$paced" max-ms)
pclate=$(metric "$paced" late-%)
ce=$(metric BenchmarkExec/chaser-exec p50-ms)
re=$(metric BenchmarkExec/runc-exec p50-ms)
hb=$(metric BenchmarkExec/host-bash p50-ms)
cb=$(metric BenchmarkExec/chaser-exec-bash p50-ms)
pty=$(metric BenchmarkPTYKeystrokeEcho p50-µs)
up1=$(metric BenchmarkFiles/upload-1MB MB/s)
up15=$(metric BenchmarkFiles/upload-15MB MB/s)
dn1=$(metric BenchmarkFiles/download-1MB MB/s)
dn15=$(metric BenchmarkFiles/download-15MB MB/s)
fw1=$(metric 'BenchmarkForward/path-style/conns=1' req/s)
fw8=$(metric 'BenchmarkForward/path-style/conns=8' req/s)
cf8=$(metric 'BenchmarkForward/chaser-forward/conns=8' req/s)
dw1=$(metric 'BenchmarkForward/direct-in-sandbox/conns=1' req/s)
dw8=$(metric 'BenchmarkForward/direct-in-sandbox/conns=8' req/s)
cg=$(metric BenchmarkIdleMemory cgroup-MB/sandbox)
rss=$(metric BenchmarkIdleMemory agent-anon-MB/sandbox)
p20=$(metric BenchmarkParallelCreate/chaser-20x1acct p50-ms)
q20=$(metric BenchmarkParallelCreate/chaser-20x1acct p99-ms)
p50=$(metric BenchmarkParallelCreate/chaser-50x5accts p50-ms)
q50=$(metric BenchmarkParallelCreate/chaser-50x5accts p99-ms)
s201=$(metric BenchmarkParallelCreate/chaser-50x5accts 201/wave)
s429=$(metric BenchmarkParallelCreate/chaser-50x5accts 429/wave)
sother=$(metric BenchmarkParallelCreate/chaser-50x5accts other/wave)
pr=$(metric BenchmarkParallelCreate/runc-run-20 p50-ms)
qr=$(metric BenchmarkParallelCreate/runc-run-20 p99-ms)
# parallel wave W: "p50 / p99 ms; N × 201, N × 429, N other" (per wave)
wave() {
	local p q c r o
	p=$(metric "BenchmarkParallelCreate/$1" p50-ms)
	q=$(metric "BenchmarkParallelCreate/$1" p99-ms)
	c=$(metric "BenchmarkParallelCreate/$1" 201/wave)
	r=$(metric "BenchmarkParallelCreate/$1" 429/wave)
	o=$(metric "BenchmarkParallelCreate/$1" other/wave)
	echo "$(num "$p" "") / $(num "$q" " ms"); per wave $(num "$c" "") × 201, $(num "$r" "") × 429 with Retry-After, $(num "$o" "") other"
}
sc=$(metric BenchmarkRuntimes/runsc/create+exec ns/op)
se=$(metric BenchmarkRuntimes/runsc/exec ns/op)
sp=$(metric BenchmarkRuntimes/runsc/pty-echo p50-µs)
sm=$(metric BenchmarkRuntimes/runsc/idle-memory cgroup-MB)

echo
grep -m1 '^# ' "$out" | cut -c3- || true
echo
echo "| | Chaser (runc) | bare | Chaser / bare | Chaser (runsc) |"
echo "|---|---|---|---|---|"
echo "| create + first command \`true\`, unpooled (p50) | $(num "$cc" " ms") | \`runc run\`: $(num "$rr" " ms") | $(ratio "$cc" "$rr") | $(ms "$sc") (mean) |"
echo "| create + first command, unpooled, \`--no-disk-quota\` (p50) | $(num "$cn" " ms") | \`runc run\`: $(num "$rr" " ms") | $(ratio "$cn" "$rr") | |"
echo "| same, interleaved, like for like: argv \`/usr/bin/true\` (p50) | $(num "$ia" " ms") | \`runc run /usr/bin/true\`: $(num "$it" " ms") | $(ratio "$ia" "$it") | |"
echo "| same, interleaved: command line \`true\` (exec'd directly, p50) | $(num "$il" " ms") | \`runc run /usr/bin/true\`: $(num "$it" " ms") | $(ratio "$il" "$it") | |"
echo "| same, interleaved, like for like: command line \`:\` (\`bash -c :\`, p50) | $(num "$is" " ms") | \`runc run /bin/bash -c :\`: $(num "$ib" " ms") | $(ratio "$is" "$ib") | |"
echo "| same, interleaved: argv \`/usr/bin/true\` against a bare run without the seccomp profile (less isolation, p50) | $(num "$ia" " ms") | \`runc run /usr/bin/true\`, no seccomp: $(num "$inos" " ms") | $(ratio "$ia" "$inos") | |"
echo "| create + first command, unpooled, disk quota and egress (the server's defaults, p50) | $(num "$cg_" " ms") | \`runc run\`: $(num "$rr" " ms") | $(ratio "$cg_" "$rr") | |"
echo "| create + first command, pooled (\`--pool-size 4\`, p50) | $(num "$cp" " ms") | \`runc run\`: $(num "$rr" " ms") | $(ratio "$cp" "$rr") | |"
echo "| create + first command, pooled, egress on (\`--pool-size 4 --egress internet\`, p50) | $(num "$cpg" " ms") | \`runc run\`: $(num "$rr" " ms") | $(ratio "$cpg" "$rr") | |"
echo "| exec round trip of \`true\` (p50) | $(num "$ce" " ms") | \`runc exec\`: $(num "$re" " ms"); host \`bash -c true\`: $(num "$hb" " ms") | $(ratio "$ce" "$re") of runc exec, $(ratio "$ce" "$hb") of bash | $(ms "$se") (mean) |"
echo "| exec round trip of a command line through bash (\`:\`, p50) | $(num "$cb" " ms") | host \`bash -c true\`: $(num "$hb" " ms") | $(ratio "$cb" "$hb") of bash | |"
echo "| 16 clients × 120 sandboxes, \`echo hi\`, flat out: exec/s, p50 / p99 / max | $(num "$lx" " exec/s"), $(num "$l50" "") / $(num "$l99" "") / $(num "$lmax" " ms") | | | |"
echo "| same, paced at ${prate:-—} exec/s: exec/s, p50 / p99 / max, late | $(num "$pcx" " exec/s"), $(num "$pc50" "") / $(num "$pc99" "") / $(num "$pcmax" " ms"), $(num "$pclate" "% late") | | | |"
echo "| PTY keystroke echo (p50) | $(num "$pty" " µs") | | | $(num "$sp" " µs") |"
echo "| upload 1 MB / 15 MB | $(num "$up1" "") / $(num "$up15" " MB/s") | | | |"
echo "| download 1 MB / 15 MB | $(num "$dn1" "") / $(num "$dn15" " MB/s") | | | |"
echo "| forward, path style, 1 / 8 conns | $(num "$fw1" "") / $(num "$fw8" " req/s") | in the sandbox: $(num "$dw1" "") / $(num "$dw8" " req/s") | $(ratio "$fw8" "$dw8") (8 conns) | |"
echo "| \`chaser forward\`, 8 conns | $(num "$cf8" " req/s") | | | |"
echo "| idle sandbox: cgroup memory / agent anonymous RSS | $(num "$cg" " MB") / $(num "$rss" " MB") | | | $(num "$sm" " MB") |"
echo "| 20 parallel creates, one paid account (p50 / p99) | $(num "$p20" "") / $(num "$q20" " ms") | 20 parallel \`runc run\`: $(num "$pr" "") / $(num "$qr" " ms") | $(ratio "$p20" "$pr") | |"
echo "| 50 parallel creates over 5 accounts (p50 / p99) | $(num "$p50" "") / $(num "$q50" " ms"); per wave $(num "$s201" "") × 201, $(num "$s429" "") × 429, $(num "$sother" "") other | | | |"
echo "| 20 parallel creates, one paid account, \`--pool-size 4\` | $(wave pooled-20x1acct) | | | |"
echo "| 50 parallel creates over 5 accounts, \`--pool-size 4\` | $(wave pooled-50x5accts) | | | |"
echo "| 50 parallel creates over 5 accounts, host admits 30 (\`host.max_sandboxes\`, pool 4) | $(wave host30-50x5accts) | | | |"
echo "| idle memory over 20 sandboxes: host used-memory delta / cgroups, per sandbox | $(num "$(metric BenchmarkIdleHostMemory/runc host-MB/sandbox)" " MB") / $(num "$(metric BenchmarkIdleHostMemory/runc cgroup-MB/sandbox)" " MB") | | | $(num "$(metric BenchmarkIdleHostMemory/runsc host-MB/sandbox)" " MB") / $(num "$(metric BenchmarkIdleHostMemory/runsc cgroup-MB/sandbox)" " MB") |"
