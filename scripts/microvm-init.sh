#!/bin/busybox sh
# /init of the microvm runtime's initramfs (see scripts/microvm.sh): loads
# the virtio, ext4 and overlay modules, stacks the sandbox's root
# filesystem — the image's read-only base disk (label chaser-base) under
# the writable disk (label chaser-upper) — copies in the agent and the
# sandbox's settings appended by the runtime (/chaser), and hands over to
# the agent as PID 1. Anything failing powers the VM off (QEMU runs with
# -no-reboot), leaving the reason on the console log.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
  echo "chaser-init: $*"
  sync
  reboot -f
  sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do
  insmod /modules/$m.ko || fail "insmod $m"
done

disk() {
  for i in $(seq 1 200); do
    d=$(findfs LABEL=$1 2>/dev/null) && { echo "$d"; return 0; }
    sleep 0.02
  done
  return 1
}
base=$(disk chaser-base) || fail "no disk labelled chaser-base"
upper=$(disk chaser-upper) || fail "no disk labelled chaser-upper"
mount -t ext4 -o ro,noload "$base" /base || fail "mount base disk"
mount -t ext4 -o nodev "$upper" /upper || fail "mount upper disk"
# The same layout as the container runtimes' upper directory.
mkdir -p /upper/root/upper /upper/root/work
mount -t overlay overlay -o lowerdir=/base,upperdir=/upper/root/upper,workdir=/upper/root/work /newroot || fail "mount overlay"

mkdir -p /newroot/.chaser /newroot/dev
mount -t tmpfs -o mode=755,size=128m tmpfs /newroot/.chaser || fail "mount /.chaser"
cp /chaser/agent /chaser/env /newroot/.chaser/ || fail "copy the agent"
mount -o remount,ro /newroot/.chaser
hostname "$(cat /chaser/hostname)"
# The guest has no RTC (TCG, rtc=off) and starts in 1970: the host's time
# at create, so that TLS certificates and apt's Release files are valid.
[ -s /chaser/time ] && date -s "@$(cat /chaser/time)" >/dev/null
ip link set lo up || fail "loopback"
# Network mode internet: the runtime put the guest's address and gateway in
# /chaser/net ("ADDR/BITS GATEWAY"); the NIC (virtio_net) is eth0. The
# resolv.conf it wrote (the gateway's DNS forwarder, or no nameserver in
# mode none) is bound over the image's, as the container runtimes do.
if [ -s /chaser/net ]; then
  read -r addr gw < /chaser/net
  # IPv4 only, as in containers (the host side drops IPv6 anyway).
  for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done 2>/dev/null
  for i in $(seq 1 200); do [ -e /sys/class/net/eth0 ] && break; sleep 0.02; done
  ip link set eth0 up && ip addr add "$addr" dev eth0 && ip route add default via "$gw" || fail "network eth0 $addr via $gw"
fi
if [ -f /chaser/resolv.conf ]; then
  # /.chaser is read-only (its superblock: so is the bind mount below).
  mount -o remount,rw /newroot/.chaser && cp /chaser/resolv.conf /newroot/.chaser/ && mount -o remount,ro /newroot/.chaser || fail "copy resolv.conf"
  [ -L /newroot/etc/resolv.conf ] && rm -f /newroot/etc/resolv.conf
  mkdir -p /newroot/etc && { [ -e /newroot/etc/resolv.conf ] || : > /newroot/etc/resolv.conf; }
  mount --bind /newroot/.chaser/resolv.conf /newroot/etc/resolv.conf || fail "resolv.conf"
fi
umount /proc /sys
mount --move /dev /newroot/dev || fail "move /dev"
exec switch_root /newroot /.chaser/agent agent --vm
