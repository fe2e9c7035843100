package distlock

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// lostWaitSlice bounds each native wait of the goroutine behind Lost, so
// that it checks at least this often whether it should stop.
const lostWaitSlice = 250 * time.Millisecond

// Lock is one held (or formerly held) distributed lock, returned by
// Client.Lock and Client.TryLock. Its methods are safe for concurrent
// use. Release it with Unlock; its lease is renewed automatically until
// then.
type Lock struct {
	key   string
	fence atomic.Uint64 // 0 until first read
	token string
	g     *guardState

	mu       sync.Mutex
	unlocked bool
	cleanup  runtime.Cleanup
}

// guardState owns the native guard. It is kept apart from Lock so that a
// runtime cleanup on Lock can free it, and so that the goroutine behind
// Lost does not keep the Lock reachable.
type guardState struct {
	// Held for reading by every native call that uses guard, and for
	// writing while it is freed, so that no call can use a freed handle
	// (or, worse, a new guard that happens to get the same address).
	mu    sync.RWMutex
	guard guardPtr // nil once freed

	lost      chan struct{}
	lostOnce  sync.Once     // closes lost
	watchOnce sync.Once     // starts the watcher
	watchDone chan struct{} // closed when the watcher exits; nil if none started
}

// testHookCleanup, when set by a test, runs after the runtime cleanup of
// an unreachable Lock has released and freed its guard.
var testHookCleanup func()

func newLock(key string, a acquired) *Lock {
	l := &Lock{
		key:   key,
		token: a.token,
		g:     &guardState{guard: a.guard, lost: make(chan struct{})},
	}
	// A safety net only: a Lock dropped without Unlock is released once the
	// garbage collector finds it. The native calls may block on the
	// network, so they run outside the runtime's cleanup goroutine.
	l.cleanup = runtime.AddCleanup(l, func(g *guardState) {
		go func() {
			g.releaseAndFree()
			if hook := testHookCleanup; hook != nil {
				hook()
			}
		}()
	}, l.g)
	return l
}

// Key returns the name the lock was acquired under.
func (l *Lock) Key() string { return l.key }

// Fence returns the lock's fencing token: strictly greater than that of
// every earlier acquisition of the same key. Pass it to the storage the
// lock protects and have it refuse writes carrying a smaller one.
//
// A lock taken from Redis 7 or later may be granted without its fence:
// the first call then asks the server for it (one round trip, while the
// lock is held), and the client's later locks of the key take it at once.
// Once read it stays readable after Unlock. It returns 0, which every
// fenced resource refuses, if the lock was lost or unlocked before its
// fence was first read, or the server could not be asked; TryFence says
// which.
func (l *Lock) Fence() uint64 {
	f, _ := l.TryFence()
	return f
}

// TryFence is Fence with the reason when there is none: an error wrapping
// ErrLost if the lock was lost (or unlocked) before its fence was first
// read, or ErrConnection (try again) if the server could not be asked.
func (l *Lock) TryFence() (uint64, error) {
	if f := l.fence.Load(); f != 0 {
		return f, nil
	}
	g := l.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.guard == nil {
		return 0, newError(describe("fence", l.key), statusLost,
			"the lock was unlocked before its fence was read")
	}
	f, st, msg := nativeFence(g.guard)
	if st != statusOK {
		return 0, newError(describe("fence", l.key), st, msg)
	}
	l.fence.Store(f)
	return f, nil
}

// Token returns the random value (36 characters) stored in the lock's
// Redis key while this Lock holds it. It stays readable after Unlock.
func (l *Lock) Token() string { return l.token }

// Held reports whether the lock is still held: not unlocked, not lost,
// and within its lease as this process sees it.
func (l *Lock) Held() bool {
	g := l.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.guard == nil {
		return false
	}
	held, st, _ := nativeIsHeld(g.guard)
	return st == statusOK && held
}

