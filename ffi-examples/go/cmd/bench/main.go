// Command bench measures uncontended lock cycles through the Go binding:
// N times Lock then Unlock of one key on one Client, after a warm-up. It
// prints
//
//	go_acquire_release_us <median microseconds per cycle>
//	go_raw_set_del_us <median microseconds of SET NX PX + DEL on a raw connection>
//
// the second line being a floor for comparison: two plain round trips
// (-raw=false leaves it out). scripts/bench-ffi.sh compares the first with
// the Rust floor, examples/ffi_floor.rs.
//
//	go run ./cmd/bench                 # starts its own redis-server
//	go run ./cmd/bench -url redis://127.0.0.1:6379 -n 5000
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	distlock "github.com/distlock/distlock/ffi-examples/go"
	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

func main() {
	os.Exit(run())
}

func run() int {
	redisURL := flag.String("url", "", "Redis URL on a loopback address (default: start a redis-server on a free loopback port)")
	n := flag.Int("n", 2000, "measured cycles")
	warmup := flag.Int("warmup", 200, "unmeasured cycles first")
	key := flag.String("key", "go:bench", "lock name")
	raw := flag.Bool("raw", true, "also measure the raw SET NX PX + DEL floor")
	flag.Parse()
	if *n < 1 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench: -n must be at least 1 and -warmup at least 0")
		return 2
	}
	if *redisURL == "" {
		srv, err := redistest.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: starting redis-server:", err)
			return 1
		}
		defer srv.Stop()
		*redisURL = srv.URL
	}

	c, err := distlock.Open(*redisURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer c.Close()
	ctx := context.Background()
	cycle := func() error {
		l, err := c.Lock(ctx, *key)
		if err != nil {
			return err
		}
		return l.Unlock()
	}
	for i := 0; i < *warmup; i++ {
		if err := cycle(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: warm-up:", err)
			return 1
		}
	}
	samples := make([]time.Duration, 0, *n)
	for i := 0; i < *n; i++ {
		start := time.Now()
		if err := cycle(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		samples = append(samples, time.Since(start))
	}
	fmt.Printf("go_acquire_release_us %.2f\n", float64(median(samples).Nanoseconds())/1e3)

	if !*raw {
		return 0
	}
	if floor, err := rawFloor(*redisURL, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench: raw floor skipped:", err)
	} else {
		fmt.Printf("go_raw_set_del_us %.2f\n", float64(floor.Nanoseconds())/1e3)
	}
	return 0
}

// median is the middle of samples (which it sorts).
func median(samples []time.Duration) time.Duration {
	slices.Sort(samples)
	return samples[len(samples)/2]
}

// rawFloor is the median time of SET key token NX PX + DEL key over one raw
// connection, for servers without a password.
func rawFloor(redisURL string, n int) (time.Duration, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return 0, err
	}
	if u.Scheme != "redis" || u.User != nil {
		return 0, fmt.Errorf("only plain redis:// URLs without credentials")
	}
	host := u.Host
	if u.Port() == "" {
		host += ":6379"
	}
	conn, err := redistest.Dial(host)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	key := "go:bench:raw"
	samples := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := conn.Do("SET", key, "token", "NX", "PX", "30000"); err != nil {
			return 0, err
		}
		if _, err := conn.Do("DEL", key); err != nil {
			return 0, err
		}
		samples = append(samples, time.Since(start))
	}
	return median(samples), nil
}
