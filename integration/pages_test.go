package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// TestListsArePaged walks the lists of sessions, workspaces and images
// (and the admin's ?all=true forms) page by page with ?limit= and
// ?next_token=: the pages together are the whole list, in its order, each
// item once, and the last page has no next_token. The client's List
// methods page through lists longer than one default page. Bad limits and
// tokens are 400.
func TestListsArePaged(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	var refs []string
	for i := range 3 {
		img := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.Entry{Name: "etc/n", Body: fmt.Appendf(nil, "%d\n", i)}))
		refs = append(refs, reg.Push(t, fmt.Sprintf("test/page%d:v1", i), img))
	}
	s := newServer(t, "--insecure-registry", reg.Host)
	user, other := s.account(t, "paid"), s.account(t, "paid")
	c := s.Client(user)
	var mine []string
	for range 5 {
		mine = append(mine, s.sandbox(t, user))
	}
	theirs := s.sandbox(t, other)
	const nws = 105 // more than one default page
	var wsNames []string
	for i := range nws {
		name := fmt.Sprintf("ws-%03d", i)
		if _, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		wsNames = append(wsNames, name)
	}
	for _, ref := range refs {
		if _, err := c.PullImage(t.Context(), api.PullImageRequest{Ref: ref}, nil); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("sessions", func(t *testing.T) {
		got := walkPages(t, s, user, "/v1/sessions", 2, func(b []byte) ([]string, string) {
			var l api.SessionList
			decodeJSON(t, b, &l)
			return ids(l.Sessions, func(x api.Session) string { return x.ID }), l.NextToken
		})
		if !slices.Equal(got, mine) {
			t.Fatalf("pages of 2 gave %v, want %v", got, mine)
		}
		all := walkPages(t, s, s.AdminKey, "/v1/sessions?all=true", 2, func(b []byte) ([]string, string) {
			var l api.SessionList
			decodeJSON(t, b, &l)
			for _, x := range l.Sessions {
				if x.AccountID == "" {
					t.Errorf("?all=true session %s without account_id", x.ID)
				}
			}
			return ids(l.Sessions, func(x api.Session) string { return x.ID }), l.NextToken
		})
		if !slices.Equal(all, append(slices.Clone(mine), theirs)) {
			t.Fatalf("?all=true pages of 2 gave %v, want %v", all, append(slices.Clone(mine), theirs))
		}
		if l, err := c.ListSessions(t.Context()); err != nil || !slices.Equal(ids(l, func(x api.Session) string { return x.ID }), mine) {
			t.Fatalf("client ListSessions = %v, %v", l, err)
		}
	})
	t.Run("workspaces", func(t *testing.T) {
		got := walkPages(t, s, user, "/v1/workspaces", 10, func(b []byte) ([]string, string) {
			var l api.WorkspaceList
			decodeJSON(t, b, &l)
			return ids(l.Workspaces, func(w api.Workspace) string { return w.Name }), l.NextToken
		})
		if !slices.Equal(got, wsNames) {
			t.Fatalf("pages of 10 gave %d workspaces %v, want %d", len(got), got, nws)
		}
		// Without ?limit=, one page of the default size.
		page, err := c.WorkspacesPage(t.Context(), client.ListOptions{})
		if err != nil || len(page.Workspaces) != 100 || page.NextToken == "" {
			t.Fatalf("first default page: %d workspaces, next_token %q, %v", len(page.Workspaces), page.NextToken, err)
		}
		// The client's list reads every page.
		l, err := c.ListWorkspaces(t.Context())
		if err != nil || !slices.Equal(ids(l, func(w api.Workspace) string { return w.Name }), wsNames) {
			t.Fatalf("client ListWorkspaces: %d workspaces, %v", len(l), err)
		}
		all, err := s.Client(s.AdminKey).ListAllWorkspaces(t.Context())
		if err != nil || len(all) != nws {
			t.Fatalf("client ListAllWorkspaces: %d workspaces, %v", len(all), err)
		}
		// One page may hold everything: then no next_token.
		page, err = c.WorkspacesPage(t.Context(), client.ListOptions{Limit: 1000})
		if err != nil || len(page.Workspaces) != nws || page.NextToken != "" {
			t.Fatalf("page of 1000: %d workspaces, next_token %q, %v", len(page.Workspaces), page.NextToken, err)
		}
	})
	t.Run("images", func(t *testing.T) {
		whole, err := c.ListImages(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := ids(whole, func(img api.Image) string { return img.Ref })
		for _, ref := range refs {
			if !slices.Contains(want, ref) {
				t.Fatalf("image list %v lacks %s", want, ref)
			}
		}
		got := walkPages(t, s, user, "/v1/images", 1, func(b []byte) ([]string, string) {
			var l api.ImageList
			decodeJSON(t, b, &l)
			return ids(l.Images, func(img api.Image) string { return img.Ref }), l.NextToken
		})
		if !slices.Equal(got, want) {
			t.Fatalf("pages of 1 gave %v, want %v", got, want)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		imgTok := firstToken(t, s, user, "/v1/images?limit=1")
		for _, path := range []string{"/v1/sessions", "/v1/workspaces", "/v1/images", "/v1/sessions?all=true&", "/v1/workspaces?all=true&"} {
			for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=x", "next_token=nope", "next_token=" + url.QueryEscape(firstToken(t, s, user, "/v1/workspaces?limit=1")+"x")} {
				sep := "?"
				if path[len(path)-1] == '&' {
					sep = ""
				}
				code, body := s.do(t, s.AdminKey, "GET", path+sep+q, "")
				expectError(t, code, body, http.StatusBadRequest, "invalid_argument")
			}
		}
		// A token of one list is not one of another.
		code, body := s.do(t, user, "GET", "/v1/sessions?next_token="+url.QueryEscape(imgTok), "")
		expectError(t, code, body, http.StatusBadRequest, "invalid_argument")
		code, body = s.do(t, user, "GET", "/v1/sessions?all=true&limit=1", "")
		expectError(t, code, body, http.StatusForbidden, "permission_denied")
	})
}

// walkPages reads path page by page, limit at a time, until an answer
// without next_token, and returns the items page gives of every answer.
func walkPages(t *testing.T, s *Server, key, path string, limit int, page func([]byte) ([]string, string)) []string {
	t.Helper()
	sep := "?"
	if u, _ := url.Parse(path); u.RawQuery != "" {
		sep = "&"
	}
	var all []string
	next := ""
	for n := 0; ; n++ {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if next != "" {
			q.Set("next_token", next)
		}
		code, body := s.do(t, key, "GET", path+sep+q.Encode(), "")
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		items, tok := page(body)
		if len(items) > limit || (tok != "" && len(items) != limit) {
			t.Fatalf("GET %s page %d: %d items with next_token %q, limit %d", path, n, len(items), tok, limit)
		}
		all = append(all, items...)
		if tok == "" {
			return all
		}
		if n > 1000 {
			t.Fatalf("GET %s: pages never end", path)
		}
		next = tok
	}
}

// firstToken returns the next_token of the first page of path.
func firstToken(t *testing.T, s *Server, key, path string) string {
	t.Helper()
	code, body := s.do(t, key, "GET", path, "")
	var page struct {
		NextToken string `json:"next_token"`
	}
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || page.NextToken == "" {
		t.Fatalf("GET %s: %d %s: no next_token", path, code, body)
	}
	return page.NextToken
}

func ids[T any](l []T, id func(T) string) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = id(x)
	}
	return out
}
