package distlock

import (
	"errors"
	"fmt"
)

// The errors distlock returns wrap one of these; test for them with
// errors.Is. The wrapping error's message adds what the native library
// said about the failure.
var (
	// ErrNotAcquired means a try (TryLock, or Lock with a zero wait
	// timeout) found the lock held by someone else.
	ErrNotAcquired = errors.New("distlock: lock held by another owner")
	// ErrTimeout means the wait for the lock ran out before it was
	// acquired.
	ErrTimeout = errors.New("distlock: timed out")
	// ErrLost means the lock is no longer held: its lease ran out, its key
	// was deleted or taken over, or it was already unlocked.
	ErrLost = errors.New("distlock: lock lost")
	// ErrCancelled means a wait was cancelled. Lock returns it together
	// with the context's error when its context is done.
	ErrCancelled = errors.New("distlock: cancelled")
	// ErrInvalidArgument means a bad argument: an empty, too long or
	// NUL-containing key or URL, an out-of-range option, or a second
	// Unlock of the same lock.
	ErrInvalidArgument = errors.New("distlock: invalid argument")
	// ErrConnection means the server was unreachable, a connection failed
	// or a command timed out. Retrying later may succeed.
	ErrConnection = errors.New("distlock: connection failed")
	// ErrAuth means the server refused the credentials.
	ErrAuth = errors.New("distlock: authentication failed")
	// ErrRedis means the server replied with another error.
	ErrRedis = errors.New("distlock: redis error")
	// ErrInternal means a bug in the native library.
	ErrInternal = errors.New("distlock: internal error")
	// ErrClosed means the Client was closed, before or during the call.
	ErrClosed = errors.New("distlock: client closed")
)

// sentinelFor maps a native status to its sentinel error.
func sentinelFor(st int32) error {
	switch st {
	case statusNotAcquired:
		return ErrNotAcquired
	case statusTimeout:
		return ErrTimeout
	case statusLost:
		return ErrLost
	case statusCancelled:
		return ErrCancelled
	case statusInvalidArgument:
		return ErrInvalidArgument
	case statusConnection:
		return ErrConnection
	case statusAuth:
		return ErrAuth
	case statusRedis:
		return ErrRedis
	default:
		return ErrInternal
	}
}

// opError is a failed operation: which one, the sentinel it wraps and the
// native library's message.
type opError struct {
	op       string // "open", `acquire "jobs"`, ...; empty if none
	sentinel error
	status   int32
	message  string // from distlock_last_error, or ours; may be empty
}

// Error is the sentinel's text, the operation and the native message.
func (e *opError) Error() string {
	s := e.sentinel.Error()
	if e.op != "" {
		s += ": " + e.op
	}
	if e.message != "" {
		s += ": " + e.message
	}
	return s
}

// Unwrap returns the sentinel, for errors.Is.
func (e *opError) Unwrap() error { return e.sentinel }

// newError wraps the sentinel of status st with op and message.
func newError(op string, st int32, message string) error {
	if st == statusOK {
		return nil
	}
	if st != statusInternal && sentinelFor(st) == ErrInternal {
		// A status this package does not know: keep its name.
		message = fmt.Sprintf("%s (status %d): %s", statusName(st), st, message)
	}
	return &opError{op: op, sentinel: sentinelFor(st), status: st, message: message}
}

// withOp sets the operation of an error made by newError before the
// operation was known.
func withOp(err error, op string) error {
	var e *opError
	if errors.As(err, &e) && e.op == "" {
		copied := *e
		copied.op = op
		return &copied
	}
	return err
}

// contextError wraps a context's error together with the distlock
// sentinel that describes the same outcome, so both errors.Is(err,
// context.Canceled) and errors.Is(err, ErrCancelled) hold.
func contextError(op string, ctxErr, cause, sentinel error) error {
	if cause != nil && cause != ctxErr {
		return fmt.Errorf("distlock: %s: %w (%w; cause: %w)", op, ctxErr, sentinel, cause)
	}
	return fmt.Errorf("distlock: %s: %w (%w)", op, ctxErr, sentinel)
}
