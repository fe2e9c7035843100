package distlock

import (
	"fmt"
	"time"
)

// HeldLock is one lock that Client.Held found held.
type HeldLock struct {
	// Name is the lock's name, as given to Lock (without the prefix).
	Name string
	// Token is the holder's token: what ReleaseToken takes.
	Token string
	// Remaining is the holder's remaining lease, if HasRemaining.
	Remaining time.Duration
	// HasRemaining is false when the key has no expiry (set by something
	// other than distlock).
	HasRemaining bool
	// Fence is the highest fencing token handed out for the name so far,
	// if HasFence.
	Fence uint64
	// HasFence is false if no fencing token was ever handed out for the
	// name.
	HasFence bool
	// Holder describes the holder (host, pid, label), or is nil for a lock
	// taken by an older distlock or set by something else.
	Holder *Holder
}

// Held lists the locks held now under the Client's prefix whose names
// match the glob pattern ("*" for all; ?, [abc] and \ escapes as in Redis
// SCAN MATCH), at most limit of them, in no particular order; more reports
// that the listing stopped at limit and there may be others. It is for
// operators and tools: found with SCAN, a bounded number of keys per step,
// so it is safe on a busy server, and a snapshot that may miss locks taken
// or include locks freed while it runs. It is not available with
// WithCluster or on memcached (an error wrapping ErrInvalidArgument); with
// WithNodes the list comes from the first node that answers.
//
// An empty pattern, one longer than 1024 bytes, or a limit below 1 gives an
// error wrapping ErrInvalidArgument.
func (c *Client) Held(pattern string, limit int) (locks []HeldLock, more bool, err error) {
	op := "list held locks"
	if limit < 1 {
		return nil, false, newError(op, statusInvalidArgument, fmt.Sprintf("the limit must be at least 1, got %d", limit))
	}
	cpattern, err := cString("pattern", pattern)
	if err != nil {
		return nil, false, withOp(err, op)
	}
	defer freeCString(cpattern)
	h, err := c.begin(op, nil)
	if err != nil {
		return nil, false, err
	}
	locks, more, st, msg := nativeHeld(h, cpattern, limit)
	c.end(nil)
	if st != statusOK {
		return nil, false, newError(op, st, msg)
	}
	return locks, more, nil
}
