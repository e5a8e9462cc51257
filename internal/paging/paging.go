// Package paging reads and writes the paging of the server's lists
// (sessions, workspaces, images): ?limit=N and ?next_token=T in, a page and
// the next_token that continues it out. A token is an opaque keyset
// cursor — the sort key of the last item given — so a page is stable under
// inserts and deletes, and costs the same however deep the list is read.
package paging

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Page sizes.
const (
	// Default is the page size of a list without ?limit=.
	Default = 100
	// Max is the largest ?limit= accepted.
	Max = 1000
)

// Cursor is a position in a list: the sort key of the last item of the
// previous page. Lists by age sort on (Time, Key); lists by name on Key
// alone (Time zero). The zero Cursor is the start of the list.
type Cursor struct {
	Time time.Time
	Key  string
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.Time.IsZero() && c.Key == "" }

// Query is one page asked for: at most Limit items (1 to Max; Parse sets
// Default when the request names none) after After.
type Query struct {
	Limit int
	After Cursor
}

// token is a cursor on the wire; List names the list it belongs to, so a
// token of one list is refused by another.
type token struct {
	List string `json:"l"`
	Time int64  `json:"t,omitempty"` // Unix nanoseconds
	Key  string `json:"k"`
}

// Parse reads ?limit= and ?next_token= of list (a short name of the list,
// the same one given to Cut). Bad values are errdefs.ErrInvalidArgument.
func Parse(q url.Values, list string) (Query, error) {
	p := Query{Limit: Default}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > Max {
			return p, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("limit must be an integer from 1 to %d", Max))
		}
		p.Limit = n
	}
	if s := q.Get("next_token"); s != "" {
		c, err := decode(s, list)
		if err != nil {
			return p, err
		}
		p.After = c
	}
	return p, nil
}

func decode(s, list string) (Cursor, error) {
	bad := errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("next_token %q is not one this list gave; leave it out for the first page", s))
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	var t token
	if json.Unmarshal(b, &t) != nil || t.List != list || t.Key == "" || t.Time < 0 {
		return Cursor{}, bad
	}
	c := Cursor{Key: t.Key}
	if t.Time != 0 {
		c.Time = time.Unix(0, t.Time).UTC()
	}
	return c, nil
}

// Token returns the next_token that continues list after c.
func Token(list string, c Cursor) string {
	t := token{List: list, Key: c.Key}
	if !c.Time.IsZero() {
		t.Time = c.Time.UnixNano()
	}
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Cut ends a page: given up to q.Limit+1 items (one more than the page, to
// tell whether more follow), it returns the page and the next_token of
// list after its last item, or "" when the page is the last.
func Cut[T any](items []T, q Query, list string, cursor func(T) Cursor) ([]T, string) {
	if len(items) <= q.Limit || q.Limit < 1 {
		return items, ""
	}
	items = items[:q.Limit]
	return items, Token(list, cursor(items[len(items)-1]))
}
