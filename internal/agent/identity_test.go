package agent

import (
	"reflect"
	"testing"
)

func TestUserRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		uid, gid uint32
		groups   []uint32
		want     string
	}{
		{1000, 1000, nil, "1000:1000"},
		{1000, 100, []uint32{2000, 2001}, "1000:100:2000,2001"},
		{0, 5, nil, "0:5"},
	} {
		s := FormatUser(tc.uid, tc.gid, tc.groups)
		if s != tc.want {
			t.Errorf("FormatUser = %q, want %q", s, tc.want)
		}
		cred, err := parseUser(s)
		if err != nil {
			t.Fatal(err)
		}
		groups := tc.groups
		if groups == nil {
			groups = []uint32{}
		}
		if cred.Uid != tc.uid || cred.Gid != tc.gid || !reflect.DeepEqual(cred.Groups, groups) {
			t.Errorf("parseUser(%q) = %+v", s, cred)
		}
	}
	if cred, err := parseUser(""); cred != nil || err != nil {
		t.Errorf("empty: %v %v, want root (nil)", cred, err)
	}
	for _, bad := range []string{"1000", "a:b", "1:2:x", "1:2:3:4", "-1:0"} {
		if _, err := parseUser(bad); err == nil {
			t.Errorf("parseUser(%q) accepted", bad)
		}
	}
}
