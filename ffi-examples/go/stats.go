package distlock

import "time"

// Stats is a snapshot of what a Client's locks have done since it was
// opened, as Client.Stats returns it. Every count only grows: subtract two
// snapshots for a rate.
type Stats struct {
	// Acquired counts acquisitions that returned a Lock (from the server,
	// or handed on by another goroutine of the same Client).
	Acquired uint64
	// Contended counts those of Acquired that had to wait: the lock was
	// held when asked.
	Contended uint64
	// TimedOut counts acquisitions whose wait ran out (a WithWaitTimeout
	// limit or a context deadline). A TryLock that finds the lock held is
	// not counted: it did not wait.
	TimedOut uint64
	// Cancelled counts acquisitions whose wait in the native library was
	// cancelled (its context was cancelled, or the Client closed). A Lock
	// call with a context already done when called is not counted: it
	// returns before asking.
	Cancelled uint64
	// Lost counts locks lost while held: taken over, deleted, or their
	// lease ran out before a renewal was confirmed.
	Lost uint64
	// Renewals counts leases the renewal thread extended.
	Renewals uint64
	// RenewalFailures counts renewals that failed to reach the server
	// (retried until the lease runs out).
	RenewalFailures uint64
	// LocalHandoffs counts leases handed from one goroutine of this Client
	// to the next without a round trip.
	LocalHandoffs uint64
	// FeedReconnects counts the times the release-notification connection
	// failed and was reopened.
	FeedReconnects uint64
	// WaitP50 is the median time from a Lock or TryLock call to its Lock,
	// over all of Acquired (microsecond resolution; 0 before the first).
	WaitP50 time.Duration
	// WaitP99 is the 99th percentile of the same.
	WaitP99 time.Duration
	// WaitMax is the longest of the same.
	WaitMax time.Duration
	// Lingered counts acquisitions granted from a lock this Client
	// lingered on after its release (WithLinger), without a round trip.
	Lingered uint64
}

// Stats reads the Client's counters: acquisitions (and how many had to
// wait, timed out or were cancelled), losses, renewals and their failures,
// local hand-offs, release-feed reconnects, grants from a lingering lock,
// and the spread of acquire waits. It makes no round trip and takes no lock, so it is cheap enough
// for every scrape of a metrics endpoint. The only error is one wrapping
// ErrClosed, after Close.
func (c *Client) Stats() (Stats, error) {
	const op = "stats"
	h, err := c.begin(op, nil)
	if err != nil {
		return Stats{}, err
	}
	s, st, msg := nativeStats(h)
	c.end(nil)
	if st != statusOK {
		return Stats{}, newError(op, st, msg)
	}
	return s, nil
}
