package distlock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/ffi-examples/go/internal/redistest"
)

// deadURL is a loopback URL nothing listens on (binding port 1 needs
// privileges nobody here uses); db tells otherwise equal URLs apart.
func deadURL(db int) string {
	return "redis://127.0.0.1:1/" + strconv.Itoa(db)
}

// What src/servers.rs (the Rust builder's check) says of bad choices of
// servers: the binding must refuse the same choices with the same words.
const (
	refusedNodes         = "invalid argument: Redlock needs at least 3 independent nodes (5 is usual); %d given"
	refusedNoSentinels   = "invalid argument: sentinel mode needs at least one sentinel address"
	refusedTLSDeployment = "invalid argument: custom TLS certificates work with a single node or " +
		"Redlock, not Cluster or Sentinel"
)

// nativeMessage is the native library's message in err (an *opError).
func nativeMessage(t *testing.T, err error) string {
	t.Helper()
	var e *opError
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is not an *opError", err, err)
	}
	return e.message
}

// Every bad choice of servers is refused by CheckConfig, OpenConfig and
// Open with exactly the Rust builder's words.
func TestServerChoiceRefusalsAreRusts(t *testing.T) {
	three := []string{deadURL(0), deadURL(1), deadURL(2)}
	cases := []struct {
		name string
		opts []Option
		want string
	}{
		{"one node", []Option{WithNodes(deadURL(0))}, fmt.Sprintf(refusedNodes, 1)},
		{"two nodes", []Option{WithNodes(deadURL(0), deadURL(1))}, fmt.Sprintf(refusedNodes, 2)},
		{"two nodes in two calls", []Option{WithNodes(deadURL(0)), WithNodes(deadURL(1))}, fmt.Sprintf(refusedNodes, 2)},
		{"nodes again after a URL", []Option{WithNodes(three...), WithURL(deadURL(3)), WithNodes(deadURL(4))}, fmt.Sprintf(refusedNodes, 1)},
		{"nodes after a sentinel", []Option{WithSentinel("mymaster", "127.0.0.1:1"), WithNodes(deadURL(0), deadURL(1))}, fmt.Sprintf(refusedNodes, 2)},
		{"master without sentinels", []Option{WithSentinel("mymaster")}, refusedNoSentinels},
		{"nodes, then a master without sentinels", []Option{WithNodes(three...), WithSentinel("mymaster")}, refusedNoSentinels},
		{"etcd node", []Option{WithNodes(deadURL(0), "etcd://127.0.0.1:2379", deadURL(2))}, "invalid argument: Redlock node #2: etcd:// names one etcd cluster (give it alone, as the server URL, listing its members: etcd://host:port,host:port); Redlock, Cluster and Sentinel need redis:// or rediss://"},
		{"memcache node", []Option{WithNodes(deadURL(0), "memcache://127.0.0.1:11211", deadURL(2))}, "invalid argument: Redlock node #2: memcache:// names a single memcached server (give it alone, as the server URL); Redlock, Cluster and Sentinel need redis:// or rediss://"},
		{"zk cluster seed", []Option{WithCluster("zk://127.0.0.1:2181/chroot")}, "invalid argument: cluster seed URL #1: zk:// names one ZooKeeper ensemble (give it alone, as the server URL, listing its servers: zk://host:port,host:port[/chroot]); Redlock, Cluster and Sentinel need redis:// or rediss://"},
		{"unsupported scheme", []Option{WithURL("http://u:s3cr3t@127.0.0.1:1/")}, `invalid argument: the server URL: unsupported scheme "http"; use redis:// or rediss://`},
		{"TLS CA and a cluster", []Option{WithTLSCA(testPEM(t)), WithCluster("rediss://127.0.0.1:1")}, refusedTLSDeployment},
		{"TLS CA and a sentinel", []Option{WithSentinel("mymaster", "127.0.0.1:1"), WithTLSCA(testPEM(t))}, refusedTLSDeployment},
	}
	for _, tc := range cases {
		checkErr := CheckConfig(tc.opts...)
		c, openErr := OpenConfig(tc.opts...)
		if c != nil {
			c.Close()
		}
		for _, err := range []error{checkErr, openErr} {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%s: %v; want ErrInvalidArgument", tc.name, err)
				continue
			}
			if got := nativeMessage(t, err); got != tc.want {
				t.Errorf("%s:\n got  %s\n want %s", tc.name, got, tc.want)
			}
		}
		if strings.Contains(checkErr.Error(), "s3cr3t") {
			t.Errorf("%s: the password shows: %v", tc.name, checkErr)
		}
	}
	// Open's url comes first, and a bad URL there is refused by the plain
	// open as well.
	_, err := Open("zk://127.0.0.1:2181,:2/chroot")
	if got := nativeMessage(t, err); got != "invalid argument: cannot parse the ZooKeeper URL: server #2 has no host" {
		t.Errorf("Open(zk://): %s", got)
	}
	_, err = Open(srv.URL, WithNodes(deadURL(0), deadURL(1)))
	if got := nativeMessage(t, err); got != fmt.Sprintf(refusedNodes, 2) {
		t.Errorf("Open(url, two nodes): %s", got)
	}
}

