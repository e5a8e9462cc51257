# Sourced by scripts/quickstart.sh and .ci/run: installs the packages the
# server and the tests need, from Debian's archive, when missing.
export PATH=/usr/local/go/bin:$PATH
install_deps() {
  local need=()
  command -v runc >/dev/null || need+=(runc)
  command -v tmux >/dev/null || need+=(tmux)
  command -v curl >/dev/null || need+=(curl)
  [ -x /usr/sbin/mkfs.ext4 ] && [ -x /usr/sbin/resize2fs ] || need+=(e2fsprogs)   # disk quotas: an ext4 image per sandbox
  dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)   # base layer of the image tests
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)  # runtime microvm
  command -v cpio >/dev/null || need+=(cpio)                           # its initramfs
  # The tests run these inside sandboxes of the host image (its /usr).
  [ -x /usr/bin/python3 ] || need+=(python3)
  [ -x /usr/bin/git ] || need+=(git)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  [ -x /usr/bin/chromium ] || need+=(chromium)   # the browser test (xterm.js)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
  # The browser test's npm project: xterm.js, its attach addon, puppeteer-core.
  local xterm
  xterm="$(dirname "${BASH_SOURCE[0]}")/../integration/testdata/xterm"
  [ -d "$xterm/node_modules/puppeteer-core" ] || (cd "$xterm" && npm ci --no-audit --no-fund)
  # The E2B test's npm project: the e2b SDK, pinned.
  local e2b
  e2b="$(dirname "${BASH_SOURCE[0]}")/../integration/testdata/e2b"
  [ -d "$e2b/node_modules/e2b" ] || (cd "$e2b" && npm ci --no-audit --no-fund)
  # The MCP test's npm project: the official MCP TypeScript SDK, pinned.
  local mcp
  mcp="$(dirname "${BASH_SOURCE[0]}")/../integration/testdata/mcp"
  [ -d "$mcp/node_modules/@modelcontextprotocol/sdk" ] || (cd "$mcp" && npm ci --no-audit --no-fund)
  # The web console's npm project: vite (its build), xterm.js, and
  # puppeteer-core for its end-to-end test.
  local web
  web="$(dirname "${BASH_SOURCE[0]}")/../web"
  [ -d "$web/node_modules/puppeteer-core" ] && [ -d "$web/node_modules/vite" ] || (cd "$web" && npm ci --no-audit --no-fund)
  command -v go >/dev/null || { echo "Go is needed to build chaser: install it to /usr/local/go" >&2; return 1; }
}

# gVisor's runsc, pinned: Debian's (2022) is too old here (no systrap
# platform, broken networking in a namespace). Keep RUNSC_MODULE equal to
# oci.RunscModule (a unit test checks). It is built once with `go install`
# into RUNSC_CACHE, where `chaser serve --runtime runsc` looks when runsc is
# not on PATH, and reused while its embedded version matches: a build takes
# 2.5-6 minutes on 2 cores.
RUNSC_MODULE=gvisor.dev/gvisor/runsc@v0.0.0-20260905035102-160fafc42237
RUNSC_CACHE=/var/cache/chaser-runsc
install_runsc() {
  local bin=$RUNSC_CACHE/runsc want=${RUNSC_MODULE#*@}
  if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+gvisor.dev/gvisor[[:space:]]+$want([[:space:]]|\$)"; then
    return 0
  fi
  echo "deps: building runsc $want into $RUNSC_CACHE (once; a few minutes)" >&2
  mkdir -p "$RUNSC_CACHE"
  CGO_ENABLED=0 GOBIN="$RUNSC_CACHE" go install "$RUNSC_MODULE"
}

# The microvm runtime's guest kernel and initramfs, from Debian packages,
# into /var/cache/chaser-microvm (rebuilt when the kernel or /init changes).
install_microvm() {
  bash "$(dirname "${BASH_SOURCE[0]}")/microvm.sh"
}
