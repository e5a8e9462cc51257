#!/bin/bash
# Builds the guest kernel and initramfs of the microvm runtime from Debian
# packages into a cache directory (MICROVM_CACHE, default
# /var/cache/chaser-microvm), once per kernel version:
#
#   vmlinux         the uncompressed kernel (PVH boot; the bzImage's xz
#                   payload), booted by `qemu-system-x86_64 -M microvm`
#   initramfs.cpio  busybox-static, the virtio/ext4/overlay modules and /init
#   version         the kernel release they were built from, and a hash
#                   of /init and the module list
#
# The kernel package is fetched with `apt-get download` (linux-image-amd64
# is a metapackage: its dependency names the versioned package) and
# unpacked with `dpkg-deb -x`: nothing is installed on the host. The agent
# is not part of it: the runtime appends it (the same binary as in
# containers) and each sandbox's settings as further cpio archives.
#
# Usage: scripts/microvm.sh [CACHE]   (or source it and call build_microvm)
set -euo pipefail

MICROVM_CACHE=${MICROVM_CACHE:-/var/cache/chaser-microvm}

# Load order: dependencies first. crc32c_generic is loaded by hand because
# ext4 and jbd2 ask the crypto API for crc32c, which would need modprobe.
MICROVM_MODULES="virtio_ring virtio virtio_mmio virtio_blk virtio_console failover net_failover virtio_net crc16 mbcache jbd2 crc32c_generic libcrc32c ext4 overlay"

build_microvm() {
  local cache=${1:-$MICROVM_CACHE}
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    echo "microvm: cannot resolve linux-image-amd64 to a versioned kernel package (apt-get update?)" >&2
    return 1
  fi
  local kver=${pkg#linux-image-}
  # Rebuilt when the kernel, the module list or /init changes.
  local stamp
  stamp="$kver $(cat "$(dirname "${BASH_SOURCE[0]}")/microvm-init.sh" <(echo "$MICROVM_MODULES") | sha256sum | cut -c1-16)"
  if [ -f "$cache/version" ] && [ "$(cat "$cache/version")" = "$stamp" ] && [ -f "$cache/vmlinux" ] && [ -f "$cache/initramfs.cpio" ]; then
    return 0
  fi
  command -v cpio >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cpio
  dpkg -s busybox-static >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
  echo "microvm: building kernel $kver and initramfs into $cache" >&2
  mkdir -p "$cache"
  local work
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  # apt-get download writes into the current directory; _apt cannot write
  # to root's 0700 temp dirs, so make it readable for the download.
  chmod 755 "$work"
  (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1 || apt-get download "$pkg")
  dpkg-deb -x "$work"/"$pkg"_*.deb "$work/pkg"

  # vmlinux: the xz stream inside the bzImage (as the kernel's
  # scripts/extract-vmlinux finds it); trailing data makes xz complain.
  local bz=$work/pkg/boot/vmlinuz-$kver off
  off=$(grep -abo $'\xfd7zXZ\x00' "$bz" | head -1 | cut -d: -f1)
  tail -c +$((off + 1)) "$bz" | xz -dc > "$work/vmlinux" 2>/dev/null || true
  if ! head -c 4 "$work/vmlinux" | grep -q ELF; then
    echo "microvm: no xz-compressed ELF kernel found in $bz" >&2
    return 1
  fi

  # initramfs: busybox, the modules, /init.
  local root=$work/root mods=$work/pkg/lib/modules/$kver/kernel
  mkdir -p "$root"/{bin,dev,proc,sys,modules,base,upper,newroot,chaser}
  cp /bin/busybox "$root/bin/busybox"
  local m f
  for m in $MICROVM_MODULES; do
    f=$(find "$mods" -name "$m.ko" | head -1)
    [ -n "$f" ] || { echo "microvm: module $m not found in $pkg" >&2; return 1; }
    cp "$f" "$root/modules/"
  done
  echo "$MICROVM_MODULES" > "$root/modules/order"
  cp "$(dirname "${BASH_SOURCE[0]}")/microvm-init.sh" "$root/init"
  chmod 755 "$root/init"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$work/initramfs.cpio"

  mv "$work/vmlinux" "$cache/vmlinux"
  mv "$work/initramfs.cpio" "$cache/initramfs.cpio"
  echo "$stamp" > "$cache/version"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  build_microvm "${1:-}"
fi
