package paging

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestParse(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tok := Token("s", Cursor{Time: at, Key: "s-1"})
	q, err := Parse(url.Values{"limit": {"7"}, "next_token": {tok}}, "s")
	if err != nil || q.Limit != 7 || !q.After.Time.Equal(at) || q.After.Key != "s-1" {
		t.Fatalf("Parse = %+v, %v", q, err)
	}
	if q, err := Parse(url.Values{}, "s"); err != nil || q.Limit != Default || !q.After.IsZero() {
		t.Fatalf("Parse of nothing = %+v, %v", q, err)
	}
	name := Token("i", Cursor{Key: "docker.io/library/alpine:3"})
	if q, err := Parse(url.Values{"next_token": {name}}, "i"); err != nil || !q.After.Time.IsZero() || q.After.Key != "docker.io/library/alpine:3" {
		t.Fatalf("Parse of a name cursor = %+v, %v", q, err)
	}
	for _, bad := range []url.Values{
		{"limit": {"0"}}, {"limit": {"-1"}}, {"limit": {"1001"}}, {"limit": {"x"}}, {"limit": {"1e3"}},
		{"next_token": {"nope"}}, {"next_token": {"e30"}}, // {} is no token
		{"next_token": {tok + "x"}},
		{"next_token": {name}}, // another list's token
	} {
		if _, err := Parse(bad, "s"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Parse(%v) = %v, want invalid argument", bad, err)
		}
	}
}

func TestCut(t *testing.T) {
	key := func(s string) Cursor { return Cursor{Key: s} }
	q := Query{Limit: 2}
	if page, next := Cut([]string{"a", "b"}, q, "x", key); len(page) != 2 || next != "" {
		t.Fatalf("last page: %v %q", page, next)
	}
	page, next := Cut([]string{"a", "b", "c"}, q, "x", key)
	if len(page) != 2 || next == "" {
		t.Fatalf("page with more: %v %q", page, next)
	}
	if q, err := Parse(url.Values{"next_token": {next}}, "x"); err != nil || q.After.Key != "b" {
		t.Fatalf("next_token continues after %+v, %v; want b", q.After, err)
	}
}
