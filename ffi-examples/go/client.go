package distlock

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
)

// Client is a connection to one Redis server (or to a Redlock, cluster or
// sentinel deployment: see OpenConfig) through which locks are acquired.
// It is safe for concurrent use by many goroutines; one Client per process
// and deployment is the intended use, since locks taken by goroutines of
// the same Client are handed over without a round trip.
type Client struct {
	mu       sync.Mutex
	handle   clientPtr // nil once closed
	closed   bool
	inflight sync.WaitGroup         // calls using handle
	waits    map[cancelPtr]struct{} // cancel handles of waits in progress
	cleanup  runtime.Cleanup
}

// Option configures Open and OpenConfig, and CheckConfig checks it. Zero
// values keep the native library's default.
type Option func(*clientConfig)

type clientConfig struct {
	native nativeOptions
	// The choice of servers, and the settings the distlock_options struct
	// cannot carry; a server option besides Open's url, or any of those
	// settings (extended), makes Open go through
	// distlock_client_open_config.
	servers  nativeServers
	extended bool
	err      error
}

func (c *clientConfig) fail(message string) {
	if c.err == nil {
		c.err = newError("", statusInvalidArgument, message)
	}
}

// WithPrefix sets the key prefix: the lock named k lives at the Redis key
// "<prefix>:k". The default prefix is "distlock".
func WithPrefix(prefix string) Option {
	return func(c *clientConfig) { c.native.prefix = &prefix }
}

// WithDefaultTTL sets the lease of locks acquired without WithTTL
// (default 30s). Leases are renewed automatically while a lock is held.
func WithDefaultTTL(d time.Duration) Option {
	return func(c *clientConfig) {
		if d < 0 {
			c.fail("negative default TTL")
		}
		c.native.ttlMS = ceilMillis(d)
	}
}

// WithPoolSize sets the most Redis connections the Client opens at once
// (default 16).
func WithPoolSize(n int) Option {
	return func(c *clientConfig) {
		if n < 0 || int64(n) > math.MaxUint32 {
			c.fail(fmt.Sprintf("pool size %d out of range", n))
		}
		c.native.poolSize = uint32(max(0, min(int64(n), math.MaxUint32)))
	}
}

// WithConnectTimeout sets the time allowed to open a connection or to wait
// for a pooled one (default 3s).
func WithConnectTimeout(d time.Duration) Option {
	return func(c *clientConfig) {
		if d < 0 {
			c.fail("negative connect timeout")
		}
		c.native.connectTimeoutMS = ceilMillis(d)
	}
}

// WithCommandTimeout sets the time allowed for each command's reply
// (default 2s).
func WithCommandTimeout(d time.Duration) Option {
	return func(c *clientConfig) {
		if d < 0 {
			c.fail("negative command timeout")
		}
		c.native.commandTimeoutMS = ceilMillis(d)
	}
}

// The server options (WithURL, WithNodes, WithCluster, WithSentinel) build
// one choice of servers, as the Rust builder's url, nodes, cluster and
// sentinel do, and options apply in order (Open's url argument first): the
// last kind given wins. So Open(url, WithNodes(a, b, c)) is a Redlock over
// a, b and c (url is not used), and OpenConfig(WithNodes(a, b, c),
// WithURL(u)) is the one server u.

// WithURL chooses one server, replacing the servers chosen before:
// "redis://[[user]:password@]host[:port][/db]", or "rediss://" for TLS,
// "memcache://host[:port]" for one memcached server,
// "etcd://host:port[,host:port...]" (or etcds://) for an etcd cluster, or
// "zk://host:port[,host:port...][/chroot]" for a ZooKeeper ensemble.
// Given just before
// WithSentinel, it gives the master's scheme, credentials and db instead
// (its host and port are then not used).
func WithURL(url string) Option {
	return func(c *clientConfig) { c.addStep(stepURL, url) }
}

// WithNodes chooses Redlock over several independent Redis nodes, given by
// URL: a lock is owned only while a majority of them grant it. At least 3
// are needed (5 is usual); fewer are refused, with an error wrapping
// ErrInvalidArgument. It replaces a URL, cluster or sentinel chosen
// before; WithNodes calls in a row add to one list of nodes.
func WithNodes(urls ...string) Option {
	return func(c *clientConfig) {
		for _, u := range urls {
			c.addStep(stepNode, u)
		}
	}
}

