package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeyLocks runs many goroutines over a few keys (run it with -race):
// one holder per key at a time, cancelled waits give up without taking
// the lock, and the map is empty at the end.
func TestKeyLocks(t *testing.T) {
	var k keyLocks
	const keys, workers, rounds = 4, 64, 50
	var inside [keys]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				i := (w + r) % keys
				ctx := t.Context()
				var cancel context.CancelFunc = func() {}
				if r%5 == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Microsecond)
				}
				unlock, err := k.lock(ctx, fmt.Sprint("ws-", i))
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Error(err)
					}
					continue
				}
				if n := inside[i].Add(1); n != 1 {
					t.Errorf("key %d held by %d at once", i, n)
				}
				time.Sleep(10 * time.Microsecond)
				inside[i].Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if n := k.size(); n != 0 {
		t.Fatalf("%d keys left after every lock was released", n)
	}

	// A wait on a held key ends with its context.
	unlock, err := k.lock(t.Context(), "held")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "held"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a held lock: %v", err)
	}
	unlock()
	if n := k.size(); n != 0 {
		t.Fatalf("%d keys left", n)
	}
}

// TestEachBounded checks that each runs its calls concurrently, never
// more than parallel at once, and returns after all of them.
func TestEachBounded(t *testing.T) {
	items := make([]int, 5*parallel)
	var now, peak, done atomic.Int32
	each(items, func(int) {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		done.Add(1)
	})
	if int(done.Load()) != len(items) {
		t.Fatalf("each returned after %d of %d calls", done.Load(), len(items))
	}
	if p := peak.Load(); p > parallel || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..%d", p, parallel)
	}
}
