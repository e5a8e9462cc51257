package integration

import (
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
)

// TestAccountsList: the admin lists every account (API and CLI); anyone
// else gets 403.
func TestAccountsList(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	me, err := s.Client(key).Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	status, b := s.do(t, s.AdminKey, "GET", "/v1/accounts", "")
	var l api.AccountList
	decodeJSON(t, b, &l)
	found := false
	for _, a := range l.Accounts {
		found = found || (a.ID == me.ID && a.Name == me.Name && a.Tier == "free" && a.APIKey == "")
	}
	if status != 200 || !found {
		t.Errorf("GET /v1/accounts: %d %s, want %s listed without a key", status, b, me.ID)
	}
	status, b = s.do(t, key, "GET", "/v1/accounts", "")
	expectError(t, status, b, 403, "permission_denied")
	res := s.cli(t, s.AdminKey, nil, "accounts", "list")
	if res.Code != 0 || !strings.Contains(res.Stdout, me.Name) || !strings.Contains(res.Stdout, "TIER") {
		t.Errorf("chaser accounts list: %d %q %q", res.Code, res.Stdout, res.Stderr)
	}
}