// WithCluster chooses a Redis Cluster, of which urls are some nodes
// (seeds: give several, so that the Client can start while one is down).
// It replaces a URL, nodes or sentinel chosen before; WithCluster calls in
// a row add to one list of seeds.
func WithCluster(urls ...string) Option {
	return func(c *clientConfig) {
		for _, u := range urls {
			c.addStep(stepCluster, u)
		}
	}
}

// WithSentinel chooses Redis Sentinel: the sentinels at addrs ("host:port",
// or "redis://[user:password@]host:port" when they need credentials of
// their own) watch the master they know as master, and every new
// connection asks them where it is, so the Client follows a failover by
// itself. The master's scheme, credentials and db come from a URL given
// just before (Open's url, or WithURL): Open("redis://:pw@any/2",
// WithSentinel("mymaster", addrs...)). It replaces nodes or a cluster
// chosen before; a master name without addresses, or addresses without a
// name (""), is refused when the Client is opened.
func WithSentinel(master string, addrs ...string) Option {
	return func(c *clientConfig) {
		c.addStep(stepMaster, master)
		for _, a := range addrs {
			c.addStep(stepSentinel, a)
		}
	}
}

// addStep records one server setter call, in order.
func (c *clientConfig) addStep(kind int, value string) {
	c.servers.steps = append(c.servers.steps, serverStep{kind: kind, value: value})
}

// WithTLSCAFile trusts the CA certificates in the PEM file at path,
// instead of the system's trust store, for rediss:// servers: for a server
// whose certificate a private CA signed, or that is self-signed. The file
// is read and checked when the Client is opened (and by CheckConfig); an
// unreadable file, or one without a usable certificate, gives an error
// wrapping ErrInvalidArgument that names it. It replaces WithTLSCA. Custom
// certificates work with one server or Redlock, not with WithCluster or
// WithSentinel.
func WithTLSCAFile(path string) Option {
	return func(c *clientConfig) {
		c.servers.tlsCA = &pemSource{path: path}
		c.extended = true
	}
}

// WithTLSCA trusts the CA certificates in pem (PEM text), as WithTLSCAFile
// does with a file. pem is copied. It replaces WithTLSCAFile.
func WithTLSCA(pem []byte) Option {
	pem = bytes.Clone(pem)
	return func(c *clientConfig) {
		c.servers.tlsCA = &pemSource{pem: pem, fromMemory: true}
		c.extended = true
	}
}

// WithTLSClientCertFiles presents the client certificate (chain) in the
// PEM file at certPath, with the private key in the PEM file at keyPath,
// to rediss:// servers that require client certificates (mutual TLS,
// Redis's tls-auth-clients). Both files are read and checked when the
// Client is opened: the key must be the certificate's. Errors name a file
// that cannot be read and never show a key. It replaces
// WithTLSClientCert; one server or Redlock only, as for the CA.
func WithTLSClientCertFiles(certPath, keyPath string) Option {
	return func(c *clientConfig) {
		c.servers.tlsCert = &pemSource{path: certPath}
		c.servers.tlsKey = &pemSource{path: keyPath}
		c.extended = true
	}
}

// WithTLSClientCert presents the client certificate (chain) certPEM with
// the private key keyPEM (both PEM text), as WithTLSClientCertFiles does
// with files. Both are copied; the native copy of the key is overwritten
// once used. It replaces WithTLSClientCertFiles.
func WithTLSClientCert(certPEM, keyPEM []byte) Option {
	certPEM, keyPEM = bytes.Clone(certPEM), bytes.Clone(keyPEM)
	return func(c *clientConfig) {
		c.servers.tlsCert = &pemSource{pem: certPEM, fromMemory: true}
		c.servers.tlsKey = &pemSource{pem: keyPEM, fromMemory: true}
		c.extended = true
	}
}

