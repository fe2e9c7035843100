package distlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// srv is the redis-server every test talks to, started by TestMain.
var srv *redistest.Server

func TestMain(m *testing.M) {
	s, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start redis-server:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	stopTLSServers()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping redis-server:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func openClient(t testing.TB, opts ...Option) *Client {
	t.Helper()
	c, err := Open(srv.URL, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", srv.URL, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var keySeq atomic.Int64

// testKey is a key no other test uses.
func testKey(t testing.TB) string {
	return fmt.Sprintf("gotest:%s:%d", strings.ReplaceAll(t.Name(), "/", "."), keySeq.Add(1))
}

func rawConn(t testing.TB) *redistest.Conn {
	t.Helper()
	c, err := redistest.Dial(srv.Addr)
	if err != nil {
		t.Fatalf("dial %s: %v", srv.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func do(t testing.TB, c *redistest.Conn, args ...string) any {
	t.Helper()
	reply, err := c.Do(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return reply
}

// lockToken reads a lock key and returns the token in it: distlock writes
// the token, a newline and the holder's description.
func lockToken(t testing.TB, c *redistest.Conn, key string) any {
	t.Helper()
	return tokenPart(do(t, c, "GET", key))
}

// tokenPart is a lock value's token (the value itself if it is no string).
func tokenPart(v any) any {
	if s, ok := v.(string); ok {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			return s[:i]
		}
	}
	return v
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// monitor starts MONITOR on a new raw connection.
func monitor(t *testing.T) *redistest.Conn {
	t.Helper()
	mon := rawConn(t)
	if reply := do(t, mon, "MONITOR"); reply != "OK" {
		t.Fatalf("MONITOR answered %v", reply)
	}
	return mon
}

// awaitCommandOn reads MONITOR lines until one names the Redis key rkey,
// i.e. until some client has sent a command about it. Bounded by time and
// by number of lines.
func awaitCommandOn(t *testing.T, mon *redistest.Conn, rkey string) string {
	t.Helper()
	quoted := `"` + rkey + `"`
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 100000; i++ {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		reply, err := mon.Read(left)
		if err != nil {
			t.Fatalf("reading MONITOR: %v", err)
		}
		if line, ok := reply.(string); ok && strings.Contains(line, quoted) {
			return line
		}
	}
	t.Fatalf("no command on %s seen by MONITOR", rkey)
	return ""
}

func TestVersion(t *testing.T) {
	v := Version()
	if v == "" || !strings.Contains(v, ".") {
		t.Fatalf("Version() = %q", v)
	}
}

func TestLockUnlock(t *testing.T) {
	c := openClient(t)
	raw := rawConn(t)
	key := testKey(t)

	l, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if !l.Held() {
		t.Fatal("Held() = false right after Lock")
	}
	if l.Key() != key {
		t.Fatalf("Key() = %q, want %q", l.Key(), key)
	}
	if len(l.Token()) != 36 {
		t.Fatalf("Token() = %q, want 36 characters", l.Token())
	}
	if got := lockToken(t, raw, "distlock:"+key); got != l.Token() {
		t.Fatalf("GET distlock:%s = %v, want the lock's token %q", key, got, l.Token())
	}
	if l.Fence() == 0 {
		t.Fatal("Fence() = 0")
	}
	if r := l.Remaining(); r <= 0 || r > 30*time.Second {
		t.Fatalf("Remaining() = %v, want within the default 30s lease", r)
	}
	if err := l.Extend(); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	lost := l.Lost()
	if isClosed(lost) {
		t.Fatal("Lost() closed while held")
	}

	if err := l.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if l.Held() {
		t.Fatal("Held() = true after Unlock")
	}
	if got := do(t, raw, "EXISTS", "distlock:"+key); got != int64(0) {
		t.Fatalf("EXISTS after Unlock = %v, want 0", got)
	}
	if !isClosed(lost) {
		t.Fatal("Lost() still open after Unlock")
	}

	l2, err := c.TryLock(key)
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if l2.Fence() <= l.Fence() {
		t.Fatalf("second fence %d not above first %d", l2.Fence(), l.Fence())
	}
	if err := l2.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

func TestPrefix(t *testing.T) {
	c := openClient(t, WithPrefix("gotestprefix"), WithDefaultTTL(5*time.Second), WithPoolSize(4),
		WithConnectTimeout(time.Second), WithCommandTimeout(time.Second))
	raw := rawConn(t)
	key := testKey(t)
	l, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer l.Unlock()
	if got := lockToken(t, raw, "gotestprefix:"+key); got != l.Token() {
		t.Fatalf("GET gotestprefix:%s = %v, want %q", key, got, l.Token())
	}
	if got := do(t, raw, "EXISTS", "distlock:"+key); got != int64(0) {
		t.Fatalf("lock also stored under the default prefix: EXISTS = %v", got)
	}
	if pttl, ok := do(t, raw, "PTTL", "gotestprefix:"+key).(int64); !ok || pttl <= 0 || pttl > 5000 {
		t.Fatalf("PTTL = %v, want within the 5s default TTL", pttl)
	}
}

func TestTryLockConflict(t *testing.T) {
	c1 := openClient(t)
	c2 := openClient(t)
	key := testKey(t)

	held, err := c1.TryLock(key)
	if err != nil {
		t.Fatalf("TryLock on a free key: %v", err)
	}
	for name, c := range map[string]*Client{"other client": c2, "same client": c1} {
		l, err := c.TryLock(key)
		if !errors.Is(err, ErrNotAcquired) {
			t.Fatalf("TryLock from %s while held: lock %v, err %v; want ErrNotAcquired", name, l, err)
		}
		if l != nil {
			t.Fatalf("TryLock from %s returned a Lock with an error", name)
		}
	}
	// Lock with a zero wait timeout is a try as well.
	if _, err := c2.Lock(context.Background(), key, WithWaitTimeout(0)); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("Lock(WithWaitTimeout(0)) while held: %v; want ErrNotAcquired", err)
	}
	if err := held.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	l, err := c2.TryLock(key)
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	l.Unlock()
}

func TestLockTimeout(t *testing.T) {
	c1 := openClient(t)
	c2 := openClient(t)
	raw := rawConn(t)
	key := testKey(t)
	held, err := c1.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer held.Unlock()

	const wait = 300 * time.Millisecond
	start := time.Now()
	l, err := c2.Lock(context.Background(), key, WithWaitTimeout(wait))
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) || l != nil {
		t.Fatalf("Lock with timeout while held: lock %v, err %v; want ErrTimeout", l, err)
	}
	if elapsed < wait-20*time.Millisecond || elapsed > wait+3*time.Second {
		t.Fatalf("timed out after %v, want about %v", elapsed, wait)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start = time.Now()
	l, err = c2.Lock(ctx, key)
	elapsed = time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) || l != nil {
		t.Fatalf("Lock with a context deadline while held: lock %v, err %v; want DeadlineExceeded and ErrTimeout", l, err)
	}
	if elapsed < wait-20*time.Millisecond || elapsed > wait+3*time.Second {
		t.Fatalf("deadline hit after %v, want about %v", elapsed, wait)
	}
	// An expired context fails at once, without a wait.
	if _, err := c2.Lock(ctx, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock with an expired context: %v", err)
	}
	if got := lockToken(t, raw, "distlock:"+key); got != held.Token() {
		t.Fatalf("the holder lost the key: GET = %v", got)
	}
}

func TestContextCancelInterruptsNativeWait(t *testing.T) {
	holderClient := openClient(t)
	waiterClient := openClient(t)
	raw := rawConn(t)
	key := testKey(t)
	held, err := holderClient.Lock(context.Background(), key, WithTTL(60*time.Second))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer held.Unlock()

	mon := monitor(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		l   *Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := waiterClient.Lock(ctx, key)
		done <- result{l, err}
	}()

	// The waiter's first attempt reaching the server shows that it is
	// inside the native acquire call.
	awaitCommandOn(t, mon, "distlock:"+key)
	select {
	case r := <-done:
		t.Fatalf("the waiter returned (%v, %v) while the lock was held", r.l, r.err)
	default:
	}
	cancel()
	cancelled := time.Now()
	select {
	case r := <-done:
		if r.l != nil {
			t.Fatalf("the waiter acquired a held lock: %v", r.l)
		}
		if !errors.Is(r.err, context.Canceled) || !errors.Is(r.err, ErrCancelled) {
			t.Fatalf("the waiter returned %v; want context.Canceled and ErrCancelled", r.err)
		}
		if d := time.Since(cancelled); d > time.Second {
			t.Fatalf("the waiter took %v to return after cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not end the native wait within 10s")
	}
	if got := lockToken(t, raw, "distlock:"+key); got != held.Token() {
		t.Fatalf("the holder lost the key: GET = %v", got)
	}
	if err := held.Unlock(); err != nil {
		t.Fatalf("holder Unlock: %v", err)
	}
}

func TestCloseInterruptsWaiters(t *testing.T) {
	holderClient := openClient(t)
	waiterClient, err := Open(srv.URL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	key := testKey(t)
	held, err := holderClient.Lock(context.Background(), key, WithTTL(60*time.Second))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer held.Unlock()

	mon := monitor(t)
	done := make(chan error, 1)
	go func() {
		l, err := waiterClient.Lock(context.Background(), key)
		if l != nil {
			l.Unlock()
		}
		done <- err
	}()
	awaitCommandOn(t, mon, "distlock:"+key)
	if err := waiterClient.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter returned %v after Close; want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the waiter's native wait within 10s")
	}
	if _, err := waiterClient.TryLock(key); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryLock after Close: %v; want ErrClosed", err)
	}
	if err := waiterClient.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v; want ErrClosed", err)
	}
	// Locks outlive the Client they came from.
	c := openClient(t)
	other := testKey(t)
	l, err := c.Lock(context.Background(), other)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !l.Held() {
		t.Fatal("Lock not held after its Client closed")
	}
	if err := l.Unlock(); err != nil {
		t.Fatalf("Unlock after Close: %v", err)
	}
}

func TestFenceAskedForAfterTheLockWasLostIsRefused(t *testing.T) {
	a, b := openClient(t), openClient(t)
	key := testKey(t)
	// The first lock of a key comes without its fence (given when read).
	stale, err := a.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if n := do(t, rawConn(t), "DEL", "distlock:"+key); n != int64(1) {
		t.Fatalf("DEL = %v, want 1", n)
	}
	newer, err := b.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Unlock()
	fence := newer.Fence()
	if fence == 0 {
		t.Fatal("the new holder has no fence")
	}
	if f, err := stale.TryFence(); !errors.Is(err, ErrLost) || f != 0 {
		t.Fatalf("TryFence of the lost lock = %d, %v; want 0 and ErrLost", f, err)
	}
	if stale.Fence() != 0 || stale.Held() {
		t.Fatal("the lost lock has a fence, or says it is held")
	}
	if newer.Fence() != fence {
		t.Fatalf("the new holder's fence changed: %d -> %d", fence, newer.Fence())
	}
	if err := stale.Unlock(); !errors.Is(err, ErrLost) {
		t.Fatalf("Unlock of the lost lock = %v, want ErrLost", err)
	}
}

func TestFenceStrictlyIncreasing(t *testing.T) {
	clients := []*Client{openClient(t), openClient(t)}
	key := testKey(t)
	var last uint64
	for i := 0; i < 30; i++ {
		l, err := clients[i%2].Lock(context.Background(), key)
		if err != nil {
			t.Fatalf("Lock #%d: %v", i, err)
		}
		f := l.Fence()
		if f <= last {
			t.Fatalf("acquisition #%d: fence %d not above the previous %d", i, f, last)
		}
		last = f
		if err := l.Unlock(); err != nil {
			t.Fatalf("Unlock #%d: %v", i, err)
		}
		if l.Fence() != f {
			t.Fatalf("Fence changed after Unlock: %d -> %d", f, l.Fence())
		}
	}
}

func TestLostAfterExternalDelete(t *testing.T) {
	c := openClient(t)
	raw := rawConn(t)
	key := testKey(t)
	const ttl = 300 * time.Millisecond
	l, err := c.Lock(context.Background(), key, WithTTL(ttl))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	lost := l.Lost()
	if l.Lost() != lost {
		t.Fatal("Lost() returned different channels")
	}
	// Renewal keeps the lock for well over its TTL.
	select {
	case <-lost:
		t.Fatal("Lost() closed while the lock was held and renewed")
	case <-time.After(3 * ttl):
	}
	if got := lockToken(t, raw, "distlock:"+key); got != l.Token() {
		t.Fatalf("GET = %v, want the token %q (renewal failed?)", got, l.Token())
	}

	if n := do(t, raw, "DEL", "distlock:"+key); n != int64(1) {
		t.Fatalf("DEL = %v, want 1", n)
	}
	deleted := time.Now()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("Lost() not closed within 10s of DEL")
	}
	t.Logf("loss noticed %v after DEL (TTL %v)", time.Since(deleted).Round(time.Millisecond), ttl)
	if l.Held() {
		t.Fatal("Held() = true after the loss")
	}
	if err := l.Extend(); !errors.Is(err, ErrLost) {
		t.Fatalf("Extend after the loss: %v; want ErrLost", err)
	}
	if err := l.Unlock(); !errors.Is(err, ErrLost) {
		t.Fatalf("Unlock after the loss: %v; want ErrLost", err)
	}
}

func TestLostWatcherStopsOnUnlock(t *testing.T) {
	c := openClient(t)
	l, err := c.Lock(context.Background(), testKey(t))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	lost := l.Lost()
	if l.g.watchDone == nil || isClosed(l.g.watchDone) {
		t.Fatal("Lost() did not start a running watcher")
	}
	start := time.Now()
	if err := l.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if d := time.Since(start); d > lostWaitSlice {
		// Releasing wakes the watcher; it must not hold Unlock for a slice.
		t.Errorf("Unlock with a watcher took %v", d)
	}
	if !isClosed(lost) {
		t.Fatal("Lost() open after Unlock")
	}
	if !isClosed(l.g.watchDone) {
		t.Fatal("the watcher goroutine still runs after Unlock returned")
	}
	if !isClosed(l.Lost()) {
		t.Fatal("Lost() after Unlock returned an open channel")
	}
}

func TestInvalidArguments(t *testing.T) {
	c := openClient(t)
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
	}{
		{"Lock empty key", func() error { _, err := c.Lock(ctx, ""); return err }},
		{"TryLock empty key", func() error { _, err := c.TryLock(""); return err }},
		{"key with NUL", func() error { _, err := c.TryLock("a\x00b"); return err }},
		{"key too long", func() error { _, err := c.TryLock(strings.Repeat("k", 2000)); return err }},
		{"negative TTL", func() error { _, err := c.TryLock("k", WithTTL(-time.Second)); return err }},
		{"TTL below 10ms", func() error { _, err := c.TryLock("k", WithTTL(time.Millisecond)); return err }},
		{"nil context", func() error { _, err := c.Lock(nil, "k"); return err }},
		{"bad URL", func() error { _, err := Open("not a url"); return err }},
		{"wrong scheme", func() error { _, err := Open("http://127.0.0.1:1/"); return err }},
		{"URL with NUL", func() error { _, err := Open(srv.URL + "\x00"); return err }},
		{"prefix with braces", func() error { _, err := Open(srv.URL, WithPrefix("a{b}")); return err }},
		{"negative pool size", func() error { _, err := Open(srv.URL, WithPoolSize(-1)); return err }},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v; want ErrInvalidArgument", tc.name, err)
			continue
		}
		// The message adds what went wrong to the sentinel's text.
		if len(err.Error()) <= len(ErrInvalidArgument.Error())+2 {
			t.Errorf("%s: message %q says no more than the sentinel", tc.name, err)
		}
	}
	// The native library's own message (distlock_last_error) comes through.
	_, err := c.TryLock("")
	if msg := err.Error(); !strings.Contains(msg, `trylock ""`) || strings.HasSuffix(msg, `trylock ""`) {
		t.Errorf("empty key message %q lacks the operation or the native message", msg)
	}
}

func TestUnreachableServer(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := Open(fmt.Sprintf("redis://127.0.0.1:%d", port), WithConnectTimeout(500*time.Millisecond))
	if !errors.Is(err, ErrConnection) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Open on a closed port: %v; want ErrConnection", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v to fail", d)
	}
}

