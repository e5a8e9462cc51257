#!/usr/bin/env bash
# Builds the web console (web/, vite) into internal/console/dist, which the
# binary embeds. `scripts/console.sh --check` builds into a temporary
# directory instead and fails when the committed build differs from what
# the sources give (the build is deterministic: same sources, same bytes).
set -euo pipefail
cd "$(dirname "$0")/../web"
[ -d node_modules/vite ] || npm ci --no-audit --no-fund
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d /tmp/chaser-console-XXXXXX)
  trap 'rm -rf "$out"' EXIT
  CONSOLE_OUT="$out" npx vite build --logLevel warn
  if ! diff -r "$out" ../internal/console/dist >/dev/null; then
    echo "console: internal/console/dist is stale: run scripts/console.sh and commit the result" >&2
    diff -r "$out" ../internal/console/dist | head -20 >&2 || true
    exit 1
  fi
  echo "console: the committed build matches web/"
else
  npx vite build --logLevel warn
fi
