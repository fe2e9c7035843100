package distlock

// This file is the only one that talks to C. Every call that can fail and
// whose message we want goes through a small helper below that makes the
// call and reads distlock_last_error in the same cgo call: the message is
// thread-local, and a goroutine may move to another OS thread between two
// cgo calls.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -ldistlock -Wl,-rpath,${SRCDIR}/../../target/release

#include <stdlib.h>
#include <string.h>
#include "distlock.h"

// A copy of this thread's last error message for a failed status, owned
// by the caller (free it), or NULL on success or when there is none.
static char *dlgo_message(int32_t status) {
	if (status == DISTLOCK_OK) {
		return NULL;
	}
	const char *m = distlock_last_error();
	return m == NULL ? NULL : strdup(m);
}

static int32_t dlgo_open(const char *url, const distlock_options *opts,
		distlock_client **out, char **msg) {
	int32_t st = distlock_client_open(url, opts, out);
	*msg = dlgo_message(st);
	return st;
}

// What a successful acquisition hands back in one crossing.
typedef struct dlgo_acquired {
	distlock_guard *guard;
	uint64_t fence;
	char token[DISTLOCK_TOKEN_LEN + 1];
} dlgo_acquired;

static int32_t dlgo_acquire(distlock_client *client, const char *key,
		uint64_t ttl_ms, int64_t timeout_ms, distlock_cancel *cancel,
		dlgo_acquired *out, char **msg) {
	out->guard = NULL;
	int32_t st = distlock_acquire(client, key, ttl_ms, timeout_ms, cancel, &out->guard);
	if (st == DISTLOCK_OK) {
		st = distlock_guard_fence(out->guard, &out->fence);
	}
	if (st == DISTLOCK_OK) {
		st = distlock_guard_token(out->guard, out->token, sizeof out->token);
	}
	*msg = dlgo_message(st);
	if (st != DISTLOCK_OK && out->guard != NULL) {
		distlock_guard_free(out->guard);
		out->guard = NULL;
	}
	return st;
}

static int32_t dlgo_release(distlock_guard *guard, char **msg) {
	int32_t st = distlock_guard_release(guard);
	*msg = dlgo_message(st);
	return st;
}

static int32_t dlgo_extend(distlock_guard *guard, char **msg) {
	int32_t st = distlock_guard_extend(guard);
	*msg = dlgo_message(st);
	return st;
}

static int32_t dlgo_is_held(const distlock_guard *guard, bool *held, char **msg) {
	int32_t st = distlock_guard_is_held(guard, held);
	*msg = dlgo_message(st);
	return st;
}
*/
import "C"

import (
	"strings"
	"time"
	"unsafe"
)

// Status codes of the C API, taken from the header.
const (
	statusOK              = int32(C.DISTLOCK_OK)
	statusNotAcquired     = int32(C.DISTLOCK_NOT_ACQUIRED)
	statusTimeout         = int32(C.DISTLOCK_TIMEOUT)
	statusLost            = int32(C.DISTLOCK_LOST)
	statusCancelled       = int32(C.DISTLOCK_CANCELLED)
	statusInvalidArgument = int32(C.DISTLOCK_INVALID_ARGUMENT)
	statusConnection      = int32(C.DISTLOCK_CONNECTION)
	statusAuth            = int32(C.DISTLOCK_AUTH)
	statusRedis           = int32(C.DISTLOCK_REDIS)
	statusInternal        = int32(C.DISTLOCK_INTERNAL)
)

type (
	clientPtr = *C.distlock_client
	guardPtr  = *C.distlock_guard
	cancelPtr = *C.distlock_cancel
)

// Version returns the version of the native distlock library in use.
func Version() string {
	return C.GoString(C.distlock_version())
}

// statusName is the C name of a status code, e.g. "DISTLOCK_TIMEOUT".
func statusName(st int32) string {
	return C.GoString(C.distlock_status_name(C.int32_t(st)))
}

// takeMessage turns a message returned by a helper into a Go string and
// frees the C copy.
func takeMessage(msg *C.char) string {
	if msg == nil {
		return ""
	}
	s := C.GoString(msg)
	C.free(unsafe.Pointer(msg))
	return s
}

