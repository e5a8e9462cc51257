package api

import "time"

// Image is an OCI image in the server's image cache. The cache is
// server-wide: every account sees the same list, any account may pull, only
// admins remove.
type Image struct {
	// Ref is the canonical reference, e.g.
	// "index.docker.io/library/busybox:latest" or "host:5000/app@sha256:…".
	Ref string `json:"ref"`
	// Digest is the digest the registry reports for the reference (what
	// `docker pull` prints): for a multi-platform tag, the index's digest.
	Digest string `json:"digest"`
	// ManifestDigest is the digest of the image manifest of this host's
	// platform: Digest itself for a single-platform image.
	ManifestDigest string `json:"manifest_digest,omitempty"`
	// Layers counts the image's layers; Size is their unpacked size.
	Layers     int       `json:"layers"`
	Size       int64     `json:"size"`
	Env        []string  `json:"env,omitempty"`
	WorkingDir string    `json:"working_dir,omitempty"`
	User       string    `json:"user,omitempty"`
	PulledAt   time.Time `json:"pulled_at"`
	// SkippedDevices counts the character and block device nodes of the
	// image's layers, which are never created (a sandbox's /dev is the
	// runtime's own); such images are accepted, as Docker does.
	SkippedDevices int `json:"skipped_devices,omitempty"`
}

// ImageList is the body of GET /v1/images.
type ImageList struct {
	Images []Image `json:"images"`
	// NextToken, when set, fetches the next page (?next_token=…); it is
	// absent on the last page.
	NextToken string `json:"next_token,omitempty"`
}

// PullImageRequest is the body of POST /v1/images.
type PullImageRequest struct {
	Ref string `json:"ref"`
	// IfMissing answers from the cache without asking the registry when the
	// image is cached (what a create does); otherwise the registry is asked
	// for the tag's current manifest and new layers are fetched.
	IfMissing bool `json:"if_missing,omitempty"`
	// Stream answers with NDJSON PullEvent lines instead of one Image.
	Stream bool `json:"stream,omitempty"`
}

// PullEvent is one line of a streamed pull: "progress" events while layers
// download and unpack, then one "done" (with Image) or "error" event.
type PullEvent struct {
	Type string `json:"type"`
	// Bytes of compressed layer data fetched (or found cached) so far and
	// in all; layers finished so far and in all.
	Current    int64        `json:"current,omitempty"`
	Total      int64        `json:"total,omitempty"`
	LayersDone int          `json:"layers_done,omitempty"`
	Layers     int          `json:"layers,omitempty"`
	Image      *Image       `json:"image,omitempty"`
	Error      *ErrorDetail `json:"error,omitempty"`
}
