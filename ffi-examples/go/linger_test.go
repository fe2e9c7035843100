package distlock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// lockUnlock takes key through c and lets it go at once.
func lockUnlock(t *testing.T, c *Client, key string) {
	t.Helper()
	l, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// exists says, through conn, whether the Redis key of the lock key is
// there.
func exists(t *testing.T, conn *redistest.Conn, key string) bool {
	t.Helper()
	return do(t, conn, "EXISTS", "distlock:"+key) == int64(1)
}

// lingerOn has c linger on key, within 5s: c's first release of a name
// goes to the server and subscribes to the announcements of clients that
// want it, and once c hears them a release leaves the lock held on the
// server. Cycles until one does; the last acquisition came from the
// server, so Stats.Lingered is as it was.
func lingerOn(t *testing.T, c *Client, key string) {
	t.Helper()
	conn := rawConn(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		lockUnlock(t, c, key)
		if exists(t, conn, key) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("released with linger on, %s never stayed held on the server", key)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockWithin has a Client without linger take key, waiting at most 5s,
// and fails unless it got it within limit.
func lockWithin(t *testing.T, key string, limit time.Duration) {
	t.Helper()
	other := openClient(t)
	start := time.Now()
	l, err := other.Lock(context.Background(), key, WithWaitTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("the other client: %v", err)
	}
	if waited := time.Since(start); waited > limit {
		t.Errorf("the other client waited %v for the lingering lock; want at most %v", waited, limit)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// A lock released with no goroutine waiting stays held on the server, and
// the Client's next Lock of it is granted from it; another client gets it
// at once.
func TestLingerGrantsTheNextLockLocally(t *testing.T) {
	c := openClient(t, WithLinger(time.Second))
	key := testKey(t)
	lingerOn(t, c, key)
	before := mustStats(t, c)
	if before.Lingered != 0 || before.Acquired < 2 {
		t.Fatalf("before any lingering grant: %+v", before)
	}
	lockUnlock(t, c, key)
	if s := mustStats(t, c); s.Lingered != 1 || s.Acquired != before.Acquired+1 {
		t.Fatalf("after a cycle while lingering: %+v; want Lingered 1 of Acquired %d", s, before.Acquired+1)
	}
	lockWithin(t, key, 2*time.Second)
	if s := mustStats(t, c); s.Lingered != 1 || s.Lost != 0 {
		t.Errorf("after the other client's turn: %+v", s)
	}
}

// With a stay far longer than the wait allowed, only the waiter's
// announcement can free the lock in time.
func TestLingerGivesTheLockUpWhenAnotherClientWantsIt(t *testing.T) {
	c := openClient(t, WithLinger(time.Minute))
	key := testKey(t)
	lingerOn(t, c, key)
	lockWithin(t, key, 2*time.Second)
	if s := mustStats(t, c); s.Lingered != 0 {
		t.Errorf("nothing was granted from the stay: %+v", s)
	}
}

func TestLingerEndsWithTheClient(t *testing.T) {
	c, err := Open(srv.URL, WithLinger(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	lingerOn(t, c, key)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(t, rawConn(t), key) {
		t.Error("Close left the lingering lock on the server")
	}
}

func TestLingerSettingsAreChecked(t *testing.T) {
	const memcache = "memcache://127.0.0.1:1" // refused before connecting
	cases := []struct {
		name string
		opts []Option
		want string
	}{
		{"memcached", []Option{WithURL(memcache), WithLinger(time.Second)}, "linger needs Redis"},
		{"negative", []Option{WithURL(srv.URL), WithLinger(-time.Millisecond)}, "negative linger"},
		{"over an hour", []Option{WithURL(srv.URL), WithLinger(time.Hour + time.Millisecond)},
			"linger must be between 1 ms and 1 hour"},
		{"fast path off", []Option{WithURL(srv.URL), WithFastPath(false), WithLinger(time.Second)},
			"linger needs the local fast path"},
		{"max hold as long", []Option{WithURL(srv.URL), WithMaxHold(time.Second), WithLinger(time.Second)},
			"must be shorter than max_hold"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckConfig(tc.opts...)
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckConfig: %v; want ErrInvalidArgument saying %q", err, tc.want)
			}
			c, err := OpenConfig(tc.opts...)
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenConfig: %v; want ErrInvalidArgument saying %q", err, tc.want)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	// 0 is off, accepted with any servers; an hour is the most.
	for _, opts := range [][]Option{
		{WithURL(memcache), WithLinger(0)},
		{WithURL(srv.URL), WithLinger(time.Hour)},
		{WithURL(srv.URL), WithMaxHold(time.Minute), WithLinger(time.Second)},
	} {
		if err := CheckConfig(opts...); err != nil {
			t.Errorf("CheckConfig: %v; want nil", err)
		}
	}
}
