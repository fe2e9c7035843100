package distlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// statsUntil polls c.Stats until done holds or limit passes, and returns
// the last snapshot.
func statsUntil(t *testing.T, c *Client, limit time.Duration, done func(Stats) bool) Stats {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		s, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if done(s) || time.Now().After(end) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustStats(t *testing.T, c *Client) Stats {
	t.Helper()
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The counters follow a scripted workload, each moving by exactly what the
// script did.
func TestStatsFollowAScriptedWorkload(t *testing.T) {
	c := openClient(t, WithDefaultTTL(300*time.Millisecond))
	if s := mustStats(t, c); s != (Stats{}) {
		t.Fatalf("a new client: %+v; want zero Stats", s)
	}

	// Two uncontended cycles.
	key := testKey(t)
	for range 2 {
		l, err := c.Lock(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	s := mustStats(t, c)
	if s.Acquired != 2 || s.Contended != 0 {
		t.Fatalf("after two cycles: %+v", s)
	}
	if s.WaitP50 > s.WaitP99 || s.WaitP99 > s.WaitMax || s.WaitMax <= 0 {
		t.Errorf("wait spread out of order: %+v", s)
	}

	// Another client holds a lock: one timeout, one cancel through the
	// context while the native wait runs, and a TryLock (not counted).
	other := openClient(t)
	held := testKey(t)
	theirs, err := other.TryLock(held)
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Unlock()
	if _, err := c.Lock(context.Background(), held, WithWaitTimeout(50*time.Millisecond)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Lock with a 50ms wait: %v; want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testHookAcquiring = func(k string) {
		if k == held {
			cancel()
		}
	}
	t.Cleanup(func() { testHookAcquiring = nil })
	if _, err := c.Lock(ctx, held); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled context: %v; want context.Canceled", err)
	}
	testHookAcquiring = nil
	if _, err := c.TryLock(held); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("TryLock of a held lock: %v", err)
	}
	s = mustStats(t, c)
	if s.TimedOut != 1 || s.Cancelled != 1 || s.Acquired != 2 {
		t.Fatalf("after a timeout and a cancel: %+v", s)
	}

	// A held lock is renewed (every 100ms for its 300ms lease) until its
	// key is deleted behind its back: one loss.
	l, err := c.TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	s = statsUntil(t, c, 5*time.Second, func(s Stats) bool { return s.Renewals >= 2 })
	if s.Renewals < 2 || s.RenewalFailures != 0 {
		t.Fatalf("renewals: %+v", s)
	}
	if got := do(t, rawConn(t), "DEL", "distlock:"+key); got != int64(1) {
		t.Fatalf("DEL: %v", got)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the loss was not noticed within 5s")
	}
	s = statsUntil(t, c, time.Second, func(s Stats) bool { return s.Lost >= 1 })
	if s.Lost != 1 {
		t.Fatalf("after the deletion: %+v", s)
	}
	if err := l.Unlock(); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock after the loss: %v; want ErrLost", err)
	}
	if s := mustStats(t, c); s.Lost != 1 || s.Acquired != 3 {
		t.Errorf("an Unlock after the loss is no second loss: %+v", s)
	}
}

func TestStatsOnAClosedClient(t *testing.T) {
	c, err := Open(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close: %v; want ErrClosed", err)
	}
	var zero Client
	if _, err := zero.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats on a zero Client: %v; want ErrClosed", err)
	}
}
