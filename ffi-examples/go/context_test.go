package distlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLockContextEndsWithTheLock(t *testing.T) {
	c := openClient(t)
	raw := rawConn(t)

	// Lost: the key is deleted behind the holder's back.
	key := testKey(t)
	l, err := c.Lock(context.Background(), key, WithTTL(300*time.Millisecond))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	work, stop := l.Context(context.Background())
	defer stop()
	select {
	case <-work.Done():
		t.Fatal("the context ended while the lock was held")
	case <-time.After(200 * time.Millisecond):
	}
	do(t, raw, "DEL", "distlock:"+key)
	select {
	case <-work.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context outlived the lock by 10 s")
	}
	if cause := context.Cause(work); !errors.Is(cause, ErrLost) {
		t.Fatalf("cause %v, want ErrLost", cause)
	}
	_ = l.Unlock()

	// Unlocked: the cause says so.
	l, err = c.Lock(context.Background(), testKey(t))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	work, stop = l.Context(context.Background())
	defer stop()
	if err := l.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	<-work.Done()
	if cause := context.Cause(work); !errors.Is(cause, ErrUnlocked) {
		t.Fatalf("cause %v, want ErrUnlocked", cause)
	}

	// The parent ends first: its cause, and the lock is still held.
	l, err = c.Lock(context.Background(), testKey(t))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer l.Unlock()
	parent, cancelParent := context.WithCancelCause(context.Background())
	work, stop = l.Context(parent)
	defer stop()
	boom := errors.New("shutting down")
	cancelParent(boom)
	<-work.Done()
	if cause := context.Cause(work); !errors.Is(cause, boom) {
		t.Fatalf("cause %v, want the parent's", cause)
	}
	if !l.Held() {
		t.Fatal("ending the context released the lock")
	}
}