func TestDoubleUnlock(t *testing.T) {
	c := openClient(t)
	key := testKey(t)
	l, err := c.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	fence, token := l.Fence(), l.Token()
	if err := l.Unlock(); err != nil {
		t.Fatalf("first Unlock: %v", err)
	}
	if err := l.Unlock(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("second Unlock: %v; want ErrInvalidArgument", err)
	}
	if err := l.Extend(); !errors.Is(err, ErrLost) {
		t.Fatalf("Extend after Unlock: %v; want ErrLost", err)
	}
	if l.Held() || l.Remaining() != 0 {
		t.Fatalf("after Unlock: Held %v, Remaining %v", l.Held(), l.Remaining())
	}
	if l.Fence() != fence || l.Token() != token {
		t.Fatal("Fence or Token changed after Unlock")
	}
}

func TestConcurrentUnlock(t *testing.T) {
	c := openClient(t)
	l, err := c.Lock(context.Background(), testKey(t))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	l.Lost()
	const n = 8
	errs := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		go func() {
			start.Wait()
			errs <- l.Unlock()
		}()
	}
	start.Done()
	ok := 0
	for i := 0; i < n; i++ {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrInvalidArgument):
			t.Errorf("concurrent Unlock: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent Unlocks succeeded, want exactly 1", ok, n)
	}
}

