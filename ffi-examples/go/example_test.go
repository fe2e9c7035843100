package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	distlock "github.com/distlock/distlock/ffi-examples/go"
)

// redisURL is where the examples find Redis: a throwaway redis-server on a
// free loopback port that TestMain (distlock_test.go) started. In a
// program it would be something like "redis://127.0.0.1:6379".
func redisURL() string { return distlock.SharedServerURL() }

// Take a lock, use its fence, release it.
func Example() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	lock, err := client.Lock(context.Background(), "example:nightly-report",
		distlock.WithTTL(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding", lock.Key())
	fmt.Println("fence set:", lock.Fence() > 0)
	if err := lock.Unlock(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("released")
	// Output:
	// holding example:nightly-report
	// fence set: true
	// released
}

// TryLock does not wait: a lock held by someone else is the error
// ErrNotAcquired.
func ExampleClient_TryLock() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	held, err := client.TryLock("example:import")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer held.Unlock()

	_, err = client.TryLock("example:import")
	fmt.Println("second try:", errors.Is(err, distlock.ErrNotAcquired))
	// Output:
	// second try: true
}

// A wait bounded by WithWaitTimeout ends with ErrTimeout; one bounded by
// the context ends with the context's error (and ErrCancelled).
func ExampleClient_Lock_timeout() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	held, err := client.TryLock("example:busy")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer held.Unlock()

	_, err = client.Lock(context.Background(), "example:busy",
		distlock.WithWaitTimeout(50*time.Millisecond))
	fmt.Println("timed out:", errors.Is(err, distlock.ErrTimeout))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = client.Lock(ctx, "example:busy")
	fmt.Println("deadline:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// timed out: true
	// deadline: true
}

// The storage a lock protects keeps the highest fence it has seen and
// refuses writes that carry a lower one: a holder that lost the lock
// without knowing (a long pause, say) cannot overwrite its successor's
// work.
func ExampleLock_Fence() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	var highest uint64 // the storage's record
	write := func(fence uint64) string {
		if fence < highest {
			return "refused"
		}
		highest = fence
		return "ok"
	}

	first, err := client.TryLock("example:ledger")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("first holder writes:", write(first.Fence()))
	_ = first.Unlock()

	second, err := client.TryLock("example:ledger")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Unlock()
	fmt.Println("second holder writes:", write(second.Fence()))
	fmt.Println("late write of the first:", write(first.Fence()))
	// Output:
	// first holder writes: ok
	// second holder writes: ok
	// late write of the first: refused
}

// CheckConfig finds a bad configuration without connecting anywhere.
func ExampleCheckConfig() {
	err := distlock.CheckConfig(distlock.WithNodes(
		"redis://127.0.0.1:7001", "redis://127.0.0.1:7002"))
	fmt.Println("invalid:", errors.Is(err, distlock.ErrInvalidArgument))

	err = distlock.CheckConfig(distlock.WithNodes(
		"redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"))
	fmt.Println("three nodes:", err)
	// Output:
	// invalid: true
	// three nodes: <nil>
}

// Errors say what failed; errors.Is tells the kind.
func ExampleOpen_invalidURL() {
	_, err := distlock.Open("http://127.0.0.1:6379")
	fmt.Println(errors.Is(err, distlock.ErrInvalidArgument))
	// Output:
	// true
}

// Options apply in order, Open's url first: the last kind of server wins,
// so Open(url, WithNodes(...)) is a Redlock over the nodes.
func ExampleOpen_serverChoice() {
	nodes := distlock.WithNodes("redis://127.0.0.1:7001", "redis://127.0.0.1:7002")
	err := distlock.CheckConfig(distlock.WithURL("redis://127.0.0.1:6379"), nodes)
	fmt.Println("two nodes:", err)

	err = distlock.CheckConfig(nodes, distlock.WithURL("redis://127.0.0.1:6379"))
	fmt.Println("then a URL:", err)
	// Output:
	// two nodes: distlock: invalid argument: check: invalid argument: Redlock needs at least 3 independent nodes (5 is usual); 2 given
	// then a URL: <nil>
}

// A server whose certificate a private CA signed, and that requires a
// client certificate (mutual TLS). Not run: it needs such a server.
func ExampleWithTLSCAFile() {
	client, err := distlock.Open("rediss://redis.internal:6380/0",
		distlock.WithTLSCAFile("/etc/distlock/ca.pem"),
		distlock.WithTLSClientCertFiles("/etc/distlock/client.pem", "/etc/distlock/client.key"),
	)
	if err != nil {
		fmt.Println(err) // names a file it cannot read; says what to check if the handshake fails
		return
	}
	defer client.Close()
}

