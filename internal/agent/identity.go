package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/agent/process"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/passwd"
)

// The server configures who commands run as and where, through the agent's
// environment (baseEnv hides CHASER_AGENT_* from commands). Being in the
// init's environment, the settings survive a server restart with the
// sandbox. A sandbox of the warm pool is made before its session: its user
// and cwd are the image's (the pool keys by image), and the session's
// identity comes later through POST /v1/init (init.go), which the agent
// keeps in memory — so it survives a server restart too.
const (
	// EnvCwd is the default working directory of commands, the image's
	// WorkingDir or /workspace. The agent creates it if missing.
	EnvCwd = "CHASER_AGENT_CWD"
	// EnvUser is "UID:GID[:G1,G2...]", the image's user resolved by the
	// server from the image's /etc/passwd and /etc/group. Unset means root.
	EnvUser = "CHASER_AGENT_USER"
	// DefaultCwd is the working directory when EnvCwd is not set, and the
	// directory every sandbox has for the user's files (chaser dev
	// mirrors into it): the agent makes it, owned by the image's user.
	DefaultCwd = "/workspace"
)

// FormatUser encodes ids for EnvUser.
func FormatUser(uid, gid uint32, groups []uint32) string {
	s := fmt.Sprintf("%d:%d", uid, gid)
	if len(groups) > 0 {
		gs := make([]string, len(groups))
		for i, g := range groups {
			gs[i] = strconv.FormatUint(uint64(g), 10)
		}
		s += ":" + strings.Join(gs, ",")
	}
	return s
}

// parseUser decodes EnvUser; empty means root (nil credential).
func parseUser(s string) (*syscall.Credential, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("%s=%q: want UID:GID[:GROUPS]", EnvUser, s)
	}
	uid, err1 := strconv.ParseUint(parts[0], 10, 32)
	gid, err2 := strconv.ParseUint(parts[1], 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%s=%q: ids must be numbers", EnvUser, s)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if len(parts) == 3 && parts[2] != "" {
		for _, g := range strings.Split(parts[2], ",") {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: group %q is not a number", EnvUser, s, g)
			}
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}

// identity is who a command runs as. Exec, terminals, self-test and the
// owner of new files all come from one identity, resolved by one rule:
// the request's user when it names one, else the image's.
type identity struct {
	user process.User
	// home is the HOME the command gets; empty keeps the sandbox's
	// (the image's Env, or its user's passwd home, set by the server).
	home string
	// name is the passwd name of a user the request named, "" for a
	// uid without an entry (and for the image's user).
	name string
}

func (id identity) uid() uint32 {
	if id.user.Credential == nil {
		return 0
	}
	return id.user.Credential.Uid
}

// owner is who files made on behalf of id belong to.
func (id identity) owner() fs.Owner {
	if c := id.user.Credential; c != nil {
		return fs.Owner{UID: int(c.Uid), GID: int(c.Gid)}
	}
	return fs.Owner{}
}

// defaultIdentity is the image's user: cred from EnvUser, its name from
// the sandbox's /etc/passwd (the uid itself when the file lacks it).
func defaultIdentity(cred *syscall.Credential) identity {
	uid := uint32(0)
	if cred != nil {
		uid = cred.Uid
	}
	name := passwd.NameOf(uid, readEtc("passwd"))
	if name == "" {
		name = strconv.FormatUint(uint64(uid), 10)
		if uid == 0 {
			name = "root"
		}
	}
	return identity{user: process.User{Name: name, Credential: cred}}
}

// readEtc reads /etc/NAME of the sandbox (the agent's root is the
// sandbox's), at most 1 MiB; nil when it is absent or not a regular file
// (a FIFO planted there must not block the agent).
func readEtc(name string) []byte {
	f, err := os.OpenFile("/etc/"+name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return b
}

// resolveUser resolves a request's user: "" is the image's user; otherwise a
// name or uid, optionally :group or :gid, looked up in the sandbox's own
// /etc/passwd and /etc/group. A user that is not there, or a malformed
// one, is errdefs.ErrInvalidArgument.
func (a *Agent) resolveUser(spec string) (identity, error) {
	if spec == "" {
		return a.user, nil
	}
	u, err := passwd.Resolve(spec, readEtc("passwd"), readEtc("group"))
	if err != nil {
		if errors.Is(err, passwd.ErrUnknown) {
			return identity{}, errdefs.New(errdefs.ErrInvalidArgument, err.Error()+" in this sandbox")
		}
		return identity{}, errdefs.New(errdefs.ErrInvalidArgument, err.Error())
	}
	groups := u.Groups
	if groups == nil {
		groups = []uint32{}
	}
	return identity{
		user: process.User{Name: u.String(), Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: groups}},
		home: u.Home,
		name: u.Name,
	}, nil
}

