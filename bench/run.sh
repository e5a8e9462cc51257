#!/usr/bin/env bash
# Runs the core benchmarks (as root) and prints Chaser/bare-runtime ratios.
# Usage: sudo bench/run.sh [benchtime]   (default 20x)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
out=$(go test ./bench -run '^$' -bench 'Create|Exec|IdleMemory' -benchtime "${1:-20x}" -count 1 2>&1)
echo "$out"
ns() { echo "$out" | awk -v n="$1" '$1 ~ n {print $3; exit}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "create + first command vs runc run:  $(ratio "$(ns chaser-create)" "$(ns runc-run)")x"
echo "exec true vs runc exec:               $(ratio "$(ns chaser-exec)" "$(ns runc-exec)")x"
