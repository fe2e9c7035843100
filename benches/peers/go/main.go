// Command peers is the peer comparison's Go side (see
// scripts/bench-peers.sh): the same three scenarios through distlock's Go
// binding, bsm/redislock and redsync, each printing one JSON line.
//
//	peers URL LIB SCENARIO   LIB: distlock | redislock | redsync; SCENARIO: a | b | c
//
// a: one client, 200 warm-up cycles, then 2,000 of acquire + release on one
// key (us_per_cycle). b: 4 processes of this program, started together,
// 200 cycles each of acquire, GET/SET of a counter, release, on one key
// (cycles_per_s over the slowest's wall time, max_wait_ms, counter_ok).
// c: 100 goroutines in one process, one acquisition + release each
// (wall_ms).
//
// Waiting is each library's own: distlock's Lock; redislock's Obtain with
// a 10 ms linear backoff (it has no blocking mode; its README suggests a
// linear backoff); redsync's Lock with its default delays and enough tries
// never to give up here.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bsm/redislock"
	distlock "github.com/distlock/distlock/ffi-examples/go"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

const (
	ttl        = 10 * time.Second
	warmup     = 200
	cyclesA    = 2000
	processesB = 4
	cyclesB    = 200
	goroutines = 100
)

// peer takes and gives back one lock of one library.
type peer interface {
	acquire(key string) func()
}

type distlockPeer struct{ c *distlock.Client }

func (p distlockPeer) acquire(key string) func() {
	l, err := p.c.Lock(context.Background(), key, distlock.WithTTL(ttl))
	must(err)
	return func() { must(l.Unlock()) }
}

type redislockPeer struct{ c *redislock.Client }

func (p redislockPeer) acquire(key string) func() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := p.c.Obtain(ctx, key, ttl, &redislock.Options{RetryStrategy: redislock.LinearBackoff(10 * time.Millisecond)})
	must(err)
	return func() { must(l.Release(context.Background())) }
}

type redsyncPeer struct{ rs *redsync.Redsync }

func (p redsyncPeer) acquire(key string) func() {
	m := p.rs.NewMutex(key, redsync.WithExpiry(ttl), redsync.WithTries(100000))
	must(m.Lock())
	return func() {
		_, err := m.Unlock()
		must(err)
	}
}

func open(lib, url string) peer {
	switch lib {
	case "distlock":
		c, err := distlock.Open(url)
		must(err)
		return distlockPeer{c}
	case "redislock":
		return redislockPeer{redislock.New(rdb(url))}
	case "redsync":
		return redsyncPeer{redsync.New(goredis.NewPool(rdb(url)))}
	}
	fail("unknown library " + lib)
	return nil
}

func rdb(url string) *redis.Client {
	opts, err := redis.ParseURL(url)
	must(err)
	return redis.NewClient(opts)
}

func must(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "peers:", msg)
	os.Exit(2)
}

func scenarioA(url, lib, key string) {
	p := open(lib, url)
	for i := 0; i < warmup; i++ {
		p.acquire(key)()
	}
	start := time.Now()
	for i := 0; i < cyclesA; i++ {
		p.acquire(key)()
	}
	us := float64(time.Since(start).Microseconds()) / cyclesA
	fmt.Printf("{\"lang\":\"go\",\"lib\":%q,\"scenario\":\"a\",\"us_per_cycle\":%.1f}\n", lib, us)
}

func workerB(url, lib, key string, startMs int64) {
	p := open(lib, url)
	r := rdb(url)
	ctx := context.Background()
	counter := key + ":counter"
	for time.Now().UnixMilli() < startMs {
		time.Sleep(time.Millisecond)
	}
	var maxWait time.Duration
	for i := 0; i < cyclesB; i++ {
		asked := time.Now()
		release := p.acquire(key)
		maxWait = max(maxWait, time.Since(asked))
		n, err := r.Get(ctx, counter).Int()
		if err == redis.Nil {
			n, err = 0, nil
		}
		must(err)
		must(r.Set(ctx, counter, n+1, 0).Err())
		release()
	}
	fmt.Printf("%d %.3f\n", time.Now().UnixMilli(), float64(maxWait.Microseconds())/1e3)
}

func scenarioB(url, lib, key string) {
	r := rdb(url)
	ctx := context.Background()
	counter := key + ":counter"
	must(r.Del(ctx, counter).Err())
	me, err := os.Executable()
	must(err)
	startMs := time.Now().UnixMilli() + 500
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < processesB; i++ {
		cmd := exec.Command(me, url, lib, "b-worker", key, strconv.FormatInt(startMs, 10))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		must(cmd.Start())
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var end int64
	var maxWait float64
	for i, cmd := range cmds {
		must(cmd.Wait())
		var e int64
		var w float64
		if _, err := fmt.Sscanf(outs[i].String(), "%d %f", &e, &w); err != nil {
			fail("a worker said " + outs[i].String())
		}
		end, maxWait = max(end, e), max(maxWait, w)
	}
	wall := float64(max(end-startMs, 1)) / 1e3
	got, err := r.Get(ctx, counter).Int()
	must(err)
	total := processesB * cyclesB
	fmt.Printf("{\"lang\":\"go\",\"lib\":%q,\"scenario\":\"b\",\"cycles_per_s\":%.0f,\"max_wait_ms\":%.1f,\"counter_ok\":%v}\n",
		lib, float64(total)/wall, maxWait, got == total)
}

func scenarioC(url, lib, key string) {
	p := open(lib, url)
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	ready.Add(goroutines)
	done.Add(goroutines)
	for i := 0; i < goroutines; i++ {
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			p.acquire(key)()
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	done.Wait()
	fmt.Printf("{\"lang\":\"go\",\"lib\":%q,\"scenario\":\"c\",\"wall_ms\":%.1f}\n", lib, float64(time.Since(start).Microseconds())/1e3)
}

func main() {
	if len(os.Args) < 4 || !strings.HasPrefix(os.Args[1], "redis://127.") {
		fail("usage: peers redis://127.0.0.1:PORT LIB a|b|c (loopback only)")
	}
	url, lib, scenario := os.Args[1], os.Args[2], os.Args[3]
	key := fmt.Sprintf("peers:go:%s:%s:%d", lib, scenario, os.Getpid())
	switch scenario {
	case "a":
		scenarioA(url, lib, key)
	case "b":
		scenarioB(url, lib, key)
	case "b-worker":
		if len(os.Args) < 6 {
			fail("b-worker needs KEY START_MS")
		}
		startMs, err := strconv.ParseInt(os.Args[5], 10, 64)
		must(err)
		workerB(url, lib, os.Args[4], startMs)
	case "c":
		scenarioC(url, lib, key)
	default:
		fail("unknown scenario " + scenario)
	}
}
