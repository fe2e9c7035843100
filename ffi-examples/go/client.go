package distlock

import (
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
	// Settings the distlock_options struct cannot carry; any of them makes
	// Open go through distlock_client_open_config.
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

// WithURL sets the server's URL for OpenConfig, as Open's url argument
// does: "redis://[[user]:password@]host[:port][/db]", or "rediss://" for
// TLS. With WithSentinel only its scheme, credentials and db are used, for
// the master.
func WithURL(url string) Option {
	return func(c *clientConfig) {
		c.servers.url = &url
		c.extended = true
	}
}

// WithNodes makes the Client a Redlock over several independent Redis
// nodes, given by URL: a lock is owned only while a majority of them grant
// it. At least 3 are needed (5 is usual). It excludes a URL, WithCluster
// and WithSentinel. Each call adds to the nodes.
func WithNodes(urls ...string) Option {
	return func(c *clientConfig) {
		c.servers.nodes = append(c.servers.nodes, urls...)
		c.extended = true
	}
}

// WithCluster makes the Client use a Redis Cluster, of which urls are some
// nodes (seeds: give several, so that the Client can start while one is
// down). It excludes a URL, WithNodes and WithSentinel. Each call adds to
// the seeds.
func WithCluster(urls ...string) Option {
	return func(c *clientConfig) {
		c.servers.cluster = append(c.servers.cluster, urls...)
		c.extended = true
	}
}

// WithSentinel makes the Client find its server through Redis Sentinel:
// the sentinels at addrs ("host:port", or "redis://[user:password@]host:port"
// when they need credentials of their own) watch the master they know as
// master, and every new connection asks them where it is, so the Client
// follows a failover by itself. The master's scheme, credentials and db
// come from the URL, if one is given (Open's, or WithURL).
func WithSentinel(master string, addrs ...string) Option {
	return func(c *clientConfig) {
		c.servers.master = &master
		c.servers.sentinels = append(c.servers.sentinels, addrs...)
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
// Every Option applies; with WithSentinel, url gives the master's scheme,
// credentials and db. For Redlock or a cluster, which list their servers
// themselves, use OpenConfig.
func Open(url string, opts ...Option) (*Client, error) {
	cfg := configFrom(opts)
	if cfg.err != nil {
		return nil, withOp(cfg.err, "open")
	}
	if cfg.extended {
		if cfg.servers.url != nil {
			return nil, newError("open", statusInvalidArgument, "a URL was given both to Open and in WithURL")
		}
		cfg.servers.url = &url
		return openConfigured(cfg)
	}
	h, err := nativeOpen(url, cfg.native)
	if err != nil {
		return nil, withOp(err, "open")
	}
	return newClient(h), nil
}

// OpenConfig opens a Client whose servers are given by options, in exactly
// one way: WithURL (one server), WithNodes (Redlock over 3 or more
// independent nodes), WithCluster (Redis Cluster seeds) or WithSentinel
// (optionally with WithURL for the master's credentials and db). The
// choice is checked before anything connects: none, two at once, or fewer
// than 3 nodes give an error wrapping ErrInvalidArgument. CheckConfig
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
// (the servers given in exactly one way, URLs that parse, values in range)
// without connecting anywhere: to validate a configuration at start-up,
// or offline. It returns nil if OpenConfig(opts...) would go on to
// connect, and otherwise an error wrapping ErrInvalidArgument with the
// same message OpenConfig's error carries (its operation is "check"
// instead of "open"). A nil result says nothing about whether the
// servers can be reached, or are what they were given as (a cluster
// seed that is no cluster node is found out only by connecting).
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
// ctx is cancelled, the Lock is returned with a nil error.
//
// The returned Lock must be released with Unlock.
func (c *Client) Lock(ctx context.Context, key string, opts ...LockOption) (*Lock, error) {
	op := describe("lock", key)
	if ctx == nil {
		return nil, newError(op, statusInvalidArgument, "nil context")
	}
	cfg := lockConfigFrom(opts)
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
	return c.acquire(ctx, op, key, cfg.ttlMS, timeoutMS, deadlineBound)
}

// TryLock acquires the lock named key if it is free, and otherwise returns
// at once with an error wrapping ErrNotAcquired. It still makes a round
// trip to the server.
func (c *Client) TryLock(key string, opts ...LockOption) (*Lock, error) {
	op := describe("trylock", key)
	cfg := lockConfigFrom(opts)
	if cfg.err != nil {
		return nil, withOp(cfg.err, op)
	}
	return c.acquire(context.Background(), op, key, cfg.ttlMS, 0, false)
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

func (c *Client) acquire(ctx context.Context, op, key string, ttlMS uint64, timeoutMS int64, deadlineBound bool) (*Lock, error) {
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
		a, st, msg := nativeAcquire(h, ckey, ttlMS, 0, nil)
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
				return nil, newError(op, statusTimeout, "the lock is held by someone else")
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
	a, st, msg := nativeAcquire(h, ckey, ttlMS, timeoutMS, cancel)
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