// Options apply in order, Open's url first, and the last kind of server
// given wins.
func TestServerOptionsApplyInOrder(t *testing.T) {
	three := []string{deadURL(0), deadURL(1), deadURL(2)}
	quick := []Option{WithConnectTimeout(300 * time.Millisecond), WithCommandTimeout(300 * time.Millisecond)}
	with := func(opts ...Option) []Option { return append(opts, quick...) }
	// Open(url, WithNodes(...)) means the nodes: dead ones, so it fails to
	// connect although url is live.
	_, err := Open(srv.URL, with(WithNodes(three...))...)
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "majority") {
		t.Errorf("Open(live url, WithNodes(dead...)): %v; want ErrConnection about the majority", err)
	}
	// A URL after the nodes means that server.
	c, err := Open(deadURL(0), with(WithNodes(three...), WithURL(srv.URL))...)
	if err != nil {
		t.Fatalf("Open(dead, nodes, WithURL(live)): %v", err)
	}
	l, err := c.TryLock(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock()
	c.Close()
	// A later WithURL replaces Open's url.
	c, err = Open(deadURL(0), with(WithURL(srv.URL))...)
	if err != nil {
		t.Fatalf("Open(dead, WithURL(live)): %v", err)
	}
	c.Close()
	// Nothing given: the default server, only checked (something may
	// listen there).
	if err := CheckConfig(); err != nil {
		t.Errorf("CheckConfig(): %v; want nil (the default URL)", err)
	}
	if err := CheckConfig(WithPrefix("p"), WithPoolSize(2)); err != nil {
		t.Errorf("CheckConfig(settings only): %v", err)
	}
	// Settings may come between the server options.
	if err := CheckConfig(WithNodes(deadURL(0)), WithPrefix("p"), WithNodes(deadURL(1), deadURL(2))); err != nil {
		t.Errorf("nodes, prefix, nodes: %v", err)
	}
	// The sentinel carries the URL just before as the master's; a bad one
	// there is refused.
	if err := CheckConfig(WithURL("redis://:pw@127.0.0.1:1/3"), WithSentinel("mymaster", "127.0.0.1:1")); err != nil {
		t.Errorf("URL then sentinel: %v", err)
	}
	// Nodes, then a cluster: the cluster.
	if err := CheckConfig(WithNodes(deadURL(0)), WithCluster(deadURL(0))); err != nil {
		t.Errorf("one node, then a cluster: %v", err)
	}
}

