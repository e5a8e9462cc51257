package sandbox

import "testing"

func TestAdmission(t *testing.T) {
	lim := HostLimits{MaxSandboxes: 10, MinFreeMemoryMB: 1000}
	for _, tc := range []struct {
		name    string
		load    hostLoad
		user    admission // OK and Yield only
		poolOK  bool
		userWhy bool // a refusal names why
	}{
		{name: "empty host", load: hostLoad{AvailableMB: 8000}, user: admission{OK: true}, poolOK: true},
		{name: "room for both", load: hostLoad{Sandboxes: 5, Pooled: 2, AvailableMB: 8000}, user: admission{OK: true}, poolOK: true},
		// The pool stops PoolHeadroom(10) = 1 slot before the limit.
		{name: "pool stops at its share", load: hostLoad{Sandboxes: 9, Pooled: 2, AvailableMB: 8000}, user: admission{OK: true}, poolOK: false},
		{name: "pool share one below", load: hostLoad{Sandboxes: 8, Pooled: 2, AvailableMB: 8000}, user: admission{OK: true}, poolOK: true},
		// Full with pooled sandboxes: the user is admitted, the pool yields.
		{name: "full host, pool yields one", load: hostLoad{Sandboxes: 10, Pooled: 2, AvailableMB: 8000}, user: admission{OK: true, Yield: 1}},
		{name: "over by pooled, yields two", load: hostLoad{Sandboxes: 11, Pooled: 3, AvailableMB: 8000}, user: admission{OK: true, Yield: 2}},
		{name: "full of users", load: hostLoad{Sandboxes: 10, Pooled: 0, AvailableMB: 8000}, user: admission{}, userWhy: true},
		// A sandbox the pool is making does not take a user's slot.
		{name: "pool filling on a full host", load: hostLoad{Sandboxes: 10, Pooled: 0, Filling: 1, AvailableMB: 8000}, user: admission{OK: true, Yield: 1}},
		{name: "full of users and pool", load: hostLoad{Sandboxes: 12, Pooled: 2, AvailableMB: 8000}, user: admission{}, userWhy: true},
		// Memory: users stop at the reserve (the pool gives its idle
		// sandboxes back), the pool at 1.5 × the reserve.
		{name: "below the reserve", load: hostLoad{Sandboxes: 3, Pooled: 2, AvailableMB: 999}, user: admission{Yield: 2}, userWhy: true},
		{name: "at the reserve", load: hostLoad{Sandboxes: 3, Pooled: 2, AvailableMB: 1000}, user: admission{OK: true}},
		{name: "below the pool's reserve", load: hostLoad{Sandboxes: 3, AvailableMB: 1499}, user: admission{OK: true}},
		{name: "at the pool's reserve", load: hostLoad{Sandboxes: 3, AvailableMB: 1500}, user: admission{OK: true}, poolOK: true},
		{name: "memory unknown", load: hostLoad{Sandboxes: 3, AvailableMB: -1}, user: admission{OK: true}, poolOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := lim.admitUser(tc.load)
			if u.OK != tc.user.OK || u.Yield != tc.user.Yield {
				t.Errorf("admitUser(%+v) = %+v, want OK %v yield %d", tc.load, u, tc.user.OK, tc.user.Yield)
			}
			if !u.OK && u.Why == "" {
				t.Errorf("refusal without a reason")
			}
			if p := lim.admitPool(tc.load); p.OK != tc.poolOK {
				t.Errorf("admitPool(%+v) = %+v, want OK %v", tc.load, p, tc.poolOK)
			}
		})
	}
	t.Run("memory check off", func(t *testing.T) {
		off := HostLimits{MaxSandboxes: 10, MinFreeMemoryMB: -1}
		if a := off.admitUser(hostLoad{AvailableMB: 1}); !a.OK {
			t.Errorf("admitUser with the memory check off: %+v", a)
		}
		if a := off.admitPool(hostLoad{AvailableMB: 1}); !a.OK {
			t.Errorf("admitPool with the memory check off: %+v", a)
		}
	})
	t.Run("a host of one", func(t *testing.T) {
		one := HostLimits{MaxSandboxes: 1, MinFreeMemoryMB: -1}
		if a := one.admitPool(hostLoad{}); a.OK {
			t.Errorf("the pool took the only slot: %+v", a)
		}
		if a := one.admitUser(hostLoad{}); !a.OK {
			t.Errorf("user refused on an empty host of one: %+v", a)
		}
	})
}

func TestKeepFilled(t *testing.T) {
	lim := HostLimits{MaxSandboxes: 10}
	if !lim.keepFilled(hostLoad{Sandboxes: 10, Filling: 1}) {
		t.Error("a made pool sandbox within the limit is dropped")
	}
	if lim.keepFilled(hostLoad{Sandboxes: 11, Filling: 1}) {
		t.Error("a made pool sandbox over the limit is kept")
	}
}

func TestHostLimitsResolve(t *testing.T) {
	for _, tc := range []struct {
		in      HostLimits
		totalMB int64
		want    HostLimits
	}{
		{HostLimits{}, 24 << 10, HostLimits{MaxSandboxes: 768, MinFreeMemoryMB: 1228}},
		{HostLimits{}, 1024, HostLimits{MaxSandboxes: 32, MinFreeMemoryMB: 256}},
		{HostLimits{}, 0, HostLimits{MaxSandboxes: 8, MinFreeMemoryMB: 256}}, // meminfo unreadable
		{HostLimits{MaxSandboxes: 5, MinFreeMemoryMB: -1}, 24 << 10, HostLimits{MaxSandboxes: 5, MinFreeMemoryMB: -1}},
	} {
		if got := tc.in.Resolve(tc.totalMB); got != tc.want {
			t.Errorf("%+v.Resolve(%d) = %+v, want %+v", tc.in, tc.totalMB, got, tc.want)
		}
	}
	for max, want := range map[int]int{1: 1, 4: 1, 10: 1, 11: 2, 768: 77} {
		if got := PoolHeadroom(max); got != want {
			t.Errorf("PoolHeadroom(%d) = %d, want %d", max, got, want)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	total, avail, err := parseMeminfo([]byte("MemTotal:       24683652 kB\nMemFree:        19530120 kB\nMemAvailable:   23510716 kB\n"))
	if err != nil || total != 24105 || avail != 22959 {
		t.Fatalf("parseMeminfo = %d %d %v, want 24105 22959", total, avail, err)
	}
	if _, _, err := parseMeminfo([]byte("MemTotal: 1 kB\n")); err == nil {
		t.Fatal("parseMeminfo without MemAvailable: no error")
	}
}
