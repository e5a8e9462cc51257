# escape.py ATTEMPT [ARG...]: one attempt of the escape battery
# (integration/escape_test.go), run inside a sandbox with the sandbox's
# python3. It makes the raw system call with ctypes, so what answers is the
# kernel (or gVisor's sentry), never a missing tool, and prints exactly one
# line:
#
#   RESULT errno=EPERM [step=...]   the call failed with this errno
#   RESULT empty                    a read gave no data (a masked file)
#   RESULT ok DETAIL                it worked: the attempt was NOT blocked
#
# Nothing here writes anything harmful when a call unexpectedly succeeds:
# kernel files are only opened for writing, never written.
import ctypes
import errno
import os
import platform
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# System call numbers: x86_64, aarch64.
NR = {
    "x86_64": dict(mount=165, umount2=166, unshare=272, ptrace=101, init_module=175, finit_module=313,
                   bpf=321, perf_event_open=298, add_key=248, keyctl=250, userfaultfd=323,
                   open_by_handle_at=304, kexec_load=246),
    "aarch64": dict(mount=40, umount2=39, unshare=97, ptrace=117, init_module=105, finit_module=273,
                    bpf=280, perf_event_open=241, add_key=217, keyctl=219, userfaultfd=282,
                    open_by_handle_at=265, kexec_load=104),
}[platform.machine()]


class Failed(Exception):
    def __init__(self, err, step=""):
        self.err, self.step = err, step