// CheckConfig refuses every setting OpenConfig refuses before connecting,
// with the same sentinel, status and native message; only the operation
// differs. The URLs are dead loopback ones, so that a setting Check let
// through by mistake would make OpenConfig fail differently.
func TestCheckConfigAgreesWithOpenConfig(t *testing.T) {
	three := []string{deadURL(0), deadURL(1), deadURL(2)}
	cases := []struct {
		name string
		opts []Option
		want string // in the message
	}{
		{"two nodes", []Option{WithNodes(deadURL(0), deadURL(1))}, "at least 3"},
		{"nodes, then a sentinel without addresses", []Option{WithNodes(three...), WithSentinel("mymaster")}, "at least one sentinel address"},
		{"sentinel without addresses", []Option{WithSentinel("mymaster")}, "at least one sentinel address"},
		{"empty master name", []Option{WithSentinel("", "127.0.0.1:1")}, "master_name is empty"},
		{"bad URL", []Option{WithURL("http://127.0.0.1:1/")}, "the server URL"},
		{"bad node URL", []Option{WithNodes(deadURL(0), "http://127.0.0.1:1/", deadURL(2))}, "Redlock node #2"},
		{"bad cluster URL", []Option{WithCluster("http://127.0.0.1:1/")}, "cluster seed URL #1"},
		{"cluster seeds in two dbs", []Option{WithCluster(deadURL(0), deadURL(1))}, "different database"},
		{"bad sentinel address", []Option{WithSentinel("mymaster", "not an address")}, "sentinel address"},
		{"bad URL before a sentinel", []Option{WithURL("http://127.0.0.1:1/"), WithSentinel("mymaster", "127.0.0.1:1")}, "the server URL"},
		{"missing TLS CA file", []Option{WithURL("rediss://127.0.0.1:1/0"), WithTLSCAFile("/nonexistent/ca.pem")}, `"/nonexistent/ca.pem"`},
		{"TLS CA with a NUL", []Option{WithTLSCAFile("ca\x00.pem")}, "NUL"},
		{"node URL with NUL", []Option{WithNodes(deadURL(0), deadURL(1)+"\x00", deadURL(2))}, "NUL"},
		{"negative replicas", []Option{WithURL(deadURL(0)), WithReplicas(-1, time.Second)}, "replica count"},
		{"replicas without timeout", []Option{WithURL(deadURL(0)), WithReplicas(1, 0)}, "replica"},
		{"handoff limit too high", []Option{WithURL(deadURL(0)), WithHandoffLimit(64)}, "handoff_limit"},
		{"handoff budget too long", []Option{WithURL(deadURL(0)), WithHandoffBudget(2 * time.Hour)}, "handoff"},
		{"zero retry interval", []Option{WithURL(deadURL(0)), WithMaxRetryInterval(0)}, "retry interval"},
		{"negative max hold", []Option{WithURL(deadURL(0)), WithMaxHold(-time.Second)}, "max hold"},
		{"negative pool size", []Option{WithURL(deadURL(0)), WithPoolSize(-1)}, "pool size"},
		{"negative default TTL", []Option{WithURL(deadURL(0)), WithDefaultTTL(-time.Second)}, "default TTL"},
		{"default TTL too long", []Option{WithURL(deadURL(0)), WithDefaultTTL(25 * time.Hour)}, "ttl"},
		{"replica timeout too long", []Option{WithURL(deadURL(0)), WithReplicas(1, 2*time.Hour)}, "replica"},
		{"bad prefix", []Option{WithURL(deadURL(0)), WithPrefix("a{b}")}, "prefix"},
	}
	for _, tc := range cases {
		start := time.Now()
		checkErr := CheckConfig(tc.opts...)
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: CheckConfig took %v", tc.name, d)
		}
		c, openErr := OpenConfig(tc.opts...)
		if c != nil {
			c.Close()
		}
		if !errors.Is(checkErr, ErrInvalidArgument) || !errors.Is(openErr, ErrInvalidArgument) {
			t.Errorf("%s: CheckConfig: %v; OpenConfig: %v; want ErrInvalidArgument from both", tc.name, checkErr, openErr)
			continue
		}
		var ce, oe *opError
		if !errors.As(checkErr, &ce) || !errors.As(openErr, &oe) {
			t.Errorf("%s: not *opError: %T, %T", tc.name, checkErr, openErr)
			continue
		}
		if ce.status != oe.status || ce.message != oe.message {
			t.Errorf("%s: CheckConfig says %d %q; OpenConfig says %d %q", tc.name, ce.status, ce.message, oe.status, oe.message)
		}
		if ce.op != "check" || oe.op != "open" {
			t.Errorf("%s: operations %q and %q; want check and open", tc.name, ce.op, oe.op)
		}
		if !strings.Contains(checkErr.Error(), tc.want) {
			t.Errorf("%s: message %q lacks %q", tc.name, checkErr, tc.want)
		}
	}
}

