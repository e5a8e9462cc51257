package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The server configures who commands run as and where, through the agent's
// environment (baseEnv hides CHASER_AGENT_* from commands). Being in the
// init's environment, the settings survive a server restart with the
// sandbox.
const (
	// EnvCwd is the default working directory of commands, the image's
	// WorkingDir or /workspace. The agent creates it if missing.
	EnvCwd = "CHASER_AGENT_CWD"
	// EnvUser is "UID:GID[:G1,G2...]", the image's user resolved by the
	// server from the image's /etc/passwd and /etc/group. Unset means root.
	EnvUser = "CHASER_AGENT_USER"
	// DefaultCwd is the working directory when EnvCwd is not set.
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

// prepareCwd creates the default working directory when the image lacks
// it; a directory the agent creates belongs to the commands' user, so a
// non-root image user can work in /workspace.
func prepareCwd(dir string, cred *syscall.Credential) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("working directory %s is not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(dir, int(cred.Uid), int(cred.Gid))
	}
	return nil
}
