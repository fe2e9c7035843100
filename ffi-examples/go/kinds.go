package distlock

import (
	"context"
	"fmt"
	"math"
)

// lockKind is what one acquisition asks the native library for: a
// DISTLOCK_KIND_* and, for a permit, the semaphore's count.
type lockKind struct {
	kind    uint32
	permits uint32
}

// RWLock is a named read-write lock, made by Client.RWLock: many readers
// at once, or one writer, across every client. Its methods are those of
// sync.RWMutex, with a context and options like Client.Lock, and each
// acquisition is an ordinary *Lock with its own token, lease, renewal,
// fence and Lost channel, released with Unlock.
//
//   - Readers share the lock with each other, never with a writer.
//   - Writers are preferred: once a writer waits, new readers wait behind
//     it; a writer that gives up lets them in.
//   - A reader that crashes frees only its own share, after its lease.
//   - Not re-entrant and not upgradable: asking for the write lock while
//     holding the read lock waits on yourself.
//
// An RWLock sends nothing until a side is acquired; it is safe for
// concurrent use. Redis only: memcached, etcd and Redlock refuse it with
// an error wrapping ErrInvalidArgument, as does a key in use by a plain
// lock or a semaphore.
type RWLock struct {
	client *Client
	name   string
}

// RWLock returns the read-write lock named name. Its key is the one a
// plain lock of that name would have, so one name is one kind of lock at a
// time.
func (c *Client) RWLock(name string) *RWLock {
	return &RWLock{client: c, name: name}
}

// Name returns the lock's name, as given to Client.RWLock.
func (rw *RWLock) Name() string { return rw.name }

// RLock acquires a read share, waiting as Client.Lock does (until ctx is
// done or the WithWaitTimeout limit) while a writer holds the lock or waits
// for it.
func (rw *RWLock) RLock(ctx context.Context, opts ...LockOption) (*Lock, error) {
	op := describe("rlock", rw.name)
	cfg := lockConfigFrom(opts)
	return rw.client.wait(ctx, op, rw.name, lockKind{kind: kindRead}, notFair(cfg))
}

// TryRLock acquires a read share if no writer holds the lock or waits for
// it, and otherwise returns at once with an error wrapping
// ErrNotAcquired, as Client.TryLock does.
func (rw *RWLock) TryRLock(opts ...LockOption) (*Lock, error) {
	op := describe("tryrlock", rw.name)
	cfg := lockConfigFrom(opts)
	return rw.client.try(op, rw.name, lockKind{kind: kindRead}, notFair(cfg))
}

// Lock acquires the write lock, waiting as Client.Lock does until no
// reader or writer holds it. While it waits, new readers wait too.
func (rw *RWLock) Lock(ctx context.Context, opts ...LockOption) (*Lock, error) {
	op := describe("wlock", rw.name)
	cfg := lockConfigFrom(opts)
	return rw.client.wait(ctx, op, rw.name, lockKind{kind: kindWrite}, notFair(cfg))
}

// TryLock acquires the write lock if nobody holds it, and otherwise
// returns at once with an error wrapping ErrNotAcquired (keeping no place
// that would hold readers back).
func (rw *RWLock) TryLock(opts ...LockOption) (*Lock, error) {
	op := describe("trywlock", rw.name)
	cfg := lockConfigFrom(opts)
	return rw.client.try(op, rw.name, lockKind{kind: kindWrite}, notFair(cfg))
}

// Semaphore is a named counting semaphore, made by Client.Semaphore: at
// most its count of holders at once, across every client. Each permit is
// an ordinary *Lock with its own token, lease, renewal, fence and Lost
// channel, released with Unlock, so a crashed holder's permit comes back
// after its lease.
//
// The count travels with each acquisition, not with the semaphore: a
// Semaphore made with another count applies it to its own acquisitions at
// once, holders keep the permits they have, and after a lowered count
// nobody new gets a permit until fewer than the new count hold one. Give
// every client the same count unless you mean to change it.
//
// Counts run from 1 to MaxPermits; the native library refuses others when
// a permit is acquired, with an error wrapping ErrInvalidArgument. Redis
// only, as for RWLock.
type Semaphore struct {
	client  *Client
	name    string
	permits int
}

// Semaphore returns the semaphore named name with permits permits. Nothing
// is sent, and the count is not checked, until a permit is acquired.
func (c *Client) Semaphore(name string, permits int) *Semaphore {
	return &Semaphore{client: c, name: name, permits: permits}
}

// Name returns the semaphore's name, as given to Client.Semaphore.
func (s *Semaphore) Name() string { return s.name }

// Permits returns the permit count the Semaphore acquires with.
func (s *Semaphore) Permits() int { return s.permits }

// Acquire acquires a permit, waiting as Client.Lock does (until ctx is
// done or the WithWaitTimeout limit) while every permit is taken. Waiters
// are woken when a permit is returned.
func (s *Semaphore) Acquire(ctx context.Context, opts ...LockOption) (*Lock, error) {
	op := describe("acquire a permit of", s.name)
	cfg := lockConfigFrom(opts)
	k, cfg := s.kind(notFair(cfg))
	return s.client.wait(ctx, op, s.name, k, cfg)
}

// TryAcquire acquires a permit if one is free, and otherwise returns at
// once with an error wrapping ErrNotAcquired, as Client.TryLock does.
func (s *Semaphore) TryAcquire(opts ...LockOption) (*Lock, error) {
	op := describe("try a permit of", s.name)
	cfg := lockConfigFrom(opts)
	k, cfg := s.kind(notFair(cfg))
	return s.client.try(op, s.name, k, cfg)
}

// kind is the native kind of s's permits. A count that does not fit the
// native argument (a uint32) fails cfg; every other count goes to the
// native library, which says what it accepts.
func (s *Semaphore) kind(cfg lockConfig) (lockKind, lockConfig) {
	if (s.permits < 0 || int64(s.permits) > math.MaxUint32) && cfg.err == nil {
		cfg.err = newError("", statusInvalidArgument, fmt.Sprintf("permit count %d out of range", s.permits))
	}
	return lockKind{kind: kindPermit, permits: uint32(max(0, min(int64(s.permits), math.MaxUint32)))}, cfg
}

// notFair fails cfg if it asks for WithFair, which only plain locks take
// (the native kinds have no fair read, write or permit to ask for).
func notFair(cfg lockConfig) lockConfig {
	if cfg.fair && cfg.err == nil {
		cfg.err = newError("", statusInvalidArgument,
			"WithFair applies to plain locks only (Client.Lock and Client.TryLock)")
	}
	return cfg
}