func TestCleanupReleasesDroppedLock(t *testing.T) {
	c := openClient(t)
	raw := rawConn(t)
	key := testKey(t)
	freed := make(chan struct{}, 16)
	testHookCleanup = func() { freed <- struct{}{} }
	defer func() { testHookCleanup = nil }()

	func() {
		l, err := c.Lock(context.Background(), key)
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		_ = l.Lost() // a running watcher must not keep the Lock alive
	}()
	released := false
	for i := 0; i < 50 && !released; i++ {
		runtime.GC()
		select {
		case <-freed:
			released = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !released {
		t.Fatal("the cleanup of a dropped Lock did not run after 50 collections")
	}
	if got := do(t, raw, "EXISTS", "distlock:"+key); got != int64(0) {
		t.Fatalf("EXISTS after the cleanup = %v; the dropped lock was not released", got)
	}
}

func TestMutualExclusion(t *testing.T) {
	const goroutines, clientCount = 100, 4
	clients := make([]*Client, clientCount)
	for i := range clients {
		clients[i] = openClient(t)
	}
	key := testKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		counter int      // deliberately unsynchronised but for the lock
		fences  []uint64 // in the order the critical sections ran
		inside  atomic.Int32
		overlap atomic.Int32
		wg      sync.WaitGroup
		errs    = make(chan error, goroutines)
		gate    = make(chan struct{})
	)
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(c *Client) {
			defer wg.Done()
			<-gate
			l, err := c.Lock(ctx, key)
			if err != nil {
				errs <- err
				return
			}
			if inside.Add(1) != 1 {
				overlap.Add(1)
			}
			n := counter
			runtime.Gosched() // invite another goroutine in, if the lock lets it
			counter = n + 1
			fences = append(fences, l.Fence())
			inside.Add(-1)
			if err := l.Unlock(); err != nil {
				errs <- err
			}
		}(clients[i%clientCount])
	}
	start := time.Now()
	close(gate)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(90 * time.Second):
		t.Fatal("the goroutines did not finish within 90s")
	}
	t.Logf("%d goroutines on %d clients: %v", goroutines, clientCount, time.Since(start).Round(time.Millisecond))
	close(errs)
	for err := range errs {
		t.Errorf("lock cycle: %v", err)
	}
	if overlap.Load() != 0 {
		t.Fatalf("%d critical sections overlapped", overlap.Load())
	}
	if counter != goroutines {
		t.Fatalf("counter = %d, want %d", counter, goroutines)
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence #%d = %d not above #%d = %d", i, fences[i], i-1, fences[i-1])
		}
	}
}

func TestZeroClient(t *testing.T) {
	var c Client
	if _, err := c.TryLock("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryLock on a zero Client: %v; want ErrClosed", err)
	}
	if _, err := c.Lock(context.Background(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lock on a zero Client: %v; want ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close on a zero Client: %v; want ErrClosed", err)
	}
}
