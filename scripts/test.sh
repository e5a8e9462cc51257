#!/usr/bin/env bash
# The test suite, exactly as CI runs it (.ci/run calls this script). It
# installs what the tests need (scripts/deps.sh: Debian packages, and the
# pinned runsc, built once into /var/cache/chaser-runsc: a few minutes the
# first time), runs every test with the runsc tests mandatory
# (CHASER_TEST_RUNSC=1: a runsc test that cannot run fails instead of
# skipping), then runs the integration tests that matter again with every
# sandbox under gVisor. Integration tests need root. Arguments are passed to
# both `go test` runs (e.g. -v).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
install_deps
install_runsc
install_microvm # the microvm conformance suite and TestMicroVM boot its guest kernel (cached)
export CHASER_TEST_RUNSC=1

go test -count=1 -timeout 20m "$@" ./...

# The runsc pass: a focused subset keeps the suite well within CI's
# 15 minutes (the runtime conformance suite, the escape battery and the
# mixed-tier tests already ran against runsc above). TestIsolation stays
# runc-only: it checks runc's mechanisms (seccomp filter, cgroupfs, sysfs),
# which gVisor replaces with its own kernel.
runsc_subset='^(TestExecSeed|TestExecInSession|TestPTYHumanMode|TestPTYAgentMode|TestFilesUploadDownloadRoundTrip|TestFilesOperations|TestForward|TestImageRunAndReuse|TestWorkspaces|TestMCPClient|TestDevMirrorsLocalChanges|TestSelfTest|TestOOMReason|TestOOMEndsAtOnce|TestRestart)$'
echo "test: the runsc pass"
CHASER_TEST_RUNTIME=runsc go test -count=1 -timeout 10m "$@" -run "$runsc_subset" ./integration/
