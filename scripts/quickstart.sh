#!/usr/bin/env bash
# Installs what Chaser needs on a Debian machine (runc; Go to build) and runs
# the server on its embedded defaults: SQLite in /var/lib/chaser, runc, the
# built-in host image, 127.0.0.1:8080. Run as root. It asks nothing, so it
# also runs in the background (`./scripts/quickstart.sh >log 2>&1 &`): the
# script becomes the server (exec), so SIGTERM to its pid stops it cleanly.
# Arguments go to `chaser serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
install_deps
CGO_ENABLED=0 go build -o bin/ ./cmd/chaser ./cmd/chaser-agent
echo "chaser: built bin/chaser and bin/chaser-agent; starting the server"
exec ./bin/chaser serve "$@"