// workdir is where a command of id starts: cwd when the request gives one,
// else the default (the image's WorkingDir, or /workspace), or / when the
// default is gone. A cwd that is not a directory, or that id may not
// enter, is errdefs.ErrInvalidArgument naming the cause.
func (a *Agent) workdir(id identity, cwd string) (string, error) {
	if cwd == "" {
		cwd = a.cwd
		if fi, err := os.Stat(cwd); err != nil || !fi.IsDir() {
			cwd = "/"
		}
	}
	if !path.IsAbs(cwd) {
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("cwd %q must be an absolute path", cwd))
	}
	if fi, err := os.Stat(cwd); err != nil || !fi.IsDir() {
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("cwd %s is not a directory in the sandbox", cwd))
	}
	if dir, ok := canEnter(cwd, id.user.Credential); !ok {
		msg := fmt.Sprintf("cwd %s: permission denied for user %s", cwd, id.user)
		if dir != cwd {
			msg += fmt.Sprintf(" (%s is closed to it)", dir)
		}
		return "", errdefs.New(errdefs.ErrInvalidArgument, msg)
	}
	return cwd, nil
}

// canEnter reports whether cred may search every directory on the way to
// dir, by the permission bits; it returns the first one closed to it. A
// directory with an ACL is left to the kernel (reported open): the check
// exists to name the cause, never to refuse what the kernel would allow.
func canEnter(dir string, cred *syscall.Credential) (string, bool) {
	if cred == nil || cred.Uid == 0 {
		return "", true
	}
	p := "/"
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		p = path.Join(p, c)
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return "", true
		}
		if !searchable(&st, cred) && !hasACL(p) {
			return p, false
		}
	}
	return "", true
}

func searchable(st *syscall.Stat_t, cred *syscall.Credential) bool {
	switch {
	case st.Uid == cred.Uid:
		return st.Mode&0o100 != 0
	case st.Gid == cred.Gid || contains(cred.Groups, st.Gid):
		return st.Mode&0o010 != 0
	default:
		return st.Mode&0o001 != 0
	}
}

func contains(list []uint32, v uint32) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func hasACL(p string) bool {
	_, err := unix.Getxattr(p, "system.posix_acl_access", nil)
	return err == nil
}

// commandEnv is the environment of a command of id: the sandbox's, HOME
// (and USER, where the sandbox sets one, as su does) of a user the request
// named, then the request's own variables.
func (a *Agent) commandEnv(id identity, extra map[string]string) []string {
	env := a.environ()
	if id.home != "" {
		env = mergeEnv(env, map[string]string{"HOME": id.home}) // a copy
		// A uid without a passwd entry has no name: no USER then.
		if i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "USER=") }); i >= 0 {
			if id.name != "" {
				env[i] = "USER=" + id.name
			} else {
				env = slices.Delete(env, i, i+1)
			}
		}
	}
	return mergeEnv(env, extra)
}

// findShell returns bash when the sandbox has it, else /bin/sh, else "".
func findShell() string {
	for _, s := range []string{"/bin/bash", "/usr/bin/bash", "/bin/sh"} {
		if fi, err := os.Stat(s); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return s
		}
	}
	return ""
}

// needShell returns the shell for a command line, or
// errdefs.ErrInvalidArgument when the image has none (a distroless image):
// such a sandbox runs argv only.
func (a *Agent) needShell() (string, error) {
	if a.shell != "" {
		if _, err := os.Stat(a.shell); err == nil {
			return a.shell, nil
		}
	}
	if s := findShell(); s != "" {
		return s, nil
	}
	return "", errdefs.New(errdefs.ErrInvalidArgument, `this image has no /bin/sh to run a command line: send "argv" instead, e.g. {"argv": ["/app/tool", "--flag"]} (run without a shell)`)
}

// prepareDirs makes the default working directory and /workspace when the
// image lacks them, owned by the image's user, so that a non-root user can
// work there; a /workspace left empty and root's by the image is handed
// to the user too.
func prepareDirs(id identity, dirs ...string) error {
	var errs []error
	for _, dir := range dirs {
		if _, _, err := fs.Mkdir(dir, "", id.owner()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dir, err))
			continue
		}
		if dir != DefaultCwd || id.uid() == 0 {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(dir, &st); err == nil && st.Uid == 0 && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
				o := id.owner()
				errs = append(errs, os.Lchown(dir, o.UID, o.GID))
			}
		}
	}
	return errors.Join(errs...)
}
