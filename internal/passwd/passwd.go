// Package passwd resolves a user specification — "name", "uid",
// "name:group", "uid:gid", as in an image's USER or an exec request's
// "user" — against the passwd and group files of a root filesystem, the
// way Docker and runc do. The server reads the files from an image's
// layers; the agent reads the sandbox's own /etc/passwd and /etc/group:
// never the host's.
//
// The package is pure (bytes in, ids out) and imports the standard
// library only: it runs in the agent of every sandbox.
package passwd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnknown is wrapped by errors about a name that the files lack.
var ErrUnknown = errors.New("unknown user or group")

// ErrMalformed is wrapped by errors about a specification that is not
// "user[:group]", or a passwd entry whose ids are not numbers.
var ErrMalformed = errors.New("malformed user")

// User is a resolved user.
type User struct {
	// Name is the passwd name, or "" when a numeric user has no entry.
	Name     string
	UID, GID uint32
	// Groups are the supplementary groups: those whose /etc/group entry
	// lists Name, less GID.
	Groups []uint32
	// Home is the passwd home directory; "/" without an entry ("/root"
	// for uid 0), as Docker does.
	Home string
}

// String names the user for messages: the name, else the uid.
func (u User) String() string {
	if u.Name != "" {
		return u.Name
	}
	return strconv.FormatUint(uint64(u.UID), 10)
}

// Check reports whether spec has the shape "user[:group]" with non-empty
// parts, without looking anything up.
func Check(spec string) error {
	u, g, hasGroup := strings.Cut(spec, ":")
	if u == "" || (hasGroup && g == "") || strings.Contains(g, ":") || strings.ContainsAny(spec, " \t\n\x00") {
		return fmt.Errorf("user %q: %w: want a name or uid, optionally :group or :gid (dev, 1000, dev:staff, 1000:1000)", spec, ErrMalformed)
	}
	return nil
}

// Resolve resolves spec against passwd and group (the files' contents;
// nil when absent). An empty spec is root. A numeric user needs no
// passwd entry (its group is then 0, unless given); a name must have one,
// and a group name must be in group, else the error wraps ErrUnknown.
func Resolve(spec string, passwd, group []byte) (User, error) {
	if spec == "" {
		spec = "0"
	}
	if err := Check(spec); err != nil {
		return User{}, err
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	u := User{Home: "/"}
	found := false
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, f := range fields(passwd, 7) {
			if f[2] == userPart {
				if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					u.GID = uint32(g)
				}
				u.Name, u.Home, found = f[0], f[5], true
				break
			}
		}
		if !found && u.UID == 0 {
			u.Home = "/root"
		}
	} else {
		for _, f := range fields(passwd, 7) {
			if f[0] != userPart {
				continue
			}
			uid, err1 := strconv.ParseUint(f[2], 10, 32)
			gid, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 != nil || err2 != nil {
				return User{}, fmt.Errorf("the /etc/passwd entry of user %q: %w: its ids are not numbers", userPart, ErrMalformed)
			}
			u.UID, u.GID, u.Name, u.Home, found = uint32(uid), uint32(gid), f[0], f[5], true
			break
		}
		if !found {
			return User{}, fmt.Errorf("user %q: %w: /etc/passwd has no such user", userPart, ErrUnknown)
		}
	}
	groups := fields(group, 4)
	if hasGroup {
		if g, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			u.GID = uint32(g)
		} else {
			ok := false
			for _, f := range groups {
				if f[0] == groupPart {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						u.GID, ok = uint32(g), true
					}
					break
				}
			}
			if !ok {
				return User{}, fmt.Errorf("group %q: %w: /etc/group has no such group", groupPart, ErrUnknown)
			}
		}
	}
	if u.Name != "" {
		for _, f := range groups {
			for _, m := range strings.Split(f[3], ",") {
				if m != u.Name {
					continue
				}
				if g, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(g) != u.GID {
					u.Groups = append(u.Groups, uint32(g))
				}
			}
		}
	}
	if u.Home == "" {
		u.Home = "/"
	}
	return u, nil
}

// NameOf returns the passwd name of uid, or "" when passwd lacks it.
func NameOf(uid uint32, passwd []byte) string {
	s := strconv.FormatUint(uint64(uid), 10)
	for _, f := range fields(passwd, 7) {
		if f[2] == s {
			return f[0]
		}
	}
	return ""
}

// fields splits passwd/group lines into at least n fields, skipping
// comments and malformed lines.
func fields(b []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < n {
			continue
		}
		out = append(out, f)
	}
	return out
}
