package distlock

import (
	"context"
	"errors"
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

func TestOpenConfigRefusesBadCombinations(t *testing.T) {
	three := []string{deadURL(0), deadURL(1), deadURL(2)}
	cases := []struct {
		name string
		open func() (*Client, error)
		want string // in the message
	}{
		{"nothing", func() (*Client, error) { return OpenConfig() }, "no server given"},
		{"two nodes", func() (*Client, error) { return OpenConfig(WithNodes(deadURL(0), deadURL(1))) }, "at least 3"},
		{"nodes and sentinel", func() (*Client, error) {
			return OpenConfig(WithNodes(three...), WithSentinel("mymaster", "127.0.0.1:1"))
		}, "choose one deployment"},
		{"nodes and cluster", func() (*Client, error) {
			return OpenConfig(WithNodes(three...), WithCluster(deadURL(0)))
		}, "choose one deployment"},
		{"cluster and sentinel", func() (*Client, error) {
			return OpenConfig(WithCluster(deadURL(0)), WithSentinel("mymaster", "127.0.0.1:1"))
		}, "choose one deployment"},
		{"URL and nodes", func() (*Client, error) { return Open(srv.URL, WithNodes(three...)) }, "distlock_config_set_url"},
		{"URL twice", func() (*Client, error) { return Open(srv.URL, WithURL(srv.URL)) }, "both"},
		{"sentinel without addresses", func() (*Client, error) { return OpenConfig(WithSentinel("mymaster")) }, "without sentinel addresses"},
		{"empty master name", func() (*Client, error) { return OpenConfig(WithSentinel("", "127.0.0.1:1")) }, "master_name is empty"},
		{"bad node URL", func() (*Client, error) {
			return OpenConfig(WithNodes(deadURL(0), "http://127.0.0.1:1/", deadURL(2)))
		}, "node url"},
		{"node URL with NUL", func() (*Client, error) {
			return OpenConfig(WithNodes(deadURL(0), deadURL(1)+"\x00", deadURL(2)))
		}, "NUL"},
		{"negative replicas", func() (*Client, error) { return Open(srv.URL, WithReplicas(-1, time.Second)) }, "replica count"},
		{"replicas without timeout", func() (*Client, error) { return Open(srv.URL, WithReplicas(1, 0)) }, "replica"},
		{"handoff limit too high", func() (*Client, error) { return Open(srv.URL, WithHandoffLimit(64)) }, "handoff_limit"},
		{"zero retry interval", func() (*Client, error) { return Open(srv.URL, WithMaxRetryInterval(0)) }, "retry interval"},
		{"negative max hold", func() (*Client, error) { return Open(srv.URL, WithMaxHold(-time.Second)) }, "max hold"},
		{"bad prefix via config", func() (*Client, error) { return OpenConfig(WithURL(srv.URL), WithPrefix("a{b}")) }, "prefix"},
	}
	for _, tc := range cases {
		start := time.Now()
		c, err := tc.open()
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v; want ErrInvalidArgument", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: message %q lacks %q", tc.name, err, tc.want)
		}
		// Refused before connecting to anything.
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v", tc.name, d)
		}
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
		{"nothing", nil, "no server given"},
		{"only settings", []Option{WithPrefix("p"), WithPoolSize(2)}, "no server given"},
		{"two nodes", []Option{WithNodes(deadURL(0), deadURL(1))}, "at least 3"},
		{"nodes and sentinel", []Option{WithNodes(three...), WithSentinel("mymaster", "127.0.0.1:1")}, "choose one deployment"},
		{"nodes and cluster", []Option{WithNodes(three...), WithCluster(deadURL(0))}, "choose one deployment"},
		{"cluster and sentinel", []Option{WithCluster(deadURL(0)), WithSentinel("mymaster", "127.0.0.1:1")}, "choose one deployment"},
		{"URL and nodes", []Option{WithURL(deadURL(0)), WithNodes(three...)}, "distlock_config_set_url"},
		{"URL and cluster", []Option{WithURL(deadURL(0)), WithCluster(deadURL(1))}, "distlock_config_set_url"},
		{"sentinel without addresses", []Option{WithSentinel("mymaster")}, "without sentinel addresses"},
		{"empty master name", []Option{WithSentinel("", "127.0.0.1:1")}, "master_name is empty"},
		{"bad URL", []Option{WithURL("http://127.0.0.1:1/")}, "url"},
		{"bad node URL", []Option{WithNodes(deadURL(0), "http://127.0.0.1:1/", deadURL(2))}, "node url"},
		{"bad cluster URL", []Option{WithCluster("http://127.0.0.1:1/")}, "cluster url"},
		{"cluster seeds in two dbs", []Option{WithCluster(deadURL(0), deadURL(1))}, "different database"},
		{"bad sentinel address", []Option{WithSentinel("mymaster", "not an address")}, "sentinel address"},
		{"bad master URL", []Option{WithSentinel("mymaster", "127.0.0.1:1"), WithURL("http://127.0.0.1:1/")}, "url"},
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
		{"sentinel with URL", []Option{WithSentinel("mymaster", "127.0.0.1:1"), WithURL(deadURL(3))}},
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
	if got := do(t, raw, "GET", "gocfg:"+key); got != l.Token() {
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
	if got := do(t, raw, "GET", "gocfg2:"+key); got != l2.Token() {
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
		if reply, err := conn.Do("GET", key); err == nil && reply == token {
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