// WithReplicas asks the server to confirm (Redis WAIT) that at least n
// replicas have each lock write and renewal, waiting at most timeout
// (1ms to 1h). A Lock that fewer replicas confirm is given back and fails
// with an error wrapping ErrConnection. n = 0 turns it off (the default).
func WithReplicas(n int, timeout time.Duration) Option {
	return func(c *clientConfig) {
		if n < 0 || int64(n) > math.MaxUint32 {
			c.fail(fmt.Sprintf("replica count %d out of range", n))
		}
		if timeout < 0 {
			c.fail("negative replica timeout")
		}
		c.servers.replicas = &[2]uint64{uint64(max(0, min(int64(n), math.MaxUint32))), ceilMillis(timeout)}
		c.extended = true
	}
}

// WithPollInterval sets how often the release feed of a server without
// notifications (memcached) looks at the locks someone waits for (default
// 20ms, at least 1ms); Redis servers notify and ignore it.
func WithPollInterval(d time.Duration) Option {
	return func(c *clientConfig) {
		if d <= 0 {
			c.fail("poll interval must be positive")
		}
		ms := ceilMillis(d)
		c.servers.pollMS = &ms
		c.extended = true
	}
}

// WithLinger turns on lease caching (default off; 0 turns it off): a
// plain lock Unlocked while no goroutine of the Client waits for it stays
// held on the server, its lease renewed, for up to d, and the Client's
// next Lock of it within that time is granted at once, without a round
// trip (counted in Stats.Lingered). Another client that wants the lock
// announces itself, and this Client then releases it at once; Close
// releases the locks it lingers on. The Client lingers only while it hears
// those announcements: its first Unlock of a name goes to the server and
// starts hearing them. It suits a worker that takes the same lock again
// and again. Redis only (one server, Sentinel or Cluster), with the
// fast path on; at most 1h, and shorter than WithMaxHold if that is set:
// anything else gives an error wrapping ErrInvalidArgument. Read-write
// locks, semaphores and fair locks never linger.
func WithLinger(d time.Duration) Option {
	return func(c *clientConfig) {
		if d < 0 {
			c.fail("negative linger")
		}
		ms := ceilMillis(d)
		c.servers.lingerMS = &ms
		c.extended = true
	}
}

// WithMaxRetryInterval sets the longest a waiting Lock goes without looking
// at the lock again (default 500ms, at least 1ms). Waiters are woken by
// release notifications; this bounds what a lost notification costs.
func WithMaxRetryInterval(d time.Duration) Option {
	return func(c *clientConfig) {
		if d <= 0 {
			c.fail("max retry interval must be positive")
		}
		ms := ceilMillis(d)
		c.servers.maxRetryMS = &ms
		c.extended = true
	}
}

// WithFastPath sets whether goroutines of the Client that want the same
// lock queue locally and pass the lease among themselves (default true).
// Off, every Lock call asks the server on its own.
func WithFastPath(on bool) Option {
	return func(c *clientConfig) {
		c.servers.fastPath = &on
		c.extended = true
	}
}

// WithHandoffLimit sets the most local hand-offs in a row (default 16, at
// most 63) before the holder asks the server whether other clients wait;
// 0 never hands off.
func WithHandoffLimit(n int) Option {
	return func(c *clientConfig) {
		if n < 0 || int64(n) > math.MaxUint32 {
			c.fail(fmt.Sprintf("handoff limit %d out of range", n))
		}
		v := uint32(max(0, min(int64(n), math.MaxUint32)))
		c.servers.handoffLimit = &v
		c.extended = true
	}
}

// WithHandoffBudget sets the longest time (default 20ms) a lease may pass
// among the Client's goroutines before the holder asks the server whether
// other clients wait.
func WithHandoffBudget(d time.Duration) Option {
	return func(c *clientConfig) {
		if d < 0 {
			c.fail("negative handoff budget")
		}
		ms := ceilMillis(d)
		c.servers.handoffBudgetMS = &ms
		c.extended = true
	}
}