// Remaining returns how long the lock is certainly still held without
// another renewal; 0 once it is unlocked or lost.
func (l *Lock) Remaining() time.Duration {
	g := l.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.guard == nil {
		return 0
	}
	d, st := nativeRemaining(g.guard)
	if st != statusOK {
		return 0
	}
	return d
}

// Extend restarts the lease at its full TTL now. Renewal is automatic;
// Extend is for callers who want certainty before a long step. It takes
// no context: it is one round trip, bounded by the client's command
// timeout. It returns
// an error wrapping ErrLost if the lock is no longer held (including after
// Unlock), or ErrConnection, ErrAuth or ErrRedis if the server could not
// confirm.
func (l *Lock) Extend() error {
	op := describe("extend", l.key)
	g := l.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.guard == nil {
		return newError(op, statusLost, "lock was unlocked")
	}
	st, msg := nativeExtend(g.guard)
	return newError(op, st, msg)
}

// Lost returns a channel that is closed once the lock is no longer held:
// its lease ran out, its key was deleted or taken over (noticed at the
// next automatic renewal, within a third of the TTL), or it was unlocked.
// The first call starts a goroutine that watches the lock; it exits by the
// time Unlock returns.
func (l *Lock) Lost() <-chan struct{} {
	g := l.g
	g.watchOnce.Do(func() {
		// Decided under the read lock, so that releaseAndFree (under the
		// write lock) sees either no watcher or its watchDone.
		g.mu.RLock()
		defer g.mu.RUnlock()
		if g.guard == nil {
			g.closeLost()
			return
		}
		g.watchDone = make(chan struct{})
		go g.watch()
	})
	return g.lost
}

// Unlock releases the lock and frees its native guard. It returns nil if
// the lock was held until now; an error wrapping ErrLost if it had been
// lost already (nothing belonging to another owner is deleted); an error
// wrapping ErrConnection or ErrRedis if the release could not be confirmed
// (the lease then simply runs out); and an error wrapping
// ErrInvalidArgument if the Lock was already unlocked. It takes no
// context: it is bounded by two command timeouts (a failed release is
// tried once more on a fresh connection), and a lock whose release did not
// get through is freed by its lease anyway.
func (l *Lock) Unlock() error {
	op := describe("unlock", l.key)
	l.mu.Lock()
	if l.unlocked {
		l.mu.Unlock()
		return newError(op, statusInvalidArgument, "lock already unlocked")
	}
	l.unlocked = true
	l.cleanup.Stop()
	l.mu.Unlock()
	return withOp(l.g.releaseAndFree(), op)
}

// releaseAndFree releases the lock if still held, frees the guard exactly
// once, closes the lost channel and waits for the watcher to exit.
func (g *guardState) releaseAndFree() error {
	st, msg := statusLost, "lock was already freed"
	g.mu.RLock()
	if g.guard != nil {
		// Releasing also wakes the watcher out of its native wait, so the
		// write lock below is not held up by it.
		st, msg = nativeRelease(g.guard)
	}
	g.mu.RUnlock()

	g.mu.Lock()
	if g.guard != nil {
		nativeFree(g.guard)
		g.guard = nil
	}
	watchDone := g.watchDone
	g.mu.Unlock()
	g.closeLost()
	if watchDone != nil {
		<-watchDone
	}
	return newError("", st, msg)
}

func (g *guardState) closeLost() {
	g.lostOnce.Do(func() { close(g.lost) })
}

// watch waits, in slices, until the lock is lost or the guard is freed,
// then closes the lost channel.
func (g *guardState) watch() {
	defer close(g.watchDone)
	for {
		g.mu.RLock()
		if g.guard == nil {
			g.mu.RUnlock()
			break
		}
		st := nativeWaitLost(g.guard, lostWaitSlice)
		g.mu.RUnlock()
		if st != statusTimeout {
			break
		}
	}
	g.closeLost()
}
