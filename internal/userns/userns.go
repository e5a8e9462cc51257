// Package userns describes the host-wide uid/gid range that root inside
// runc sandboxes maps to (--userns-remap, like Docker's userns-remap), and
// does the host-side work that range needs: shifting owners of files the
// sandboxes write (ShiftTree, Own) and idmapped mounts of host directories
// Chaser does not own (IDMap, the host image's /usr).
//
// One range for every sandbox (not one per sandbox) is a choice: image
// layers are unpacked once with shifted owners, so no per-sandbox mount of
// each layer is needed, and a workspace keeps its owners across sessions.
// A sandbox's root is then an unprivileged host uid, but sandboxes share
// that uid among themselves: what keeps them apart is still their mount,
// pid and other namespaces, as without the remap.
package userns

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Remap maps uid and gid 0..Size-1 inside every sandbox to Base..Base+Size-1
// on the host. The zero Remap is off: sandbox root is host root.
type Remap struct {
	Base uint32
	Size uint32
}

// Default is the range of `auto` when /etc/subuid has no entry for the
// user "chaser": what Docker's dockremap user usually gets.
var Default = Remap{Base: 100000, Size: 65536}

// subordinateUser is the user whose /etc/subuid and /etc/subgid entries
// `auto` uses, as Docker's `default` uses dockremap's.
const subordinateUser = "chaser"

// Parse reads a --userns-remap value: "" or "off" (no remap), "auto" (the
// chaser user's entry in /etc/subuid and /etc/subgid, else Default), or
// "BASE:SIZE". Size must be at least 65536, so that every id an image or a
// user can name (nobody is 65534) is mapped, and the range must stay clear
// of the host's root. Errors are errdefs.ErrInvalidArgument.
func Parse(v string) (Remap, error) {
	switch v {
	case "", "off":
		return Remap{}, nil
	case "auto":
		return auto("/etc/subuid", "/etc/subgid")
	}
	b, s, ok := strings.Cut(v, ":")
	base, err1 := strconv.ParseUint(b, 10, 32)
	size, err2 := strconv.ParseUint(s, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return Remap{}, fmt.Errorf("--userns-remap %q: want off, auto or BASE:SIZE (e.g. 100000:65536): %w", v, errdefs.ErrInvalidArgument)
	}
	return check(Remap{Base: uint32(base), Size: uint32(size)})
}

func check(m Remap) (Remap, error) {
	// Base >= Size keeps shifted and unshifted owners apart, so ShiftTree
	// can tell what it already shifted.
	if m.Size < 65536 || m.Base < m.Size || uint64(m.Base)+uint64(m.Size) > 1<<32-1 {
		return Remap{}, fmt.Errorf("--userns-remap %d:%d: the range must hold at least 65536 ids and start at or above its size: %w", m.Base, m.Size, errdefs.ErrInvalidArgument)
	}
	return m, nil
}

// auto returns the chaser user's subordinate range when both files name
// the same one, else Default.
func auto(subuid, subgid string) (Remap, error) {
	u, uok := subordinate(subuid)
	g, gok := subordinate(subgid)
	if !uok && !gok {
		return Default, nil
	}
	if u != g {
		return Remap{}, fmt.Errorf("--userns-remap auto: %s and %s give the user %s different ranges; Chaser maps uids and gids alike: %w", subuid, subgid, subordinateUser, errdefs.ErrInvalidArgument)
	}
	return check(u)
}

// subordinate reads the first "chaser:BASE:SIZE" line of file.
func subordinate(file string) (Remap, bool) {
	f, err := os.Open(file)
	if err != nil {
		return Remap{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(p) != 3 || p[0] != subordinateUser {
			continue
		}
		base, err1 := strconv.ParseUint(p[1], 10, 32)
		size, err2 := strconv.ParseUint(p[2], 10, 32)
		if err1 == nil && err2 == nil {
			return Remap{Base: uint32(base), Size: uint32(size)}, true
		}
	}
	return Remap{}, false
}

// Enabled reports whether the remap is on.
func (m Remap) Enabled() bool { return m.Size > 0 }

// String is "off" or "BASE:SIZE".
func (m Remap) String() string {
	if !m.Enabled() {
		return "off"
	}
	return fmt.Sprintf("%d:%d", m.Base, m.Size)
}

// Suffix names directories whose files carry this range's owners (the
// image cache): "" when off, else "-userns-BASE-SIZE", so that files
// unpacked for one range are never served to sandboxes of another.
func (m Remap) Suffix() string {
	if !m.Enabled() {
		return ""
	}
	return fmt.Sprintf("-userns-%d-%d", m.Base, m.Size)
}

// Host returns the host id of sandbox id id. Ids beyond the range have no
// host id: errdefs.ErrUnprocessable. Off, every id is its own host id.
func (m Remap) Host(id int) (int, error) {
	if !m.Enabled() {
		return id, nil
	}
	if id < 0 || uint64(id) >= uint64(m.Size) {
		return 0, fmt.Errorf("id %d lies outside the %d ids sandboxes map (--userns-remap %s): %w", id, m.Size, m, errdefs.ErrUnprocessable)
	}
	return int(m.Base) + id, nil
}
