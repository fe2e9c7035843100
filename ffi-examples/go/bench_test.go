package distlock

import (
	"context"
	"testing"
)

// BenchmarkLockUnlock is one uncontended Lock + Unlock cycle on one
// Client against the test server. `cmd/bench` prints the same figure as
// go_acquire_release_us.
func BenchmarkLockUnlock(b *testing.B) {
	c := openClient(b)
	key := testKey(b)
	ctx := context.Background()
	for b.Loop() {
		l, err := c.Lock(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTryLockUnlock is the same cycle through TryLock, which needs no
// cancel handle.
func BenchmarkTryLockUnlock(b *testing.B) {
	c := openClient(b)
	key := testKey(b)
	for b.Loop() {
		l, err := c.TryLock(key)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}
