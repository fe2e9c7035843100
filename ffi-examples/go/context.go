package distlock

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnlocked is the cause (see context.Cause) of a Lock.Context that was
// cancelled because the lock was unlocked.
var ErrUnlocked = errors.New("distlock: lock unlocked")

// Context returns a context derived from parent that is cancelled as soon
// as the lock is no longer held, so that work tied to the lock stops with
// it: when the lock is lost (its lease ran out, its key was deleted or
// taken over; noticed within a third of the TTL), when it is unlocked, or
// when parent is done. context.Cause tells which: an error wrapping ErrLost
// after a loss, ErrUnlocked after Unlock, or parent's cause.
//
// Call the returned CancelFunc once the context is no longer needed, as
// with context.WithCancel; it does not unlock the lock.
//
//	l, err := client.Lock(ctx, "jobs:nightly")
//	if err != nil { return err }
//	defer l.Unlock()
//	work, stop := l.Context(ctx)
//	defer stop()
//	return runJob(work) // sees work.Done() if the lock is lost
func (l *Lock) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	lost := l.Lost()
	go func() {
		select {
		case <-lost:
			l.mu.Lock()
			unlocked := l.unlocked
			l.mu.Unlock()
			if unlocked {
				cancel(ErrUnlocked)
			} else {
				cancel(fmt.Errorf("%s: %w", describe("lock", l.key), ErrLost))
			}
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