def sc(name, *args):
    """Makes system call name; raises Failed with its errno."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(ctypes.c_long(NR[name]), *conv)
    if r < 0:
        raise Failed(ctypes.get_errno(), name)
    return r


def oserr(fn, *args, step=""):
    try:
        return fn(*args)
    except OSError as e:
        raise Failed(e.errno, step) from None


def cstr(s):
    return ctypes.c_char_p(s.encode())


def open_write(path):
    fd = oserr(os.open, path, os.O_WRONLY, step="open")
    os.close(fd)
    return "opened %s for writing" % path


def read_all(path, limit=4096):
    fd = oserr(os.open, path, os.O_RDONLY, step="open")
    try:
        data = oserr(os.read, fd, limit, step="read")
    finally:
        os.close(fd)
    return data


CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_REMOUNT, MS_BIND = 32, 4096


def mount_tmpfs():
    os.makedirs("/tmp/escape-mnt", exist_ok=True)
    sc("mount", cstr("none"), cstr("/tmp/escape-mnt"), cstr("tmpfs"), 0, None)
    return "mounted a tmpfs"


def remount_proc_sys():
    sc("mount", None, cstr("/proc/sys"), None, MS_REMOUNT | MS_BIND, None)
    return "remounted /proc/sys read-write"


def umount_mask():
    sc("umount2", cstr("/proc/kcore"), 2)  # MNT_DETACH
    return "unmounted the mask of /proc/kcore"


def unshare(flags, what):
    sc("unshare", flags)
    return "unshared " + what


def mknod_block():
    # The host's first disk, as /proc/partitions names it.
    major, minor = 8, 0
    try:
        for line in open("/proc/partitions").read().splitlines()[2:]:
            f = line.split()
            if len(f) == 4:
                major, minor = int(f[0]), int(f[1])
                break
    except OSError:
        pass
    path = "/tmp/escape-disk"
    if os.path.lexists(path):
        os.unlink(path)
    oserr(os.mknod, path, 0o600 | 0o060000, os.makedev(major, minor), step="mknod")
    try:
        data = read_all(path, 512)
    finally:
        os.unlink(path)
    return "read %d bytes of block device %d:%d" % (len(data), major, minor)


def raw_socket(family, kind, proto):
    s = oserr(socket.socket, family, kind, proto, step="socket")
    s.close()
    return "opened a raw socket"


def ptrace_agent():
    sc("ptrace", 16, 1, 0, 0)  # PTRACE_ATTACH to pid 1, the agent
    return "attached to the agent"


def agent_memory():
    fd = oserr(os.open, "/proc/1/mem", os.O_RDONLY, step="open")
    os.close(fd)
    return "opened the agent's memory"


def agent_socket():
    # The agent serves its API on a socket the server reaches from the host.
    # Look for it from inside: a descriptor leaked to this command, a unix
    # socket under /.chaser or anywhere this network namespace lists, and
    # the agent's own descriptors through /proc/1/fd.
    for fd in os.listdir("/proc/self/fd"):
        if int(fd) > 2:
            try:
                if os.readlink("/proc/self/fd/" + fd).startswith("socket:"):
                    return "a command holds socket fd %s" % fd
            except OSError:
                pass
    paths = set()
    for d, _, names in os.walk("/.chaser"):
        paths.update(os.path.join(d, n) for n in names)
    try:
        for line in open("/proc/net/unix").read().splitlines()[1:]:
            f = line.split()
            if len(f) == 8:
                # An abstract name shows as @name.
                paths.add("\0" + f[7][1:] if f[7].startswith("@") else f[7])
    except OSError:
        pass
    for p in sorted(paths):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(p)
            return "connected to %r" % p
        except OSError:
            pass
        finally:
            s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        oserr(s.connect, "/proc/1/fd/3", step="connect")
    finally:
        s.close()
    return "connected to the agent's socket"


def cgroup2_mkdir():
    # Only where /sys/fs/cgroup is a cgroup v2 hierarchy (its root has
    # cgroup.controllers): a v1 view's /sys/fs/cgroup is a tmpfs, where a
    # directory would be no cgroup.
    oserr(os.stat, "/sys/fs/cgroup/cgroup.controllers", step="no-cgroup2")
    oserr(os.mkdir, "/sys/fs/cgroup/escape", step="mkdir")
    return "made a child cgroup"


def setuid_root():
    oserr(os.setuid, 0, step="setuid")
    return "became root"


def load_module():
    image = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
    sc("init_module", image, 64, cstr(""))
    return "loaded a module"


def load_module_fd():
    fd = os.open("/proc/self/exe", os.O_RDONLY)
    try:
        sc("finit_module", fd, cstr(""), 0)
    finally:
        os.close(fd)
    return "loaded a module"


def bpf_map():
    attr = ctypes.create_string_buffer(struct.pack("IIII", 1, 4, 4, 1) + b"\0" * 112)  # BPF_MAP_TYPE_HASH
    fd = sc("bpf", 0, attr, 128)  # BPF_MAP_CREATE
    os.close(fd)
    return "created a bpf map"


def perf_event():
    attr = ctypes.create_string_buffer(struct.pack("IIQ", 1, 128, 0) + b"\0" * 112)  # software, cpu clock
    fd = sc("perf_event_open", attr, 0, -1, -1, 0)
    os.close(fd)
    return "opened a perf event"


def add_key():
    sc("add_key", cstr("user"), cstr("escape"), cstr("x"), 1, -3)  # KEY_SPEC_SESSION_KEYRING
    return "added a key to the kernel's keyring"


def userfaultfd():
    fd = sc("userfaultfd", os.O_CLOEXEC)
    os.close(fd)
    return "opened a userfaultfd"


def open_by_handle():
    # "Shocker": a handle of the host's root inode (ext4: inode 2).
    handle = ctypes.create_string_buffer(struct.pack("IiQ", 8, 1, 2))
    mfd = os.open("/", os.O_RDONLY)
    try:
        fd = sc("open_by_handle_at", mfd, handle, os.O_RDONLY)
    finally:
        os.close(mfd)
    os.close(fd)
    return "opened a file by handle"


def kexec():
    sc("kexec_load", 0, 0, None, 0)
    return "kexec_load accepted"


def read_masked(*paths):
    """Reads files the runtime masks: each must be empty or absent."""
    for p in paths:
        try:
            data = read_all(p)
        except Failed as f:
            if f.err != errno.ENOENT:
                raise
            continue
        if data:
            return "read %s: %r" % (p, data[:64])
    return b""


def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        oserr(s.connect, (host, int(port)), step="connect")
    finally:
        s.close()
    return "connected to %s:%s" % (host, port)


def host_files(marker, *dirs):
    """Tries to read host file marker through every path that might lead
    out: directly, /proc/1/root, /proc/self/root, every host directory the
    mount table names (and each of their parents), prefixed by each of those
    roots. dirs are extra host directories to try (the caller's guesses)."""
    name = os.path.basename(marker)
    paths = {marker}
    candidates = set(dirs) | {os.path.dirname(marker)}
    try:
        for line in open("/proc/self/mountinfo"):
            for tok in line.replace(",", " ").split():
                _, _, v = tok.rpartition("=")
                for p in v.split(":"):
                    if p.startswith("/"):
                        candidates.add(p)
    except OSError:
        pass
    for c in candidates:
        while c not in ("", "/"):
            paths.add(os.path.join(c, name))
            c = os.path.dirname(c)
    errs = set()
    for p in sorted(paths):
        for root in ("", "/proc/1/root", "/proc/self/root", "/proc/1/cwd/", "/proc/self/cwd/"):
            try:
                data = read_all(root + p)
            except Failed as f:
                errs.add(f.err)
                continue
            if data:
                return "read %s: %r" % (root + p, data[:64])
            errs.add(errno.ENOENT)  # an empty file of the same name: not the marker
    # Every path failed; report the commonest kind (ENOENT, EACCES under
    # `nobody`, for whom /proc/1 is closed).
    raise Failed(sorted(errs, key=lambda e: e != errno.ENOENT)[0], "%d paths" % len(paths))


def chroot_breakout(marker):
    os.makedirs("/tmp/escape-chroot", exist_ok=True)
    fd = os.open("/", os.O_RDONLY)
    oserr(os.chroot, "/tmp/escape-chroot", step="chroot")
    os.fchdir(fd)  # the classic: a directory outside the new root
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    data = read_all(marker)
    return "read %r" % data[:64]


def write_usr(path):
    with open(path, "ab") as f:
        f.write(b"escape\n")
    return "appended to " + path


def replace_agent(how):
    if how == "write":
        return open_write("/.chaser/agent")
    if how == "truncate":
        fd = oserr(os.open, "/.chaser/agent", os.O_WRONLY | os.O_TRUNC, step="open")
        os.close(fd)
        return "truncated the agent"
    if how == "rename":
        with open("/tmp/escape-agent", "wb") as f:
            f.write(b"#!/bin/sh\n")
        oserr(os.rename, "/tmp/escape-agent", "/.chaser/agent", step="rename")
        return "renamed over the agent"
    if how == "unlink":
        oserr(os.unlink, "/.chaser/agent", step="unlink")
        return "removed the agent"
    if how == "exe":
        return open_write("/proc/1/exe")
    raise SystemExit("unknown way " + how)


ATTEMPTS = {
    "mount": mount_tmpfs,
    "remount-proc-sys": remount_proc_sys,
    "umount-mask": umount_mask,
    "unshare-user": lambda: unshare(CLONE_NEWUSER, "a user namespace"),
    "unshare-mount": lambda: unshare(CLONE_NEWNS, "a mount namespace"),
    "unshare-net": lambda: unshare(CLONE_NEWNET, "a network namespace"),
    "proc-sys-core-pattern": lambda: open_write("/proc/sys/kernel/core_pattern"),
    "proc-sys-hostname": lambda: open_write("/proc/sys/kernel/hostname"),
    "sysrq-trigger": lambda: open_write("/proc/sysrq-trigger"),
    "cgroup-limit": lambda: open_write("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "cgroup-pids": lambda: open_write("/sys/fs/cgroup/pids/pids.max"),
    "cgroup-release-agent": lambda: open_write("/sys/fs/cgroup/memory/release_agent"),
    "uevent-helper": lambda: open_write("/sys/kernel/uevent_helper"),
    "cgroup-mkdir": lambda: oserr(os.mkdir, "/sys/fs/cgroup/memory/escape", step="mkdir"),
    "cgroup2-limit": lambda: open_write("/sys/fs/cgroup/memory.max"),
    "cgroup2-mkdir": cgroup2_mkdir,
    "kcore": lambda: read_all("/proc/kcore"),
    "masked": read_masked,
    "dev-kmsg": lambda: read_all("/dev/kmsg"),
    "proc-kmsg": lambda: read_all("/proc/kmsg"),
    "dev-mem": lambda: read_all("/dev/mem"),
    "mknod": mknod_block,
    "raw-socket": lambda: raw_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "packet-socket": lambda: raw_socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
    "ptrace-agent": ptrace_agent,
    "agent-memory": agent_memory,
    "agent-socket": agent_socket,
    "init-module": load_module,
    "finit-module": load_module_fd,
    "bpf": bpf_map,
    "perf-event-open": perf_event,
    "keyctl": add_key,
    "userfaultfd": userfaultfd,
    "open-by-handle": open_by_handle,
    "kexec-load": kexec,
    "setuid-root": setuid_root,
    "connect": connect,
    "host-files": host_files,
    "chroot-breakout": chroot_breakout,
    "write-usr": write_usr,
    "replace-agent": replace_agent,
}


def main():
    fn = ATTEMPTS[sys.argv[1]]
    try:
        r = fn(*sys.argv[2:])
    except Failed as f:
        step = " step=" + f.step if f.step else ""
        print("RESULT errno=%s%s" % (errno.errorcode.get(f.err, str(f.err)), step))
        return
    except OSError as e:
        print("RESULT errno=%s step=%s" % (errno.errorcode.get(e.errno, str(e.errno)), "other"))
        return
    if isinstance(r, bytes):
        print("RESULT empty" if not r else "RESULT ok read %r" % r[:64])
        return
    print("RESULT ok %s" % (r or "done"))


main()
