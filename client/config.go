package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Profile is one named account on one server, as saved by `chaser auth login`.
type Profile struct {
	URL string `json:"url"`
	Key string `json:"key"`
}

// Config is the client configuration file: named profiles and the one in
// use. It holds API keys, so it is written with mode 0600.
type Config struct {
	Current  string             `json:"current"`
	Profiles map[string]Profile `json:"profiles"`
}

// ConfigPath is CHASER_CONFIG, else $XDG_CONFIG_HOME/chaser/config.json,
// else ~/.config/chaser/config.json.
func ConfigPath() string {
	if p := os.Getenv("CHASER_CONFIG"); p != "" {
		return p
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "chaser", "config.json")
}

// LoadConfig reads the configuration at path; a missing file is an empty
// configuration.
func LoadConfig(path string) (*Config, error) {
	c := &Config{Profiles: map[string]Profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s is not a valid chaser configuration: %v", path, err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]Profile{}
	}
	return c, nil
}

// Save writes the configuration to path atomically, mode 0600.
func (c *Config) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Names returns the profile names, sorted.
func (c *Config) Names() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Source says where a client's key came from.
type Source string

// Key sources, in order of precedence.
const (
	SourceEnv      Source = "env"      // CHASER_API_KEY
	SourceProfile  Source = "profile"  // the configuration file
	SourceKeyFile  Source = "key-file" // the local server's admin.key
	SourceNone     Source = "none"
	DefaultProfile        = "default"
)

// Resolution is the outcome of Resolve: the client, and where its URL and
// key came from, for `chaser auth status` and for error messages.
type Resolution struct {
	Client  *Client
	Profile string // the profile used, "" for none
	Source  Source
	// KeyFrom says in words which key is used and where it was found
	// ("" when there is none).
	KeyFrom string
	// Skipped, when not empty, says why the local server's admin key was
	// not used (it belongs to a server at another address).
	Skipped string
}

// AddrFile is the file beside the local server's admin.key in which the
// server records the address it listens on (HOST:PORT), so that clients
// use that key only for that server.
const AddrFile = "admin.addr"

// Resolve returns a client for profile (empty: CHASER_PROFILE, else the
// configuration's current profile). The environment wins:
// CHASER_API_URL and CHASER_API_KEY override the profile's URL and key.
// Without any key it falls back to keyFile (the local server's admin.key)
// when that is readable and the server that wrote it listens where the
// client's URL points (AddrFile beside it says where).
func Resolve(profile, keyFile string) (Resolution, error) {
	cfg, err := LoadConfig(ConfigPath())
	if err != nil {
		return Resolution{Source: SourceNone}, err
	}
	if profile == "" {
		profile = os.Getenv("CHASER_PROFILE")
	}
	explicit := profile != ""
	if profile == "" {
		profile = cfg.Current
	}
	p, ok := cfg.Profiles[profile]
	if explicit && !ok {
		return Resolution{Source: SourceNone}, fmt.Errorf("no profile %q in %s (chaser auth login --profile %s)", profile, ConfigPath(), profile)
	}
	if !ok {
		profile = ""
	}
	res := Resolution{Profile: profile, Source: SourceProfile}
	url, key := p.URL, p.Key
	if key != "" {
		res.KeyFrom = fmt.Sprintf("the key of profile %q in %s", profile, ConfigPath())
	}
	if v := os.Getenv("CHASER_API_URL"); v != "" {
		url = v
	}
	if url == "" {
		url = DefaultURL
	}
	if v := os.Getenv("CHASER_API_KEY"); v != "" {
		key, res.Source, res.KeyFrom = v, SourceEnv, "CHASER_API_KEY"
	}
	if key == "" && keyFile != "" {
		if b, err := os.ReadFile(keyFile); err == nil {
			addr, serves := localServerAt(filepath.Join(filepath.Dir(keyFile), AddrFile), url)
			switch {
			case serves:
				key, res.Source = strings.TrimSpace(string(b)), SourceKeyFile
				res.KeyFrom = fmt.Sprintf("the local server's admin key %s (that server listens on %s)", keyFile, addr)
			case addr != "":
				res.Skipped = fmt.Sprintf("the local admin key %s was not used: it belongs to the server on %s, not %s", keyFile, addr, url)
			default:
				res.Skipped = fmt.Sprintf("the local admin key %s was not used: %s does not say which address its server listens on (restart chaser serve)", keyFile, filepath.Join(filepath.Dir(keyFile), AddrFile))
			}
		}
	}
	if key == "" {
		res.Source = SourceNone
	}
	res.Client = New(url, key)
	return res, nil
}

// localServerAt reads the address recorded in addrFile and reports
// whether a client of baseURL reaches that server: same port, and the same
// host, or both on this machine (a loopback name or address, or any local
// address when the server listens on all of them).
func localServerAt(addrFile, baseURL string) (addr string, ok bool) {
	b, err := os.ReadFile(addrFile)
	if err != nil {
		return "", false
	}
	addr = strings.TrimSpace(string(b))
	sHost, sPort, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, false
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "http" {
		return addr, false // the server serves plain HTTP
	}
	uHost, uPort := u.Hostname(), u.Port()
	if uPort == "" {
		uPort = "80"
	}
	if uPort != sPort {
		return addr, false
	}
	if strings.EqualFold(uHost, sHost) {
		return addr, true
	}
	sIP, uIP := net.ParseIP(sHost), net.ParseIP(uHost)
	if strings.EqualFold(uHost, "localhost") {
		uIP = net.IPv4(127, 0, 0, 1)
	}
	if sIP == nil || uIP == nil {
		return addr, false
	}
	switch {
	case sIP.IsLoopback() && uIP.IsLoopback():
		return addr, true
	case sIP.IsUnspecified():
		return addr, uIP.IsLoopback() || isLocalIP(uIP)
	}
	return addr, false
}

// isLocalIP reports whether ip is an address of this machine.
func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
