package server

import (
	"errors"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

func TestTicketsRedeem(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	acct := store.Account{ID: "a_1"}
	var ts tickets
	issue := func(purpose string, port int) string {
		s, exp, err := ts.issue(acct, "s_1", purpose, port, now)
		if err != nil || !exp.Equal(now.Add(ticketTTL)) {
			t.Fatalf("issue: %v %v", exp, err)
		}
		return s
	}
	for _, c := range []struct {
		name          string
		purpose       string
		port          int
		session       string
		redeemPurpose string
		redeemPort    int
		at            time.Duration
		ok            bool
	}{
		{"pty", "pty", 0, "s_1", "pty", 0, 0, true},
		{"forward", "forward", 80, "s_1", "forward", 80, ticketTTL - time.Second, true},
		{"expired", "pty", 0, "s_1", "pty", 0, ticketTTL, false},
		{"other session", "pty", 0, "s_2", "pty", 0, 0, false},
		{"other purpose", "forward", 80, "s_1", "pty", 0, 0, false},
		{"other port", "forward", 80, "s_1", "forward", 81, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			secret := issue(c.purpose, c.port)
			got, err := ts.redeem(secret, c.session, c.redeemPurpose, c.redeemPort, now.Add(c.at))
			if c.ok != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrUnauthenticated)) {
				t.Fatalf("redeem: %v, want ok=%v", err, c.ok)
			}
			if c.ok && got.ID != acct.ID {
				t.Errorf("account %q", got.ID)
			}
			// Whatever the outcome, the ticket is spent.
			if _, err := ts.redeem(secret, "s_1", c.purpose, c.port, now); err == nil {
				t.Error("a ticket served twice")
			}
		})
	}
}
