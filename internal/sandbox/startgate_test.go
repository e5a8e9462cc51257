package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStartGate: at most size commands are young at once; the next waits
// until one is released or its hold has passed, waiters are served in
// order of arrival, a release may come twice, and a waiter whose context
// ends gives up.
func TestStartGate(t *testing.T) {
	g := &startGate{size: 2, hold: time.Hour}
	ctx := context.Background()
	r1, err := g.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := g.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third acquire with both slots held: %v, want the context's deadline", err)
	}
	// Waiters in order: each takes its turn as one slot is freed.
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			r, err := g.acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			defer r()
		}()
		time.Sleep(20 * time.Millisecond) // arrive in order
	}
	r1()
	r1() // a second release frees nothing more
	for want := range 3 {
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("waiter %d served as %d: not in order of arrival", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d not served after a release", want)
		}
	}
	r2()

	// A command that runs on frees its slot after hold.
	g = &startGate{size: 1, hold: 30 * time.Millisecond}
	if _, err := g.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := g.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r()
	if d := time.Since(start); d < 25*time.Millisecond || d > 5*time.Second {
		t.Fatalf("second acquire waited %v for a slot held past hold (30 ms)", d)
	}
}
