package distlock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// untilInt waits (at most five seconds, asking every 2 ms) until the
// integer reply of a Redis command is want: the state a waiter inside the
// native library leaves on the server.
func untilInt(t *testing.T, want int64, args ...string) {
	t.Helper()
	raw := rawConn(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := do(t, raw, args...).(int64); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v never answered %d", args, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// untilSubscribed waits (at most five seconds) until some client listens
// for the releases of key: a waiter is then inside the native wait.
func untilSubscribed(t *testing.T, key string) {
	t.Helper()
	raw := rawConn(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		reply, _ := do(t, raw, "PUBSUB", "NUMSUB", "distlock:"+key).([]any)
		if len(reply) == 2 {
			if n, _ := reply[1].(int64); n > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody subscribed to the releases of %s", key)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// wantInvalid fails unless err wraps ErrInvalidArgument and says says.
func wantInvalid(t *testing.T, err error, says string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), says) {
		t.Fatalf("got %v; want ErrInvalidArgument saying %q", err, says)
	}
}

func TestRWLockReadersShareAndAWriterExcludesThem(t *testing.T) {
	key := testKey(t)
	a, b := openClient(t), openClient(t)
	ctx := context.Background()
	r1, err := a.RWLock(key).RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.RWLock(key).TryRLock(WithTTL(5 * time.Second))
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if r1.Token() == r2.Token() || r2.Fence() <= r1.Fence() {
		t.Fatalf("shares must have their own token and a rising fence: %v/%d, %v/%d",
			r1.Token(), r1.Fence(), r2.Token(), r2.Fence())
	}
	if n := do(t, rawConn(t), "ZCARD", "distlock:"+key); n != int64(2) {
		t.Fatalf("holder set has %v members; want 2", n)
	}
	if _, err := b.RWLock(key).TryLock(); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("TryLock beside readers: %v; want ErrNotAcquired", err)
	}
	if _, err := b.RWLock(key).Lock(ctx, WithWaitTimeout(50*time.Millisecond)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Lock beside readers: %v; want ErrTimeout", err)
	}
	// A share is an ordinary Lock.
	if !r1.Held() || r1.Remaining() <= 0 || r1.Extend() != nil {
		t.Fatal("a held read share should be held, with a lease, and extendable")
	}
	if err := r1.Unlock(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(r1.Lost()) {
		t.Fatal("Lost() of an unlocked share is not closed")
	}
	if err := r2.Unlock(); err != nil {
		t.Fatal(err)
	}
	w, err := b.RWLock(key).TryLock()
	if err != nil {
		t.Fatalf("the writer after the readers: %v", err)
	}
	defer w.Unlock()
	if w.Fence() <= r2.Fence() {
		t.Fatalf("writer fence %d after reader fence %d", w.Fence(), r2.Fence())
	}
	if _, err := a.RWLock(key).TryRLock(); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("TryRLock beside a writer: %v; want ErrNotAcquired", err)
	}
}

func TestRWLockWaitingWriterHoldsNewReadersBack(t *testing.T) {
	key := testKey(t)
	a, b := openClient(t), openClient(t)
	ctx := context.Background()
	reader, err := a.RWLock(key).RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *Lock
		err error
	}
	writing := make(chan result, 1)
	go func() {
		l, err := b.RWLock(key).Lock(ctx, WithWaitTimeout(10*time.Second))
		writing <- result{l, err}
	}()
	untilInt(t, 1, "EXISTS", "{distlock:"+key+"}:writers")
	if _, err := a.RWLock(key).TryRLock(); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("a new reader beside a waiting writer: %v; want ErrNotAcquired", err)
	}
	if err := reader.Unlock(); err != nil {
		t.Fatal(err)
	}
	w := <-writing
	if w.err != nil {
		t.Fatalf("the waiting writer: %v", w.err)
	}
	if _, err := a.RWLock(key).TryRLock(); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("a reader beside the writer: %v; want ErrNotAcquired", err)
	}
	if err := w.l.Unlock(); err != nil {
		t.Fatal(err)
	}
	r, err := a.RWLock(key).TryRLock()
	if err != nil {
		t.Fatalf("a reader after the writer: %v", err)
	}
	r.Unlock()
}

func TestRWLockWaitEndsWithTheContext(t *testing.T) {
	key := testKey(t)
	c := openClient(t)
	w, err := c.RWLock(key).Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.RWLock(key).RLock(ctx)
		done <- err
	}()
	untilSubscribed(t, key)
	cancel()
	err = <-done
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("RLock after cancel: %v; want ErrCancelled and context.Canceled", err)
	}
}

