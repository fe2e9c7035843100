package distlock

// This file is the only one that calls into C. Every call that can fail and
// whose message we want goes through a small helper below that makes the
// call and reads distlock_last_error in the same cgo call: the message is
// thread-local, and a goroutine may move to another OS thread between two
// cgo calls.
//
// Where the header and the library come from is decided by the build tag
// distlock_dynamic: see link_static.go and link_dynamic.go.

/*
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

// Everything distlock_client_open_config needs, in one struct, so that a
// config is made, filled, used and freed within one cgo call (and the
// message read on the thread that failed). NULL strings and zero counts
// leave a setting out; the set_* flags say which numbers to apply.
typedef struct dlgo_config {
	const char *url;
	char **nodes;
	size_t n_nodes;
	char **cluster;
	size_t n_cluster;
	const char *master;
	char **sentinels;
	size_t n_sentinels;
	const char *prefix;
	uint64_t ttl_ms;
	uint32_t pool_size;
	uint64_t connect_timeout_ms;
	uint64_t command_timeout_ms;
	bool set_replicas;
	uint32_t replicas;
	uint64_t replicas_timeout_ms;
	bool set_max_retry_interval;
	uint64_t max_retry_interval_ms;
	bool set_fast_path;
	bool fast_path;
	bool set_handoff_limit;
	uint32_t handoff_limit;
	bool set_handoff_budget;
	uint64_t handoff_budget_ms;
	bool set_max_hold;
	uint64_t max_hold_ms;
} dlgo_config;

// Makes a distlock_config and applies the settings of in to it. On
// success *cfg is the caller's, to free; on failure it is NULL, already
// freed, and the failed setter's status returned (its message is this
// thread's last error).
static int32_t dlgo_build_config(const dlgo_config *in, distlock_config **cfg_out) {
	*cfg_out = NULL;
	distlock_config *cfg = distlock_config_new();
	if (cfg == NULL) {
		return DISTLOCK_INTERNAL;
	}
	int32_t st = DISTLOCK_OK;
	if (st == DISTLOCK_OK && in->url != NULL) st = distlock_config_set_url(cfg, in->url);
	for (size_t i = 0; st == DISTLOCK_OK && i < in->n_nodes; i++) {
		st = distlock_config_add_node(cfg, in->nodes[i]);
	}
	for (size_t i = 0; st == DISTLOCK_OK && i < in->n_cluster; i++) {
		st = distlock_config_add_cluster_url(cfg, in->cluster[i]);
	}
	if (st == DISTLOCK_OK && in->master != NULL) st = distlock_config_set_sentinel(cfg, in->master);
	for (size_t i = 0; st == DISTLOCK_OK && i < in->n_sentinels; i++) {
		st = distlock_config_add_sentinel(cfg, in->sentinels[i]);
	}
	if (st == DISTLOCK_OK && in->prefix != NULL) st = distlock_config_set_prefix(cfg, in->prefix);
	if (st == DISTLOCK_OK && in->ttl_ms > 0) st = distlock_config_set_ttl_ms(cfg, in->ttl_ms);
	if (st == DISTLOCK_OK && in->pool_size > 0) st = distlock_config_set_pool_size(cfg, in->pool_size);
	if (st == DISTLOCK_OK && in->connect_timeout_ms > 0) {
		st = distlock_config_set_connect_timeout_ms(cfg, in->connect_timeout_ms);
	}
	if (st == DISTLOCK_OK && in->command_timeout_ms > 0) {
		st = distlock_config_set_command_timeout_ms(cfg, in->command_timeout_ms);
	}
	if (st == DISTLOCK_OK && in->set_replicas) {
		st = distlock_config_set_replicas(cfg, in->replicas, in->replicas_timeout_ms);
	}
	if (st == DISTLOCK_OK && in->set_max_retry_interval) {
		st = distlock_config_set_max_retry_interval_ms(cfg, in->max_retry_interval_ms);
	}
	if (st == DISTLOCK_OK && in->set_fast_path) st = distlock_config_set_fast_path(cfg, in->fast_path);
	if (st == DISTLOCK_OK && in->set_handoff_limit) {
		st = distlock_config_set_handoff_limit(cfg, in->handoff_limit);
	}
	if (st == DISTLOCK_OK && in->set_handoff_budget) {
		st = distlock_config_set_handoff_budget_ms(cfg, in->handoff_budget_ms);
	}
	if (st == DISTLOCK_OK && in->set_max_hold) st = distlock_config_set_max_hold_ms(cfg, in->max_hold_ms);
	if (st != DISTLOCK_OK) {
		distlock_config_free(cfg);
		return st;
	}
	*cfg_out = cfg;
	return DISTLOCK_OK;
}

static int32_t dlgo_open_config(const dlgo_config *in, distlock_client **out, char **msg) {
	*out = NULL;
	distlock_config *cfg;
	int32_t st = dlgo_build_config(in, &cfg);
	if (st == DISTLOCK_OK) {
		st = distlock_client_open_config(cfg, out);
		distlock_config_free(cfg);
	}
	*msg = dlgo_message(st);
	return st;
}

static int32_t dlgo_check_config(const dlgo_config *in, char **msg) {
	distlock_config *cfg;
	int32_t st = dlgo_build_config(in, &cfg);
	if (st == DISTLOCK_OK) {
		st = distlock_config_check(cfg);
		distlock_config_free(cfg);
	}
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

// nativeServers are the servers and settings that only
// distlock_client_open_config takes; nil pointers leave a setting out.
type nativeServers struct {
	url             *string
	nodes           []string
	cluster         []string
	master          *string
	sentinels       []string
	replicas        *[2]uint64 // count, timeout in ms
	maxRetryMS      *uint64
	fastPath        *bool
	handoffLimit    *uint32
	handoffBudgetMS *uint64
	maxHoldMS       *uint64
}

// cStrings copies list to a C array of C strings; free releases both.
func cStrings(what string, list []string) (arr **C.char, free func(), err error) {
	if len(list) == 0 {
		return nil, func() {}, nil
	}
	ptrs := (**C.char)(C.calloc(C.size_t(len(list)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	slots := unsafe.Slice(ptrs, len(list))
	free = func() {
		for _, p := range slots {
			if p != nil {
				freeCString(p)
			}
		}
		C.free(unsafe.Pointer(ptrs))
	}
	for i, s := range list {
		if slots[i], err = cString(what, s); err != nil {
			free()
			return nil, nil, err
		}
	}
	return ptrs, free, nil
}

// withNativeConfig copies the settings to a C dlgo_config, passes it to
// call and frees the copies once call returns. Strings that cannot cross
// (a NUL byte) fail before call is made.
func withNativeConfig(o nativeOptions, srv nativeServers, call func(in *C.dlgo_config)) error {
	var in C.dlgo_config
	var frees []func()
	defer func() {
		for _, f := range frees {
			f()
		}
	}()
	str := func(what string, s *string) (*C.char, error) {
		if s == nil {
			return nil, nil
		}
		p, err := cString(what, *s)
		if err != nil {
			return nil, err
		}
		frees = append(frees, func() { freeCString(p) })
		return p, nil
	}
	list := func(what string, l []string) (**C.char, C.size_t, error) {
		arr, free, err := cStrings(what, l)
		if err != nil {
			return nil, 0, err
		}
		frees = append(frees, free)
		return arr, C.size_t(len(l)), nil
	}
	var err error
	if in.url, err = str("URL", srv.url); err != nil {
		return err
	}
	if in.nodes, in.n_nodes, err = list("node URL", srv.nodes); err != nil {
		return err
	}
	if in.cluster, in.n_cluster, err = list("cluster URL", srv.cluster); err != nil {
		return err
	}
	if in.master, err = str("sentinel master name", srv.master); err != nil {
		return err
	}
	if in.sentinels, in.n_sentinels, err = list("sentinel address", srv.sentinels); err != nil {
		return err
	}
	if in.prefix, err = str("prefix", o.prefix); err != nil {
		return err
	}
	in.ttl_ms = C.uint64_t(o.ttlMS)
	in.pool_size = C.uint32_t(o.poolSize)
	in.connect_timeout_ms = C.uint64_t(o.connectTimeoutMS)
	in.command_timeout_ms = C.uint64_t(o.commandTimeoutMS)
	if r := srv.replicas; r != nil {
		in.set_replicas = true
		in.replicas = C.uint32_t(r[0])
		in.replicas_timeout_ms = C.uint64_t(r[1])
	}
	if v := srv.maxRetryMS; v != nil {
		in.set_max_retry_interval, in.max_retry_interval_ms = true, C.uint64_t(*v)
	}
	if v := srv.fastPath; v != nil {
		in.set_fast_path, in.fast_path = true, C.bool(*v)
	}
	if v := srv.handoffLimit; v != nil {
		in.set_handoff_limit, in.handoff_limit = true, C.uint32_t(*v)
	}
	if v := srv.handoffBudgetMS; v != nil {
		in.set_handoff_budget, in.handoff_budget_ms = true, C.uint64_t(*v)
	}
	if v := srv.maxHoldMS; v != nil {
		in.set_max_hold, in.max_hold_ms = true, C.uint64_t(*v)
	}
	call(&in)
	return nil
}

// nativeOpenConfig opens a client through a distlock_config.
func nativeOpenConfig(o nativeOptions, srv nativeServers) (clientPtr, error) {
	var out *C.distlock_client
	var st int32
	var text string
	err := withNativeConfig(o, srv, func(in *C.dlgo_config) {
		var msg *C.char
		st = int32(C.dlgo_open_config(in, &out, &msg))
		text = takeMessage(msg)
	})
	if err != nil {
		return nil, err
	}
	if st != statusOK {
		return nil, newError("open", st, text)
	}
	return out, nil
}

// nativeCheckConfig checks the settings with distlock_config_check, as
// distlock_client_open_config would before connecting; nothing connects.
func nativeCheckConfig(o nativeOptions, srv nativeServers) error {
	var st int32
	var text string
	err := withNativeConfig(o, srv, func(in *C.dlgo_config) {
		var msg *C.char
		st = int32(C.dlgo_check_config(in, &msg))
		text = takeMessage(msg)
	})
	if err != nil {
		return err
	}
	return newError("", st, text)
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
