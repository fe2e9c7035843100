// Command prometheus shows how to export a Client's Stats to Prometheus
// with nothing but the standard library: a /metrics handler that writes
// the counters in the Prometheus text exposition format. It takes a lock a
// few times so that there is something to see, then serves /metrics until
// interrupted (or, with -once, prints the page and exits).
//
//	go run ./cmd/prometheus -once            # starts its own redis-server
//	go run ./cmd/prometheus -url redis://127.0.0.1:6379 -listen 127.0.0.1:9464
//	curl -s http://127.0.0.1:9464/metrics
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	distlock "github.com/distlock/distlock/ffi-examples/go"
	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// counters are the Stats counts, as Prometheus counters named
// distlock_<name>_total.
var counters = []struct {
	name, help string
	value      func(distlock.Stats) uint64
}{
	{"acquired", "Acquisitions that returned a lock.", func(s distlock.Stats) uint64 { return s.Acquired }},
	{"contended", "Acquisitions that had to wait for the lock.", func(s distlock.Stats) uint64 { return s.Contended }},
	{"timed_out", "Acquisitions given up at their timeout.", func(s distlock.Stats) uint64 { return s.TimedOut }},
	{"cancelled", "Acquisitions given up because they were cancelled.", func(s distlock.Stats) uint64 { return s.Cancelled }},
	{"lost", "Locks lost while held.", func(s distlock.Stats) uint64 { return s.Lost }},
	{"renewals", "Leases extended by the renewal thread.", func(s distlock.Stats) uint64 { return s.Renewals }},
	{"renewal_failures", "Renewals that failed to reach the server.", func(s distlock.Stats) uint64 { return s.RenewalFailures }},
	{"local_handoffs", "Leases handed between goroutines of the client without a round trip.", func(s distlock.Stats) uint64 { return s.LocalHandoffs }},
	{"feed_reconnects", "Reconnections of the release-notification feed.", func(s distlock.Stats) uint64 { return s.FeedReconnects }},
	{"lingered", "Acquisitions granted from a lock the client lingered on.", func(s distlock.Stats) uint64 { return s.Lingered }},
}

// writeMetrics writes s in the Prometheus text exposition format: one
// counter per count, and the acquire-wait quantiles and maximum as gauges
// in seconds.
func writeMetrics(w io.Writer, s distlock.Stats) error {
	var b bytes.Buffer
	for _, c := range counters {
		name := "distlock_" + c.name + "_total"
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, c.help, name, name, c.value(s))
	}
	b.WriteString("# HELP distlock_acquire_wait_seconds Time from an acquire call to its lock, by quantile.\n")
	b.WriteString("# TYPE distlock_acquire_wait_seconds gauge\n")
	fmt.Fprintf(&b, "distlock_acquire_wait_seconds{quantile=\"0.5\"} %g\n", s.WaitP50.Seconds())
	fmt.Fprintf(&b, "distlock_acquire_wait_seconds{quantile=\"0.99\"} %g\n", s.WaitP99.Seconds())
	b.WriteString("# HELP distlock_acquire_wait_max_seconds Longest time from an acquire call to its lock.\n")
	b.WriteString("# TYPE distlock_acquire_wait_max_seconds gauge\n")
	fmt.Fprintf(&b, "distlock_acquire_wait_max_seconds %g\n", s.WaitMax.Seconds())
	_, err := w.Write(b.Bytes())
	return err
}

func main() {
	os.Exit(run())
}

func run() int {
	url := flag.String("url", "", "Redis URL (default: start a redis-server on a free loopback port)")
	listen := flag.String("listen", "127.0.0.1:9464", "address to serve /metrics on")
	cycles := flag.Int("cycles", 3, "lock cycles to run first, so that the counters show something")
	once := flag.Bool("once", false, "print the metrics page to stdout and exit instead of serving it")
	flag.Parse()

	if *url == "" {
		srv, err := redistest.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "prometheus: starting redis-server:", err)
			return 1
		}
		defer srv.Stop()
		*url = srv.URL
	}
	client, err := distlock.Open(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prometheus:", err)
		return 1
	}
	defer client.Close()
	for range *cycles {
		lock, err := client.Lock(context.Background(), "prometheus:example")
		if err != nil {
			fmt.Fprintln(os.Stderr, "prometheus:", err)
			return 1
		}
		if err := lock.Unlock(); err != nil {
			fmt.Fprintln(os.Stderr, "prometheus:", err)
			return 1
		}
	}

	if *once {
		s, err := client.Stats()
		if err == nil {
			err = writeMetrics(os.Stdout, s)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "prometheus:", err)
			return 1
		}
		return 0
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		s, err := client.Stats()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = writeMetrics(w, s)
	})
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = server.Shutdown(context.Background())
	}()
	fmt.Fprintf(os.Stderr, "serving http://%s/metrics (Ctrl-C to stop)\n", *listen)
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "prometheus:", err)
		return 1
	}
	return 0
}