// Valid settings pass CheckConfig at once, though nothing listens where
// they point, while OpenConfig goes on to connect and fails.
func TestCheckConfigDoesNotConnect(t *testing.T) {
	three := []string{deadURL(0), deadURL(1), deadURL(2)}
	quick := []Option{WithConnectTimeout(500 * time.Millisecond), WithCommandTimeout(500 * time.Millisecond)}
	cases := []struct {
		name string
		opts []Option
	}{
		{"URL", []Option{WithURL(deadURL(0))}},
		{"TLS URL", []Option{WithURL("rediss://127.0.0.1:1/0")}},
		{"URL with every setting", []Option{
			WithURL(deadURL(0)), WithPrefix("gocheck"), WithDefaultTTL(3 * time.Second), WithPoolSize(2),
			WithReplicas(1, 50*time.Millisecond), WithMaxRetryInterval(50 * time.Millisecond),
			WithFastPath(false), WithHandoffLimit(4), WithHandoffBudget(5 * time.Millisecond), WithMaxHold(time.Minute),
		}},
		{"Redlock", []Option{WithNodes(three...)}},
		{"cluster", []Option{WithCluster(deadURL(0), "redis://127.0.0.1:2/0")}},
		{"sentinel", []Option{WithSentinel("mymaster", "127.0.0.1:1")}},
		{"sentinel with URL", []Option{WithURL(deadURL(3)), WithSentinel("mymaster", "127.0.0.1:1")}},
		{"sentinel, then a URL", []Option{WithSentinel("mymaster", "127.0.0.1:1"), WithURL(deadURL(3))}},
		{"URL, then nodes", []Option{WithURL(srv.URL), WithNodes(three...)}},
	}
	for _, tc := range cases {
		opts := append(append([]Option(nil), tc.opts...), quick...)
		start := time.Now()
		if err := CheckConfig(opts...); err != nil {
			t.Errorf("%s: CheckConfig: %v; want nil", tc.name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: CheckConfig took %v", tc.name, d)
		}
		c, err := OpenConfig(opts...)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, ErrConnection) {
			t.Errorf("%s: OpenConfig: %v; want ErrConnection", tc.name, err)
		}
	}

	// Not even a connection is opened: a loopback listener that counts
	// them sees none from CheckConfig, and one from OpenConfig.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn // held open and silent
		}
	}()
	url := "redis://" + ln.Addr().String()
	if err := CheckConfig(append([]Option{WithURL(url)}, quick...)...); err != nil {
		t.Fatalf("CheckConfig against a silent listener: %v", err)
	}
	select {
	case conn := <-accepted:
		conn.Close()
		t.Fatal("CheckConfig connected")
	case <-time.After(200 * time.Millisecond):
	}
	c, err := OpenConfig(append([]Option{WithURL(url)}, quick...)...)
	if c != nil {
		c.Close()
	}
	if !errors.Is(err, ErrConnection) {
		t.Errorf("OpenConfig against a silent listener: %v; want ErrConnection", err)
	}
	select {
	case conn := <-accepted:
		conn.Close()
	case <-time.After(time.Second):
		t.Error("OpenConfig made no connection to the listener")
	}
	ln.Close()
	for conn := range accepted {
		conn.Close()
	}
}