// WithHolderLabel sets a label written with every acquisition, next to
// this machine's host name and this process's pid, so that operators can
// see who holds a lock (Inspect, Held, the distlock command's status): a
// service name, a job id. It is cut to 64 bytes, control characters turned
// into spaces; never put a secret in it. "" sets none (the default).
func WithHolderLabel(label string) Option {
	return func(c *clientConfig) {
		c.servers.holderLabel = &label
		c.extended = true
	}
}

// WithMaxHold caps the total time an automatically renewed lock is held:
// at the cap renewal stops and the Lock reports it lost. 0 means no cap
// (the default).
func WithMaxHold(d time.Duration) Option {
	return func(c *clientConfig) {
		if d < 0 {
			c.fail("negative max hold")
		}
		ms := ceilMillis(d)
		c.servers.maxHoldMS = &ms
		c.extended = true
	}
}

// ceilMillis converts d to whole milliseconds, rounding up so that a wait
// is never shorter than asked; negative durations give 0.
func ceilMillis(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	return uint64(ms)
}

// Open connects to the Redis server at url
// ("redis://[[user]:password@]host[:port][/db]", or "rediss://" for TLS)
// and checks that it answers. Close the Client when done with it.
//
// Every Option applies, in order, after url: a server option among them
// replaces url (Open(url, WithNodes(a, b, c)) is a Redlock over a, b and
// c), except that WithSentinel takes the master's scheme, credentials and
// db from url. OpenConfig is the same without a url.
func Open(url string, opts ...Option) (*Client, error) {
	cfg := configFrom(append([]Option{WithURL(url)}, opts...))
	if cfg.err != nil {
		return nil, withOp(cfg.err, "open")
	}
	if len(cfg.servers.steps) == 1 && !cfg.extended {
		// Nothing but the URL and the settings distlock_options carries.
		h, err := nativeOpen(url, cfg.native)
		if err != nil {
			return nil, withOp(err, "open")
		}
		return newClient(h), nil
	}
	return openConfigured(cfg)
}

// OpenConfig opens a Client whose servers are given by options: WithURL
// (one server), WithNodes (Redlock over 3 or more independent nodes),
// WithCluster (Redis Cluster seeds) or WithSentinel (with a WithURL just
// before for the master's credentials and db). Options apply in order and
// the last kind of server given wins; with none, the Client uses
// redis://127.0.0.1:6379/0. The choice is checked before anything
// connects: fewer than 3 nodes, half a sentinel setting or TLS
// certificates with a cluster or sentinel give an error wrapping
// ErrInvalidArgument, with the native library's words for it. CheckConfig
// makes the same checks without connecting.
//
//	c, err := distlock.OpenConfig(
//		distlock.WithNodes("redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"),
//		distlock.WithReplicas(1, 50*time.Millisecond),
//	)
func OpenConfig(opts ...Option) (*Client, error) {
	cfg := configFrom(opts)
	if cfg.err != nil {
		return nil, withOp(cfg.err, "open")
	}
	return openConfigured(cfg)
}

// CheckConfig checks opts exactly as OpenConfig does before it connects
// (a usable choice of servers, URLs that parse, values in range, TLS
// files that can be read and hold what they should) without connecting
// anywhere: to validate a configuration at start-up, or offline. It
// returns nil if OpenConfig(opts...) would go on to connect, and
// otherwise an error wrapping ErrInvalidArgument with the same message
// OpenConfig's error carries (its operation is "check" instead of
// "open"). A nil result says nothing about whether the servers can be
// reached, or are what they were given as (a cluster seed that is no
// cluster node is found out only by connecting).
func CheckConfig(opts ...Option) error {
	cfg := configFrom(opts)
	if cfg.err != nil {
		return withOp(cfg.err, "check")
	}
	return withOp(nativeCheckConfig(cfg.native, cfg.servers), "check")
}

func configFrom(opts []Option) clientConfig {
	var cfg clientConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}

func openConfigured(cfg clientConfig) (*Client, error) {
	h, err := nativeOpenConfig(cfg.native, cfg.servers)
	if err != nil {
		return nil, withOp(err, "open")
	}
	return newClient(h), nil
}