func TestSemaphoreGrantsItsPermitsAndNoMore(t *testing.T) {
	key := testKey(t)
	a, b := openClient(t), openClient(t)
	const n = 3
	sem := a.Semaphore(key, n)
	if sem.Name() != key || sem.Permits() != n {
		t.Fatalf("Name, Permits = %q, %d", sem.Name(), sem.Permits())
	}
	var held []*Lock
	for i := 0; i < n; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		l, err := c.Semaphore(key, n).Acquire(context.Background(), WithWaitTimeout(time.Second))
		if err != nil {
			t.Fatalf("permit %d: %v", i+1, err)
		}
		held = append(held, l)
	}
	if _, err := b.Semaphore(key, n).TryAcquire(); !errors.Is(err, ErrNotAcquired) ||
		!strings.Contains(err.Error(), "every permit of the semaphore is taken") {
		t.Fatalf("permit %d: %v; want ErrNotAcquired", n+1, err)
	}
	if _, err := sem.Acquire(context.Background(), WithWaitTimeout(50*time.Millisecond)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a wait for permit %d: %v; want ErrTimeout", n+1, err)
	}
	if err := held[0].Unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := b.Semaphore(key, n).TryAcquire()
	if err != nil {
		t.Fatalf("a returned permit: %v", err)
	}
	held[0] = again
	for _, l := range held {
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKindsBadInputGetsTheLibrarysMessages(t *testing.T) {
	key := testKey(t)
	c := openClient(t)
	for _, n := range []int{0, MaxPermits + 1} {
		_, err := c.Semaphore(key, n).TryAcquire()
		wantInvalid(t, err, "a semaphore must have 1 to 10000 permits")
		_, err = c.Semaphore(key, n).Acquire(context.Background())
		wantInvalid(t, err, "1 to 10000 permits")
	}
	_, err := c.Semaphore(key, -1).TryAcquire()
	wantInvalid(t, err, "permit count -1 out of range")
	_, err = c.RWLock(key).TryRLock(WithFair())
	wantInvalid(t, err, "WithFair applies to plain locks only")
	_, err = c.Semaphore(key, 2).Acquire(context.Background(), WithFair())
	wantInvalid(t, err, "WithFair applies to plain locks only")
	_, err = c.RWLock("").TryRLock()
	wantInvalid(t, err, "")

	// A name held as one kind is refused as another, in the library's words.
	plain, err := c.TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RWLock(key).TryRLock()
	wantInvalid(t, err, "in use by a plain lock; a read-write lock")
	_, err = c.Semaphore(key, 2).TryAcquire()
	wantInvalid(t, err, "in use by a plain lock; a semaphore")
	plain.Unlock()
	reader, err := c.RWLock(key).TryRLock()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.TryLock(key)
	wantInvalid(t, err, "in use by a read-write lock or a semaphore; a plain lock")
	_, err = c.Lock(context.Background(), key, WithFair())
	wantInvalid(t, err, "in use by a read-write lock or a semaphore")
	reader.Unlock()
}

func TestFairLockServesWaitersInArrivalOrder(t *testing.T) {
	key := testKey(t)
	holder := openClient(t)
	first, err := holder.Lock(context.Background(), key, WithFair())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.TryLock(key, WithFair()); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("TryLock(WithFair) while held: %v", err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		// Each waiter on a client of its own, in line before the next.
		c := openClient(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := c.Lock(context.Background(), key, WithFair(), WithWaitTimeout(10*time.Second))
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			l.Unlock()
		}()
		untilInt(t, int64(i), "ZCARD", "{distlock:"+key+"}:line")
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("served in the order %v; want [1 2 3]", order)
	}
}

func TestKindsOnMemcachedAreRefused(t *testing.T) {
	c, err := Open(startMemcached(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.RWLock("k").TryRLock()
	wantInvalid(t, err, "read-write locks are not supported with")
	_, err = c.RWLock("k").Lock(context.Background())
	wantInvalid(t, err, "read-write locks are not supported with")
	_, err = c.Semaphore("k", 2).TryAcquire()
	wantInvalid(t, err, "semaphores are not supported with")
	_, err = c.TryLock("k", WithFair())
	wantInvalid(t, err, "fair locks are not supported with")
}

func TestInspectCountsTheSharesOfAReadWriteLock(t *testing.T) {
	key := testKey(t)
	a := openClient(t)
	rw := a.RWLock(key)
	r1, err := rw.TryRLock()
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Unlock()
	r2, err := rw.TryRLock()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Unlock()
	info, err := a.Inspect(key)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Shares != 2 || info.Token != "" || !info.HasRemaining || info.WritersWaiting != 0 {
		t.Fatalf("two readers: %+v", info)
	}
}
