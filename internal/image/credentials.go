package image

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// credentialFile is a registry credentials file the server may read.
type credentialFile struct {
	path string
	// label names the file for clients by the setting that locates it, so
	// an error says which file without showing the host's paths.
	label string
}

// credentialFiles lists, in the order they are asked, the files podman,
// skopeo and Docker keep registry credentials in for the server's user:
// containers-auth.json(5) first (REGISTRY_AUTH_FILE, or
// $XDG_RUNTIME_DIR/containers/auth.json, or /run/containers/UID/auth.json
// without XDG_RUNTIME_DIR; then $XDG_CONFIG_HOME/containers/auth.json), then
// Docker's config ($DOCKER_CONFIG/config.json or ~/.docker/config.json).
// The first file with credentials for a registry wins, as in podman, which
// also falls back to Docker's config.
func credentialFiles() []credentialFile {
	var out []credentialFile
	home, _ := os.UserHomeDir()
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		out = append(out, credentialFile{p, "REGISTRY_AUTH_FILE"})
	} else if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		out = append(out, credentialFile{filepath.Join(d, "containers", "auth.json"), "$XDG_RUNTIME_DIR/containers/auth.json"})
	} else {
		uid := strconv.Itoa(os.Getuid())
		out = append(out, credentialFile{filepath.Join("/run/containers", uid, "auth.json"), "/run/containers/" + uid + "/auth.json"})
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		out = append(out, credentialFile{filepath.Join(d, "containers", "auth.json"), "$XDG_CONFIG_HOME/containers/auth.json"})
	} else if home != "" {
		out = append(out, credentialFile{filepath.Join(home, ".config", "containers", "auth.json"), "~/.config/containers/auth.json"})
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		out = append(out, credentialFile{filepath.Join(d, "config.json"), "DOCKER_CONFIG/config.json"})
	} else if home != "" {
		out = append(out, credentialFile{filepath.Join(home, ".docker", "config.json"), "~/.docker/config.json"})
	}
	return out
}

// fileKeychain resolves registry credentials from the files of
// credentialFiles, read on every pull (so `docker login` or `podman login`
// as the server's user applies without a restart). Credential helpers and
// credsStore entries of those files are honoured. A file that exists but
// cannot be parsed is a configFileError naming it.
type fileKeychain struct {
	mu sync.Mutex // credential helpers are external programs: one at a time
}

var _ authn.Keychain = (*fileKeychain)(nil)

func (k *fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range credentialFiles() {
		cf, err := loadCredentialFile(f)
		if err != nil {
			return nil, err
		}
		if cf == nil {
			continue
		}
		ac, err := lookupCredentials(cf, target)
		if err != nil {
			return nil, &configFileError{what: "registry credentials file (" + f.label + ")", problem: "names a credential helper that failed", path: f.path, err: err}
		}
		if ac != (types.AuthConfig{}) {
			return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password,
				Auth: ac.Auth, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
		}
	}
	return authn.Anonymous, nil
}

// loadCredentialFile parses f, or returns nil when it does not exist.
func loadCredentialFile(f credentialFile) (*configfile.ConfigFile, error) {
	file, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	what := "registry credentials file (" + f.label + ")"
	if err != nil {
		return nil, &configFileError{what: what, problem: "cannot be read", path: f.path, err: err}
	}
	defer file.Close()
	if fi, err := file.Stat(); err == nil && fi.IsDir() {
		return nil, &configFileError{what: what, path: f.path, err: errors.New("it is a directory")}
	}
	cf := configfile.New(f.path)
	if err := cf.LoadFromReader(file); err != nil {
		return nil, &configFileError{what: what, path: f.path, err: err}
	}
	return cf, nil
}

// lookupCredentials finds target's credentials in cf the way
// go-containerregistry's default keychain does (the repository, then the
// registry; Docker Hub under Docker's legacy key), plus podman's
// "docker.io" key for Docker Hub.
func lookupCredentials(cf *configfile.ConfigFile, target authn.Resource) (types.AuthConfig, error) {
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return types.AuthConfig{}, err
		}
		ac.ServerAddress = ""
		if ac != (types.AuthConfig{}) {
			return ac, nil
		}
	}
	if target.RegistryStr() == name.DefaultRegistry {
		if ac, ok := cf.AuthConfigs["docker.io"]; ok {
			ac.ServerAddress = ""
			return ac, nil
		}
	}
	return types.AuthConfig{}, nil
}