func TestOpenWithNewSettings(t *testing.T) {
	c := openClient(t,
		WithPrefix("gocfg"),
		WithDefaultTTL(3*time.Second),
		WithFastPath(false),
		WithHandoffLimit(4),
		WithHandoffBudget(5*time.Millisecond),
		WithMaxRetryInterval(50*time.Millisecond),
		WithMaxHold(time.Minute),
		WithReplicas(0, 0),
	)
	key := testKey(t)
	l, err := c.TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawConn(t)
	if got := lockToken(t, raw, "gocfg:"+key); got != l.Token() {
		t.Fatalf("gocfg:%s holds %v; want the token %s", key, got, l.Token())
	}
	if r := l.Remaining(); r <= 0 || r > 3*time.Second {
		t.Fatalf("Remaining() = %v; want the 3s default TTL", r)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if got := do(t, raw, "EXISTS", "gocfg:"+key); got != int64(0) {
		t.Fatalf("EXISTS after Unlock = %v", got)
	}

	// The same through OpenConfig and WithURL.
	c2, err := OpenConfig(WithURL(srv.URL), WithPrefix("gocfg2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	l2, err := c2.TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Unlock()
	if got := lockToken(t, raw, "gocfg2:"+key); got != l2.Token() {
		t.Fatalf("gocfg2:%s holds %v", key, got)
	}
}

// The test server has no replicas, so a lock that must reach one is given
// back: the setting really gets to the server.
func TestReplicasAreWaitedFor(t *testing.T) {
	c := openClient(t, WithReplicas(1, 50*time.Millisecond))
	key := testKey(t)
	l, err := c.TryLock(key)
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "replica") {
		if l != nil {
			l.Unlock()
		}
		t.Fatalf("TryLock with 1 replica required: %v; want ErrConnection about replicas", err)
	}
	if got := do(t, rawConn(t), "EXISTS", "distlock:"+key); got != int64(0) {
		t.Fatalf("the unconfirmed lock was left behind: EXISTS = %v", got)
	}
}

// Cluster and sentinel are really asked for: the test server is no
// cluster node, and nobody runs a sentinel on a free port.
func TestClusterAndSentinelAreUsed(t *testing.T) {
	_, err := OpenConfig(WithCluster(srv.URL))
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "not a Redis Cluster node") {
		t.Errorf("cluster seed on a plain server: %v", err)
	}
	// Only connecting finds that out: CheckConfig lets the seed through.
	if err := CheckConfig(WithCluster(srv.URL)); err != nil {
		t.Errorf("CheckConfig of a cluster seed on a plain server: %v; want nil", err)
	}
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	_, err = OpenConfig(WithSentinel("mymaster", addr), WithConnectTimeout(500*time.Millisecond))
	if !errors.Is(err, ErrConnection) {
		t.Errorf("sentinel nobody runs: %v; want ErrConnection", err)
	}
}

// holders counts the servers whose key holds token.
func holders(t *testing.T, servers []*redistest.Server, key, token string) int {
	t.Helper()
	n := 0
	for _, s := range servers {
		conn, err := redistest.Dial(s.Addr)
		if err != nil {
			continue // stopped
		}
		if reply, err := conn.Do("GET", key); err == nil && tokenPart(reply) == token {
			n++
		}
		conn.Close()
	}
	return n
}

func TestRedlockOverThreeServers(t *testing.T) {
	var servers []*redistest.Server
	var urls []string
	for i := 0; i < 3; i++ {
		s, err := redistest.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop() })
		servers = append(servers, s)
		urls = append(urls, s.URL)
	}
	open := func() *Client {
		c, err := OpenConfig(
			WithNodes(urls...),
			WithPrefix("gorl"),
			WithConnectTimeout(500*time.Millisecond),
			WithCommandTimeout(500*time.Millisecond),
		)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, b := open(), open()
	ctx := context.Background()

	l, err := a.Lock(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	// Acquire returns once a majority granted it; the third node may
	// answer a moment later.
	if n := holders(t, servers, "gorl:job", l.Token()); n < 2 {
		t.Fatalf("%d of 3 nodes hold the lock; want a majority", n)
	}
	if _, err := b.TryLock("job"); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("second client TryLock: %v; want ErrNotAcquired", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if n := holders(t, servers, "gorl:job", l.Token()); n != 0 {
		t.Fatalf("%d nodes still hold the lock after Unlock", n)
	}
	l2, err := b.Lock(ctx, "job", WithWaitTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence %d after %d", l2.Fence(), l.Fence())
	}
	if err := l2.Unlock(); err != nil {
		t.Fatal(err)
	}

	// One node down: two of three are still a majority.
	if err := servers[2].Stop(); err != nil {
		t.Fatal(err)
	}
	l3, err := a.Lock(ctx, "job", WithWaitTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("Lock with one of three nodes down: %v", err)
	}
	if n := holders(t, servers[:2], "gorl:job", l3.Token()); n != 2 {
		t.Fatalf("%d of the 2 live nodes hold the lock", n)
	}
	if err := l3.Unlock(); err != nil {
		t.Fatal(err)
	}

	// Two down: no majority, and the error says so.
	if err := servers[1].Stop(); err != nil {
		t.Fatal(err)
	}
	l4, err := a.TryLock("job")
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "majority") {
		if l4 != nil {
			l4.Unlock()
		}
		t.Fatalf("TryLock with two of three nodes down: %v; want ErrConnection about the majority", err)
	}
	live, err := redistest.Dial(servers[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if got, err := live.Do("EXISTS", "gorl:job"); err != nil || got != int64(0) {
		t.Fatalf("the failed acquisition left its key on the live node: EXISTS = %v, %v", got, err)
	}
	if _, err := OpenConfig(WithNodes(urls...), WithConnectTimeout(500*time.Millisecond)); !errors.Is(err, ErrConnection) {
		t.Fatalf("OpenConfig with one of three nodes up: %v; want ErrConnection", err)
	}
}
