package passwd

import (
	"errors"
	"reflect"
	"testing"
)

var (
	pw = []byte("# comment\nroot:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\nbad:x:abc:1:bad:/:/bin/sh\nshort:x\nnohome:x:1001:1001:::/bin/sh\n")
	gr = []byte("root:x:0:\ndev:x:1000:\ntools:x:3000:dev,other\nstaff:x:50:other\n")
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want User
		err  error
	}{
		{"", User{Name: "root", Home: "/root"}, nil},
		{"root", User{Name: "root", Home: "/root"}, nil},
		{"dev", User{Name: "dev", UID: 1000, GID: 1000, Groups: []uint32{3000}, Home: "/home/dev"}, nil},
		{"1000", User{Name: "dev", UID: 1000, GID: 1000, Groups: []uint32{3000}, Home: "/home/dev"}, nil},
		{"dev:staff", User{Name: "dev", UID: 1000, GID: 50, Groups: []uint32{3000}, Home: "/home/dev"}, nil},
		{"dev:3000", User{Name: "dev", UID: 1000, GID: 3000, Home: "/home/dev"}, nil},
		{"1234:2345", User{UID: 1234, GID: 2345, Home: "/"}, nil},
		{"1234", User{UID: 1234, Home: "/"}, nil},
		{"nohome", User{Name: "nohome", UID: 1001, GID: 1001, Home: "/"}, nil},
		{"nobody-here", User{}, ErrUnknown},
		{"dev:nogroup", User{}, ErrUnknown},
		{"bad", User{}, ErrMalformed},
		{"a:b:c", User{}, ErrMalformed},
		{":1000", User{}, ErrMalformed},
		{"dev:", User{}, ErrMalformed},
		{"de v", User{}, ErrMalformed},
	} {
		got, err := Resolve(tc.spec, pw, gr)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: err %v, want %v", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v %v, want %+v", tc.spec, got, err, tc.want)
		}
	}
	// Without the files, only numbers resolve.
	if u, err := Resolve("1000:1000", nil, nil); err != nil || u.UID != 1000 || u.GID != 1000 || u.String() != "1000" {
		t.Errorf("numeric without files: %+v %v", u, err)
	}
	if _, err := Resolve("dev", nil, nil); !errors.Is(err, ErrUnknown) {
		t.Errorf("name without files: %v", err)
	}
	if NameOf(1000, pw) != "dev" || NameOf(7, pw) != "" {
		t.Error("NameOf")
	}
}
