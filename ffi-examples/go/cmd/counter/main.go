// Command counter is the seeds' scenario in Go: many goroutines each take
// the same distributed lock once, increment a shared counter with a
// deliberately non-atomic read and write, and release it. It prints the
// wall time from the start signal to the last release and the final count,
// and exits non-zero unless the count is exact.
//
//	go run ./cmd/counter                    # starts its own redis-server
//	go run ./cmd/counter -url redis://127.0.0.1:6379 -goroutines 100 -clients 4
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	distlock "github.com/distlock/distlock/ffi-examples/go"
	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

func main() {
	os.Exit(run())
}

func run() int {
	url := flag.String("url", "", "Redis URL on a loopback address (default: start a redis-server on a free loopback port)")
	goroutines := flag.Int("goroutines", 100, "goroutines, each incrementing the counter once")
	clients := flag.Int("clients", 1, "Clients the goroutines share, round robin")
	key := flag.String("key", "go:counter", "lock name")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	if *goroutines < 1 || *clients < 1 {
		fmt.Fprintln(os.Stderr, "counter: -goroutines and -clients must be at least 1")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if *url == "" {
		srv, err := redistest.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "counter: starting redis-server:", err)
			return 1
		}
		defer srv.Stop()
		*url = srv.URL
		fmt.Printf("started redis-server pid %d at %s\n", srv.Pid(), srv.URL)
	}

	cs := make([]*distlock.Client, *clients)
	for i := range cs {
		c, err := distlock.Open(*url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "counter:", err)
			return 1
		}
		defer c.Close()
		cs[i] = c
	}
	// Warm up: the first acquisition loads the scripts on the server.
	for _, c := range cs {
		l, err := c.Lock(ctx, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "counter: warm-up:", err)
			return 1
		}
		if err := l.Unlock(); err != nil {
			fmt.Fprintln(os.Stderr, "counter: warm-up:", err)
			return 1
		}
	}

	var (
		counter  int // protected by the distributed lock only
		wg       sync.WaitGroup
		gate     = make(chan struct{})
		errsMu   sync.Mutex
		failures []error
	)
	fail := func(err error) {
		errsMu.Lock()
		failures = append(failures, err)
		errsMu.Unlock()
	}
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go func(c *distlock.Client) {
			defer wg.Done()
			<-gate
			l, err := c.Lock(ctx, *key)
			if err != nil {
				fail(err)
				return
			}
			n := counter
			runtime.Gosched()
			counter = n + 1
			if err := l.Unlock(); err != nil {
				fail(err)
			}
		}(cs[i%len(cs)])
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)

	fmt.Printf("goroutines %d clients %d\n", *goroutines, *clients)
	fmt.Printf("go_counter_elapsed_us %.0f\n", float64(elapsed.Nanoseconds())/1e3)
	fmt.Printf("go_counter_final %d expected %d\n", counter, *goroutines)
	for _, err := range failures {
		fmt.Fprintln(os.Stderr, "counter:", err)
	}
	if len(failures) > 0 || counter != *goroutines {
		fmt.Fprintln(os.Stderr, "counter: FAILED")
		return 1
	}
	return 0
}
