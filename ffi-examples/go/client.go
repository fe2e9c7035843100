package distlock

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
)

// Client is a connection to one Redis server through which locks are
// acquired. It is safe for concurrent use by many goroutines; one Client
// per process and server is the intended use, since locks taken by
// goroutines of the same Client are handed over without a round trip.
type Client struct {
	mu       sync.Mutex
	handle   clientPtr // nil once closed
	closed   bool
	inflight sync.WaitGroup         // calls using handle
	waits    map[cancelPtr]struct{} // cancel handles of waits in progress
	cleanup  runtime.Cleanup
}

// Option configures Open. Zero values keep the native library's default.
type Option func(*clientConfig)

type clientConfig struct {
	native nativeOptions
	err    error
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
func Open(url string, opts ...Option) (*Client, error) {
	var cfg clientConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, withOp(cfg.err, "open")
	}
	h, err := nativeOpen(url, cfg.native)
	if err != nil {
		return nil, withOp(err, "open")
	}
	c := &Client{handle: h, waits: make(map[cancelPtr]struct{})}
	// A safety net only: a Client dropped without Close is closed once
	// the garbage collector finds it. Closing may wait for the native
	// library's threads, so it runs outside the runtime's cleanup
	// goroutine.
	c.cleanup = runtime.AddCleanup(c, func(h clientPtr) { go nativeClose(h) }, h)
	return c, nil
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
