// The uncontended lock cycle of etcd's own Go client, for examples/bench.rs:
// concurrency.Mutex Lock + Unlock on one session, N times; prints the
// median microseconds of one cycle. Usage: go run . host:port N
// (bench.rs builds it in a scratch module with go.etcd.io/etcd/client/v3).
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func main() {
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		panic(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{os.Args[1]}, DialTimeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
	if err != nil {
		panic(err)
	}
	defer session.Close()
	m := concurrency.NewMutex(session, "/bench/go-mutex")
	ctx := context.Background()
	cycle := func() time.Duration {
		start := time.Now()
		if err := m.Lock(ctx); err != nil {
			panic(err)
		}
		if err := m.Unlock(ctx); err != nil {
			panic(err)
		}
		return time.Since(start)
	}
	for i := 0; i < n/10; i++ {
		cycle()
	}
	times := make([]float64, n)
	for i := range times {
		times[i] = float64(cycle().Nanoseconds()) / 1e3
	}
	sort.Float64s(times)
	fmt.Printf("%.1f\n", times[len(times)/2])
}