// Inspect shows who holds a lock; ReleaseToken frees a lock whose holder
// is known to be dead, and only if it still holds it.
func ExampleClient_Inspect() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	// A short lease, so that the holder's next renewal (a third of it),
	// where it finds out, comes soon.
	held, err := client.TryLock("example:stuck", distlock.WithTTL(1500*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	info, err := client.Inspect("example:stuck")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held:", info.Held, "by this lock:", info.Token == held.Token())
	fmt.Println("lease left:", info.HasRemaining && info.Remaining <= 1500*time.Millisecond)

	freed, err := client.ReleaseToken("example:stuck", "some-other-token")
	fmt.Println("wrong token freed it:", freed, err)
	freed, err = client.ReleaseToken("example:stuck", info.Token)
	fmt.Println("right token freed it:", freed, err)
	<-held.Lost()
	fmt.Println("the holder knows:", errors.Is(held.Unlock(), distlock.ErrLost))
	// Output:
	// held: true by this lock: true
	// lease left: true
	// wrong token freed it: false <nil>
	// right token freed it: true <nil>
	// the holder knows: true
}

// A context that ends with the lock: work stops when the lock is lost or
// unlocked.
func ExampleLock_Context() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	l, err := client.Lock(context.Background(), "example:context")
	if err != nil {
		fmt.Println(err)
		return
	}
	work, stop := l.Context(context.Background())
	defer stop()
	fmt.Println("working:", work.Err() == nil)
	_ = l.Unlock()
	<-work.Done()
	fmt.Println("after unlock:", errors.Is(context.Cause(work), distlock.ErrUnlocked))
	// Output:
	// working: true
	// after unlock: true
}

// Stats reads a client's counters without a round trip. Here they are
// written in the Prometheus text exposition format, as a /metrics handler
// would (see cmd/prometheus for a whole exporter, with the wait quantiles);
// no Prometheus library is needed.
func ExampleClient_Stats() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	for range 2 {
		lock, err := client.TryLock("example:stats")
		if err != nil {
			fmt.Println(err)
			return
		}
		lock.Unlock()
	}
	s, err := client.Stats()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range []struct {
		name  string
		value uint64
	}{
		{"acquired", s.Acquired},
		{"contended", s.Contended},
		{"timed_out", s.TimedOut},
		{"cancelled", s.Cancelled},
		{"lost", s.Lost},
	} {
		fmt.Printf("distlock_%s_total %d\n", c.name, c.value)
	}
	fmt.Println("wait quantiles in order:", s.WaitP50 <= s.WaitP99 && s.WaitP99 <= s.WaitMax)
	// Output:
	// distlock_acquired_total 2
	// distlock_contended_total 0
	// distlock_timed_out_total 0
	// distlock_cancelled_total 0
	// distlock_lost_total 0
	// wait quantiles in order: true
}

// A read-write lock: readers share it, a writer waits for them and then
// holds it alone.
func ExampleRWLock() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	ctx := context.Background()
	catalog := client.RWLock("example:catalog")

	r1, err := catalog.RLock(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	r2, err := catalog.RLock(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("two readers hold it")
	_, err = catalog.TryLock()
	fmt.Println("a writer beside them:", errors.Is(err, distlock.ErrNotAcquired))

	r1.Unlock()
	r2.Unlock()
	w, err := catalog.Lock(ctx, distlock.WithWaitTimeout(5*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = catalog.TryRLock()
	fmt.Println("a reader beside the writer:", errors.Is(err, distlock.ErrNotAcquired))
	fmt.Println("writer fence after the readers':", w.Fence() > r2.Fence())
	w.Unlock()
	// Output:
	// two readers hold it
	// a writer beside them: true
	// a reader beside the writer: true
	// writer fence after the readers': true
}

// A semaphore of 2 permits: a third holder is refused until one returns.
func ExampleSemaphore() {
	client, err := distlock.Open(redisURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	encoders := client.Semaphore("example:encoders", 2)

	a, _ := encoders.TryAcquire()
	b, _ := encoders.TryAcquire()
	_, err = encoders.TryAcquire()
	fmt.Println("third:", errors.Is(err, distlock.ErrNotAcquired))
	a.Unlock()
	c, err := encoders.Acquire(context.Background())
	fmt.Println("after a release:", err == nil)
	b.Unlock()
	c.Unlock()
	// Output:
	// third: true
	// after a release: true
}
