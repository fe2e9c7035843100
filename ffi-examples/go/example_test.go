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
