package sandbox

import (
	"context"
	"path"
	"slices"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/paging"
	"github.com/chaserhq/chaser/internal/store"
)

// Images returns the image store, for the images API.
func (s *Service) Images() *image.Store { return s.cfg.Images }

// ListImages returns one page of the image cache, by reference. next is
// the next_token of the page after, "" on the last.
func (s *Service) ListImages(q paging.Query) (page []api.Image, next string) {
	list := s.cfg.Images.List() // sorted by Ref
	from, _ := slices.BinarySearchFunc(list, q.After.Key, func(img api.Image, ref string) int { return strings.Compare(img.Ref, ref) })
	if from < len(list) && q.After.Key != "" && list[from].Ref == q.After.Key {
		from++
	}
	list = list[from:min(len(list), from+q.Limit+1)]
	return paging.Cut(list, q, "images", func(img api.Image) paging.Cursor { return paging.Cursor{Key: img.Ref} })
}

// RemoveImage removes an image from the cache. The cache is shared by every
// account, so only an admin may: others get ErrPermissionDenied.
func (s *Service) RemoveImage(ctx context.Context, acct store.Account, ref string) error {
	if !acct.Admin {
		return errdefs.New(errdefs.ErrPermissionDenied, "removing images is for admins: the image cache is shared by every account")
	}
	return s.cfg.Images.Remove(ctx, ref)
}

// imageEnv is what the image's config adds to the agent's environment: the
// default working directory and user of commands (read by the agent, hidden
// from commands) and HOME when the image sets none (as Docker does, from
// the user's /etc/passwd entry).
func imageEnv(img *image.Image) []string {
	cwd := img.WorkingDir
	if cwd == "" {
		cwd = DefaultCwd
	}
	// The image spec wants it absolute; Docker reads a relative one from /.
	cwd = path.Join("/", cwd)
	env := []string{agent.EnvCwd + "=" + cwd}
	if img.UID != 0 || img.GID != 0 || len(img.Groups) > 0 {
		env = append(env, agent.EnvUser+"="+agent.FormatUser(img.UID, img.GID, img.Groups))
	}
	hasHome := false
	for _, kv := range img.Env {
		if strings.HasPrefix(kv, "HOME=") {
			hasHome = true
		}
	}
	if !hasHome && img.Home != "" {
		env = append(env, "HOME="+img.Home)
	}
	return env
}
