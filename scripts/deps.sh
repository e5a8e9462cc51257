# Sourced by scripts/quickstart.sh and .ci/run: installs the packages the
# server and the tests need, from Debian's archive, when missing.
export PATH=/usr/local/go/bin:$PATH
install_deps() {
  local need=()
  command -v runc >/dev/null || need+=(runc)
  command -v tmux >/dev/null || need+=(tmux)
  command -v curl >/dev/null || need+=(curl)
  [ -x /bin/busybox ] || need+=(busybox-static)   # base layer of the image tests
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
  command -v go >/dev/null || { echo "Go is needed to build chaser: install it to /usr/local/go" >&2; return 1; }
}