func newClient(h clientPtr) *Client {
	c := &Client{handle: h, waits: make(map[cancelPtr]struct{})}
	// A safety net only: a Client dropped without Close is closed once
	// the garbage collector finds it. Closing may wait for the native
	// library's threads, so it runs outside the runtime's cleanup
	// goroutine.
	c.cleanup = runtime.AddCleanup(c, func(h clientPtr) { go nativeClose(h) }, h)
	return c
}

// Close closes the Client. Lock calls still waiting return an error
// wrapping ErrClosed; Close returns once every call in progress on the
// Client has returned. Locks already acquired stay valid and must still
// be unlocked. A second Close returns an error wrapping ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed || c.handle == nil {
		c.mu.Unlock()
		return &opError{op: "close", sentinel: ErrClosed, message: "client already closed"}
	}
	c.closed = true
	for w := range c.waits {
		nativeCancelTrigger(w)
	}
	c.mu.Unlock()

	c.inflight.Wait()
	c.cleanup.Stop()
	c.mu.Lock()
	h := c.handle
	c.handle = nil
	c.mu.Unlock()
	nativeClose(h)
	return nil
}

// begin registers a call that is about to use the native client, and the
// cancel handle of its wait if any, so that Close can interrupt it and
// wait for it.
func (c *Client) begin(op string, cancel cancelPtr) (clientPtr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &opError{op: op, sentinel: ErrClosed, message: "client is closed"}
	}
	if c.handle == nil {
		return nil, &opError{op: op, sentinel: ErrClosed, message: "client was not made by Open"}
	}
	c.inflight.Add(1)
	if cancel != nil {
		c.waits[cancel] = struct{}{}
	}
	return c.handle, nil
}

