package distlock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// startMemcached runs memcached -M (no eviction) on a free loopback port
// for the test, stopped by pid at its end; skips when memcached is missing.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached not installed")
	}
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-l", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "0", "-m", "16", "-M"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start memcached: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "memcache://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLockCycleOnMemcached(t *testing.T) {
	lockCycle(t, startMemcached(t), "jobs:mc")
}

func TestPollIntervalOnMemcached(t *testing.T) {
	url := startMemcached(t)
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Hour} {
		err := CheckConfig(WithURL(url), WithPollInterval(d))
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("WithPollInterval(%v): %v; want ErrInvalidArgument", d, err)
		}
	}
	if err := CheckConfig(WithURL(url), WithPollInterval(2*time.Hour)); err == nil ||
		!strings.Contains(err.Error(), "poll_interval must be between 1 ms and 1 hour") {
		t.Errorf("2h: %v; want the library's bound", err)
	}
	// A waiter whose own retries are an hour apart is woken by the feed,
	// polling every 5 ms, when the holder lets go.
	c, err := OpenConfig(WithURL(url), WithPollInterval(5*time.Millisecond), WithMaxRetryInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	holder, err := Open(url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	held, err := holder.Lock(context.Background(), "jobs:poll")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := c.Lock(ctx, "jobs:poll")
		if err == nil {
			err = l.Unlock()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the waiter start waiting (not synchronisation: either order passes)
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the waiter: %v", err)
	}
}