// cString copies s to C memory; the caller frees it with freeCString. A
// string with a NUL byte cannot cross, so it is refused here rather than
// silently cut short by C.
func cString(what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, newError("", statusInvalidArgument, what+" contains a NUL byte")
	}
	return C.CString(s), nil
}

func freeCString(s *C.char) { C.free(unsafe.Pointer(s)) }

// nativeOptions are the client settings in the units of the C API.
type nativeOptions struct {
	prefix           *string
	ttlMS            uint64
	poolSize         uint32
	connectTimeoutMS uint64
	commandTimeoutMS uint64
}

func nativeOpen(url string, o nativeOptions) (clientPtr, error) {
	curl, err := cString("URL", url)
	if err != nil {
		return nil, err
	}
	defer freeCString(curl)
	var opts C.distlock_options
	if o.prefix != nil {
		p, err := cString("prefix", *o.prefix)
		if err != nil {
			return nil, err
		}
		defer freeCString(p)
		opts.prefix = p
	}
	opts.ttl_ms = C.uint64_t(o.ttlMS)
	opts.pool_size = C.uint32_t(o.poolSize)
	opts.connect_timeout_ms = C.uint64_t(o.connectTimeoutMS)
	opts.command_timeout_ms = C.uint64_t(o.commandTimeoutMS)
	var out *C.distlock_client
	var msg *C.char
	st := int32(C.dlgo_open(curl, &opts, &out, &msg))
	text := takeMessage(msg)
	if st != statusOK {
		return nil, newError("open", st, text)
	}
	return out, nil
}

func nativeClose(c clientPtr) { C.distlock_client_close(c) }

func nativeCancelNew() cancelPtr { return C.distlock_cancel_new() }

func nativeCancelTrigger(c cancelPtr) { C.distlock_cancel_trigger(c) }

func nativeCancelFree(c cancelPtr) { C.distlock_cancel_free(c) }

// acquired is what a successful nativeAcquire returns.
type acquired struct {
	guard guardPtr
	fence uint64
	token string
}

// nativeAcquire calls distlock_acquire; on success it also reads the
// guard's fence and token, which never change.
func nativeAcquire(c clientPtr, key *C.char, ttlMS uint64, timeoutMS int64, cancel cancelPtr) (acquired, int32, string) {
	var out C.dlgo_acquired
	var msg *C.char
	st := int32(C.dlgo_acquire(c, key, C.uint64_t(ttlMS), C.int64_t(timeoutMS), cancel, &out, &msg))
	text := takeMessage(msg)
	if st != statusOK {
		return acquired{}, st, text
	}
	return acquired{
		guard: out.guard,
		fence: uint64(out.fence),
		token: C.GoString(&out.token[0]),
	}, st, ""
}

func nativeRelease(g guardPtr) (int32, string) {
	var msg *C.char
	st := int32(C.dlgo_release(g, &msg))
	return st, takeMessage(msg)
}

func nativeFree(g guardPtr) { C.distlock_guard_free(g) }

func nativeExtend(g guardPtr) (int32, string) {
	var msg *C.char
	st := int32(C.dlgo_extend(g, &msg))
	return st, takeMessage(msg)
}

func nativeIsHeld(g guardPtr) (bool, int32, string) {
	var held C.bool
	var msg *C.char
	st := int32(C.dlgo_is_held(g, &held, &msg))
	return bool(held), st, takeMessage(msg)
}

func nativeRemaining(g guardPtr) (time.Duration, int32) {
	var ms C.uint64_t
	st := int32(C.distlock_guard_remaining_ms(g, &ms))
	return time.Duration(ms) * time.Millisecond, st
}

// nativeWaitLost waits at most timeout for the lock to be lost; it
// reports statusLost, statusTimeout or statusInvalidArgument.
func nativeWaitLost(g guardPtr, timeout time.Duration) int32 {
	return int32(C.distlock_guard_wait_lost(g, C.int64_t(timeout/time.Millisecond)))
}
