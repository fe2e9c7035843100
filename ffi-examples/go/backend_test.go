package distlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// lockCycle runs one lock cycle on the server at url with two clients:
// the lock excludes the other client, Inspect shows the holder's token,
// and the next holder's fence is larger.
func lockCycle(t *testing.T, url, key string) {
	t.Helper()
	c, err := Open(url)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	defer c.Close()
	other, err := Open(url)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	defer other.Close()

	l, err := c.Lock(context.Background(), key, WithTTL(5*time.Second))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	first := l.Fence()
	if _, err := other.TryLock(key); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("TryLock while held: %v; want ErrNotAcquired", err)
	}
	info, err := c.Inspect(key)
	if err != nil || !info.Held || info.Token != l.Token() {
		t.Fatalf("Inspect while held: %+v, %v", info, err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	l, err = other.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock after the release: %v", err)
	}
	defer l.Unlock()
	if l.Fence() <= first {
		t.Fatalf("fence %d after %d: fences must go up", l.Fence(), first)
	}
}
