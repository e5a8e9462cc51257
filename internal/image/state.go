package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// state is the OCI cache's index, kept in one small JSON file rewritten
// atomically (write, fsync, rename) under Store.mu. Layer directories are
// created before the state names them, and the state forgets them before
// they are deleted, so a crash at any point leaves at worst an unnamed
// directory, which open removes.
type state struct {
	// NextLayer numbers layer directories; never reused, so a new layer
	// cannot take the name of one a sandbox still has mounted.
	NextLayer int64                   `json:"next_layer"`
	Layers    map[string]*layerRecord `json:"layers"` // by compressed digest
	Images    map[string]*imageRecord `json:"images"` // by canonical reference
}

// layerRecord is an unpacked layer.
type layerRecord struct {
	ID         string `json:"id"`      // directory name under l/
	Digest     string `json:"digest"`  // of the compressed blob, as in the manifest
	DiffID     string `json:"diff_id"` // of the uncompressed tar
	Size       int64  `json:"size"`    // unpacked bytes of file content
	Compressed int64  `json:"compressed"`
	// SkippedDevices counts device nodes of the layer that were not
	// created (see Unpack).
	SkippedDevices int `json:"skipped_devices,omitempty"`
}

// imageRecord maps a reference (a tag or a digest) to a manifest and its
// layers: what lets a cached tag start without its registry.
type imageRecord struct {
	Ref string `json:"ref"`
	// Digest is what the registry reports for Ref (an index's digest for
	// a multi-platform tag); ManifestDigest is this platform's manifest.
	// Records of older versions have only the manifest's digest in Digest.
	Digest         string    `json:"digest"`
	ManifestDigest string    `json:"manifest_digest,omitempty"`
	Layers         []string  `json:"layers"` // compressed digests, bottom first
	Env            []string  `json:"env,omitempty"`
	WorkingDir     string    `json:"working_dir,omitempty"`
	User           string    `json:"user,omitempty"`
	PulledAt       time.Time `json:"pulled_at"`
}

func (s *Store) statePath() string { return filepath.Join(s.dir, "state.json") }

func loadState(path string) (*state, error) {
	st := &state{Layers: map[string]*layerRecord{}, Images: map[string]*imageRecord{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	if st.Layers == nil {
		st.Layers = map[string]*layerRecord{}
	}
	if st.Images == nil {
		st.Images = map[string]*imageRecord{}
	}
	for _, rec := range st.Images {
		if rec.ManifestDigest == "" {
			rec.ManifestDigest = rec.Digest // written before the registry's digest was kept
		}
	}
	return st, nil
}

// saveLocked writes the state. s.mu must be held.
func (s *Store) saveLocked() error {
	b, err := json.MarshalIndent(s.state, "", " ")
	if err != nil {
		return err
	}
	tmp := s.statePath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.statePath())
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save image state: %w", err)
	}
	return nil
}

// newLayerIDLocked returns the next layer directory name. s.mu must be held.
func (s *Store) newLayerIDLocked() string {
	s.state.NextLayer++
	return strconv.FormatInt(s.state.NextLayer, 36)
}
