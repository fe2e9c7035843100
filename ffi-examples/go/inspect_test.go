package distlock

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInspect(t *testing.T) {
	c := openClient(t)
	key := testKey(t)
	// Never used: free, no fence; nothing is written.
	info, err := c.Inspect(key)
	if err != nil {
		t.Fatal(err)
	}
	if info != (LockInfo{}) {
		t.Fatalf("unused key: %+v; want the zero LockInfo", info)
	}
	if got := do(t, rawConn(t), "EXISTS", "distlock:"+key); got != int64(0) {
		t.Fatalf("Inspect wrote the key: EXISTS = %v", got)
	}
	// Held: the Lock's token, a lease within its TTL, its fence.
	l, err := c.TryLock(key, WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Its fence is given when first read, which leaves the counter
	// Inspect shows.
	if l.Fence() == 0 {
		t.Fatal("no fence")
	}
	info, err = c.Inspect(key)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Token != l.Token() || !info.HasRemaining || !info.HasFence {
		t.Fatalf("held: %+v; want held with token %s", info, l.Token())
	}
	if info.Remaining <= 0 || info.Remaining > 5*time.Second {
		t.Errorf("Remaining = %v; want within the 5s TTL", info.Remaining)
	}
	if info.Fence < l.Fence() {
		t.Errorf("Fence = %d; below the Lock's %d", info.Fence, l.Fence())
	}
	highest := info.Fence
	// Released: free again; the fence stays, and the next Lock's is above.
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	info, err = c.Inspect(key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Held || info.Token != "" || info.HasRemaining || !info.HasFence || info.Fence != highest {
		t.Fatalf("after Unlock: %+v; want free, fence %d", info, highest)
	}
	next, err := c.TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Unlock()
	if next.Fence() <= highest {
		t.Errorf("next fence %d, not above %d", next.Fence(), highest)
	}

	// A key set by something else, longer than any token, without expiry.
	foreign := strings.Repeat("f", 300)
	fkey := testKey(t)
	raw := rawConn(t)
	if got := do(t, raw, "SET", "distlock:"+fkey, foreign); got != "OK" {
		t.Fatalf("SET: %v", got)
	}
	info, err = c.Inspect(fkey)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Token != foreign || info.HasRemaining || info.HasFence {
		t.Fatalf("foreign value: %+v", info)
	}
	if ok, err := c.ReleaseToken(fkey, foreign); err != nil || !ok {
		t.Fatalf("ReleaseToken of the foreign value: %v, %v", ok, err)
	}

	// Bad keys, as for Lock.
	for _, bad := range []string{"", "nul\x00inside", strings.Repeat("k", 1025)} {
		if _, err := c.Inspect(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Inspect(%.20q): %v; want ErrInvalidArgument", bad, err)
		}
	}
}

func TestReleaseToken(t *testing.T) {
	c := openClient(t)
	key := testKey(t)
	// A short TTL, so that the Lock's renewal (a third of it) comes soon.
	l, err := c.TryLock(key, WithTTL(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	lost := l.Lost()
	for _, wrong := range []string{"not-the-token", l.Token()[:len(l.Token())-1], l.Token() + "x"} {
		ok, err := c.ReleaseToken(key, wrong)
		if err != nil || ok {
			t.Fatalf("ReleaseToken(%q): %v, %v; want false, nil", wrong, ok, err)
		}
	}
	if !l.Held() || isClosed(lost) {
		t.Fatal("a wrong token freed the lock")
	}
	if _, err := c.ReleaseToken(key, ""); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "token is empty") {
		t.Errorf("empty token: %v", err)
	}
	if _, err := c.ReleaseToken(key, "a\x00b"); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("token with a NUL: %v", err)
	}
	// The right token frees it; the Lock finds out at its next renewal.
	ok, err := c.ReleaseToken(key, l.Token())
	if err != nil || !ok {
		t.Fatalf("ReleaseToken(right token): %v, %v", ok, err)
	}
	if got := do(t, rawConn(t), "EXISTS", "distlock:"+key); got != int64(0) {
		t.Fatalf("key still there: EXISTS = %v", got)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the Lock did not report the loss within 5s")
	}
	if l.Held() {
		t.Error("Held() after the forced release")
	}
	if err := l.Unlock(); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock after the forced release: %v; want ErrLost", err)
	}
	if ok, err := c.ReleaseToken(key, l.Token()); err != nil || ok {
		t.Errorf("second ReleaseToken: %v, %v; want false, nil", ok, err)
	}
}

func TestInspectAndReleaseTokenOnAClosedClient(t *testing.T) {
	c, err := Open(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Inspect("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Inspect after Close: %v; want ErrClosed", err)
	}
	if _, err := c.ReleaseToken("k", "t"); !errors.Is(err, ErrClosed) {
		t.Errorf("ReleaseToken after Close: %v; want ErrClosed", err)
	}
	var zero Client
	if _, err := zero.Inspect("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Inspect on a zero Client: %v; want ErrClosed", err)
	}
}
