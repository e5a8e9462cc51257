# Sourced by scripts/quickstart.sh and .ci/run: installs the packages the
# server and the tests need, from Debian's archive, when missing.
export PATH=/usr/local/go/bin:$PATH
install_deps() {
  local need=()
  command -v runc >/dev/null || need+=(runc)
  command -v tmux >/dev/null || need+=(tmux)
  command -v curl >/dev/null || need+=(curl)
  dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)   # base layer of the image tests
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
  # The web console's npm project: vite (its build), xterm.js, and
  # puppeteer-core for its end-to-end test.
  local web
  web="$(dirname "${BASH_SOURCE[0]}")/../web"
  [ -d "$web/node_modules/puppeteer-core" ] && [ -d "$web/node_modules/vite" ] || (cd "$web" && npm ci --no-audit --no-fund)
  command -v go >/dev/null || { echo "Go is needed to build chaser: install it to /usr/local/go" >&2; return 1; }
}
