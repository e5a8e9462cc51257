package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

// Resolve returns a client for profile (empty: CHASER_PROFILE, else the
// configuration's current profile). The environment wins:
// CHASER_API_URL and CHASER_API_KEY override the profile's URL and key.
// Without any key it falls back to keyFile (the local server's admin.key)
// when that is readable. It also returns the profile name used ("" for
// none) and where the key came from.
func Resolve(profile, keyFile string) (*Client, string, Source, error) {
	cfg, err := LoadConfig(ConfigPath())
	if err != nil {
		return nil, "", SourceNone, err
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
		return nil, "", SourceNone, fmt.Errorf("no profile %q in %s (chaser auth login --profile %s)", profile, ConfigPath(), profile)
	}
	if !ok {
		profile = ""
	}
	url, key, src := p.URL, p.Key, SourceProfile
	if v := os.Getenv("CHASER_API_URL"); v != "" {
		url = v
	}
	if url == "" {
		url = DefaultURL
	}
	if v := os.Getenv("CHASER_API_KEY"); v != "" {
		key, src = v, SourceEnv
	}
	if key == "" && keyFile != "" {
		if b, err := os.ReadFile(keyFile); err == nil {
			key, src = strings.TrimSpace(string(b)), SourceKeyFile
		}
	}
	if key == "" {
		src = SourceNone
	}
	return New(url, key), profile, src, nil
}