// end undoes begin once the native call has returned.
func (c *Client) end(cancel cancelPtr) {
	if cancel != nil {
		c.mu.Lock()
		delete(c.waits, cancel)
		c.mu.Unlock()
	}
	c.inflight.Done()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// LockOption configures one Lock or TryLock call.
type LockOption func(*lockConfig)

type lockConfig struct {
	ttlMS   uint64
	wait    time.Duration
	waitSet bool
	fair    bool
	err     error
}

// WithTTL sets this lock's lease, instead of the Client's default. It is
// renewed automatically while the lock is held; the native library
// accepts 10ms to 24h.
func WithTTL(d time.Duration) LockOption {
	return func(c *lockConfig) {
		if d < 0 && c.err == nil {
			c.err = newError("", statusInvalidArgument, "negative TTL")
		}
		c.ttlMS = ceilMillis(d)
	}
}

// WithWaitTimeout bounds how long Lock waits: after d it gives up with an
// error wrapping ErrTimeout. A d of zero or less makes Lock try once, like
// TryLock. The context's deadline, if sooner, still applies. TryLock
// ignores this option.
func WithWaitTimeout(d time.Duration) LockOption {
	return func(c *lockConfig) {
		c.wait = d
		c.waitSet = true
	}
}

// WithFair makes Client.Lock and Client.TryLock FIFO-fair: waiters of
// every client that use WithFair on a key get the lock in the order they
// first asked, instead of whoever asks first after a release. A dead
// waiter's place runs out after the wait ahead of it plus two leases. A
// plain Lock of the same key does not queue and may barge in. For plain
// locks only: an RWLock's or a Semaphore's methods refuse it with an error
// wrapping ErrInvalidArgument. Redis only; memcached and etcd refuse it
// when the lock is acquired.
func WithFair() LockOption {
	return func(c *lockConfig) { c.fair = true }
}

// plain is what Client.Lock and Client.TryLock ask for: a plain or, with
// WithFair, a fair lock.
func (c lockConfig) plain() lockKind {
	if c.fair {
		return lockKind{kind: kindFair}
	}
	return lockKind{kind: kindPlain}
}

func lockConfigFrom(opts []LockOption) lockConfig {
	var cfg lockConfig
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// describe names an operation on key for error messages.
func describe(op, key string) string {
	const most = 80
	if len(key) > most {
		key = key[:most] + "..."
	}
	return fmt.Sprintf("%s %q", op, key)
}

// Lock acquires the lock named key, waiting as long as it takes, until ctx
// is done, or until the WithWaitTimeout limit. Cancelling ctx interrupts
// the wait in the native library at once; the error then wraps both
// ctx.Err() and ErrCancelled (context.Canceled) or ErrTimeout
// (context.DeadlineExceeded). If the lock is acquired at the very moment
// ctx is cancelled, the Lock is returned with a nil error. With WithFair,
// waiters are served in arrival order.
//
// The returned Lock must be released with Unlock.
func (c *Client) Lock(ctx context.Context, key string, opts ...LockOption) (*Lock, error) {
	cfg := lockConfigFrom(opts)
	return c.wait(ctx, describe("lock", key), key, cfg.plain(), cfg)
}

// TryLock acquires the lock named key if it is free, and otherwise returns
// at once with an error wrapping ErrNotAcquired. It still makes a round
// trip to the server. It takes no context because nothing can end it
// early: it is bounded by the client's command timeout
// (WithCommandTimeout, 2 s by default) per attempt, with at most three
// attempts when replies are lost, and by the connect timeout when a new
// connection is needed.
func (c *Client) TryLock(key string, opts ...LockOption) (*Lock, error) {
	cfg := lockConfigFrom(opts)
	return c.try(describe("trylock", key), key, cfg.plain(), cfg)
}

// wait acquires key as k, as Lock describes.
func (c *Client) wait(ctx context.Context, op, key string, k lockKind, cfg lockConfig) (*Lock, error) {
	if ctx == nil {
		return nil, newError(op, statusInvalidArgument, "nil context")
	}
	if cfg.err != nil {
		return nil, withOp(cfg.err, op)
	}
	timeoutMS := int64(-1)
	if cfg.waitSet {
		timeoutMS = int64(min(ceilMillis(cfg.wait), math.MaxInt64))
	}
	deadlineBound := false
	if dl, ok := ctx.Deadline(); ok && timeoutMS != 0 {
		left := time.Until(dl)
		if left <= 0 {
			return nil, contextError(op, context.DeadlineExceeded, context.Cause(ctx), ErrTimeout)
		}
		if ms := int64(ceilMillis(left)); timeoutMS < 0 || ms < timeoutMS {
			timeoutMS, deadlineBound = ms, true
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, contextFailure(op, ctx)
	}
	return c.acquire(ctx, op, key, k, cfg.ttlMS, timeoutMS, deadlineBound)
}

// try acquires key as k without waiting, as TryLock describes.
func (c *Client) try(op, key string, k lockKind, cfg lockConfig) (*Lock, error) {
	if cfg.err != nil {
		return nil, withOp(cfg.err, op)
	}
	return c.acquire(context.Background(), op, key, k, cfg.ttlMS, 0, false)
}

// contextFailure is the error for a wait ended by ctx.
func contextFailure(op string, ctx context.Context) error {
	err := ctx.Err()
	sentinel := ErrCancelled
	if err == context.DeadlineExceeded {
		sentinel = ErrTimeout
	}
	return contextError(op, err, context.Cause(ctx), sentinel)
}

// testHookAcquiring, when set by a test, runs just before the native
// acquire call.
var testHookAcquiring func(key string)

func (c *Client) acquire(ctx context.Context, op, key string, k lockKind, ttlMS uint64, timeoutMS int64, deadlineBound bool) (*Lock, error) {
	ckey, err := cString("key", key)
	if err != nil {
		return nil, withOp(err, op)
	}
	defer freeCString(ckey)

	// A free lock is the common case: one try without waiting needs no
	// cancel handle. Only if it is held does a wait follow, with the time
	// the try took taken off its limit.
	if timeoutMS != 0 {
		started := time.Now()
		h, err := c.begin(op, nil)
		if err != nil {
			return nil, err
		}
		a, st, msg := nativeAcquire(h, ckey, k, ttlMS, 0, nil)
		c.end(nil)
		switch {
		case st == statusOK:
			return newLock(key, a), nil
		case st != statusNotAcquired:
			return nil, newError(op, st, msg)
		case ctx.Err() != nil:
			return nil, contextFailure(op, ctx)
		}
		if timeoutMS > 0 {
			timeoutMS -= int64(time.Since(started) / time.Millisecond)
			if timeoutMS <= 0 {
				if deadlineBound {
					return nil, contextError(op, context.DeadlineExceeded, context.Cause(ctx), ErrTimeout)
				}
				return nil, newError(op, statusTimeout, msg)
			}
		}
	}

	// Every wait gets a cancel handle, so that both ctx and Close can
	// interrupt it.
	var cancel cancelPtr
	if timeoutMS != 0 {
		if cancel = nativeCancelNew(); cancel == nil {
			return nil, newError(op, statusInternal, "distlock_cancel_new failed")
		}
	}
	h, err := c.begin(op, cancel)
	if err != nil {
		if cancel != nil {
			nativeCancelFree(cancel)
		}
		return nil, err
	}

	var stopWatch func() bool
	watchDone := make(chan struct{})
	if cancel != nil && ctx.Done() != nil {
		stopWatch = context.AfterFunc(ctx, func() {
			nativeCancelTrigger(cancel)
			close(watchDone)
		})
	}
	if testHookAcquiring != nil {
		testHookAcquiring(key)
	}
	a, st, msg := nativeAcquire(h, ckey, k, ttlMS, timeoutMS, cancel)
	if stopWatch != nil && !stopWatch() {
		// The trigger has started: let it finish before the handle goes.
		<-watchDone
	}
	c.end(cancel)
	if cancel != nil {
		nativeCancelFree(cancel)
	}

	switch {
	case st == statusOK:
		return newLock(key, a), nil
	case st == statusCancelled && ctx.Err() != nil:
		return nil, contextFailure(op, ctx)
	case st == statusCancelled && c.isClosed():
		return nil, &opError{op: op, sentinel: ErrClosed, status: st, message: "client closed while waiting"}
	case st == statusTimeout && ctx.Err() != nil:
		return nil, contextFailure(op, ctx)
	case st == statusTimeout && deadlineBound:
		// The native wait ran to the context's deadline; the context's
		// own timer may not have fired yet.
		return nil, contextError(op, context.DeadlineExceeded, context.Cause(ctx), ErrTimeout)
	default:
		return nil, newError(op, st, msg)
	}
}

// Inspect reads what the server holds for the lock named key: whether it
// is held, the holder's token and remaining lease, and the last fencing
// token handed out. It makes one round trip (bounded by the command
// timeout) and changes nothing. It is for operators and tools: only a
// Lock proves ownership, and the answer may be stale as soon as it
// arrives.
func (c *Client) Inspect(key string) (LockInfo, error) {
	op := describe("inspect", key)
	ckey, err := cString("key", key)
	if err != nil {
		return LockInfo{}, withOp(err, op)
	}
	defer freeCString(ckey)
	h, err := c.begin(op, nil)
	if err != nil {
		return LockInfo{}, err
	}
	info, st, msg := nativeInspect(h, ckey)
	c.end(nil)
	if st != statusOK {
		return LockInfo{}, newError(op, st, msg)
	}
	return info, nil
}

// ReleaseToken deletes the lock named key if, and only if, it is held with
// token: the operator's way to free a lock whose holder is known to be
// dead (the token comes from Inspect, or from the holder's Lock.Token()).
// It reports whether the lock was deleted; false means it was not held
// with token (free, or held with another token), and nothing changed. The
// holder's Lock finds it lost at its next renewal (within a third of its
// TTL): Lost() is closed and Unlock returns an error wrapping ErrLost. An
// error (ErrConnection, say) means it is unknown whether the lock was
// deleted.
func (c *Client) ReleaseToken(key, token string) (bool, error) {
	op := describe("release token of", key)
	ckey, err := cString("key", key)
	if err != nil {
		return false, withOp(err, op)
	}
	defer freeCString(ckey)
	ctoken, err := cString("token", token)
	if err != nil {
		return false, withOp(err, op)
	}
	defer freeCString(ctoken)
	h, err := c.begin(op, nil)
	if err != nil {
		return false, err
	}
	released, st, msg := nativeReleaseToken(h, ckey, ctoken)
	c.end(nil)
	if st != statusOK {
		return false, newError(op, st, msg)
	}
	return released, nil
}
