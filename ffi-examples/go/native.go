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

// The kinds of server step: one server setter call each, applied in the
// order the options gave them.
#define DLGO_STEP_URL 0
#define DLGO_STEP_NODE 1
#define DLGO_STEP_CLUSTER 2
#define DLGO_STEP_MASTER 3
#define DLGO_STEP_SENTINEL 4

// Everything distlock_client_open_config needs, in one struct, so that a
// config is made, filled, used and freed within one cgo call (and the
// message read on the thread that failed). NULL strings and zero counts
// leave a setting out; the set_* flags say which numbers to apply.
typedef struct dlgo_config {
	const int *step_kinds;
	char **step_values;
	size_t n_steps;
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
	bool set_poll_interval;
	uint64_t poll_interval_ms;
	bool set_fast_path;
	bool fast_path;
	bool set_handoff_limit;
	uint32_t handoff_limit;
	bool set_handoff_budget;
	uint64_t handoff_budget_ms;
	bool set_max_hold;
	uint64_t max_hold_ms;
	bool set_linger;
	uint64_t linger_ms;
	// TLS: a CA from a file or from PEM bytes (set_tls_ca_pem), a client
	// certificate and key from files or from PEM bytes.
	const char *tls_ca_file;
	bool set_tls_ca_pem;
	const uint8_t *tls_ca_pem;
	size_t tls_ca_pem_len;
	const char *tls_cert_file;
	const char *tls_key_file;
	bool set_tls_client_pem;
	const uint8_t *tls_cert_pem;
	size_t tls_cert_pem_len;
	const uint8_t *tls_key_pem;
	size_t tls_key_pem_len;
	const char *holder_label;
} dlgo_config;

static int32_t dlgo_server_step(distlock_config *cfg, int kind, const char *value) {
	switch (kind) {
	case DLGO_STEP_URL:
		return distlock_config_set_url(cfg, value);
	case DLGO_STEP_NODE:
		return distlock_config_add_node(cfg, value);
	case DLGO_STEP_CLUSTER:
		return distlock_config_add_cluster_url(cfg, value);
	case DLGO_STEP_MASTER:
		return distlock_config_set_sentinel(cfg, value);
	case DLGO_STEP_SENTINEL:
		return distlock_config_add_sentinel(cfg, value);
	default:
		return DISTLOCK_INTERNAL;
	}
}

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
	for (size_t i = 0; st == DISTLOCK_OK && i < in->n_steps; i++) {
		st = dlgo_server_step(cfg, in->step_kinds[i], in->step_values[i]);
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
	if (st == DISTLOCK_OK && in->set_poll_interval) {
		st = distlock_config_set_poll_interval_ms(cfg, in->poll_interval_ms);
	}
	if (st == DISTLOCK_OK && in->set_fast_path) st = distlock_config_set_fast_path(cfg, in->fast_path);
	if (st == DISTLOCK_OK && in->set_handoff_limit) {
		st = distlock_config_set_handoff_limit(cfg, in->handoff_limit);
	}
	if (st == DISTLOCK_OK && in->set_handoff_budget) {
		st = distlock_config_set_handoff_budget_ms(cfg, in->handoff_budget_ms);
	}
	if (st == DISTLOCK_OK && in->set_max_hold) st = distlock_config_set_max_hold_ms(cfg, in->max_hold_ms);
	// After the servers, the fast path and the max hold, which it is
	// checked against.
	if (st == DISTLOCK_OK && in->set_linger) st = distlock_config_set_linger_ms(cfg, in->linger_ms);
	if (st == DISTLOCK_OK && in->tls_ca_file != NULL) {
		st = distlock_config_set_tls_ca_file(cfg, in->tls_ca_file);
	}
	if (st == DISTLOCK_OK && in->set_tls_ca_pem) {
		st = distlock_config_set_tls_ca_pem(cfg, in->tls_ca_pem, in->tls_ca_pem_len);
	}
	if (st == DISTLOCK_OK && in->tls_cert_file != NULL) {
		st = distlock_config_set_tls_client_cert_files(cfg, in->tls_cert_file, in->tls_key_file);
	}
	if (st == DISTLOCK_OK && in->set_tls_client_pem) {
		st = distlock_config_set_tls_client_cert_pem(cfg, in->tls_cert_pem, in->tls_cert_pem_len,
			in->tls_key_pem, in->tls_key_pem_len);
	}
	if (st == DISTLOCK_OK && in->holder_label != NULL) {
		st = distlock_config_set_holder_label(cfg, in->holder_label);
	}
	if (st != DISTLOCK_OK) {
		distlock_config_free(cfg);
		return st;
	}
	*cfg_out = cfg;
	return DISTLOCK_OK;
}

// A copy of len bytes in C memory (at least one byte allocated, so that
// an empty input is a non-NULL pointer with length 0), or NULL if out of
// memory.
static uint8_t *dlgo_copy_bytes(const void *p, size_t len) {
	uint8_t *copy = malloc(len > 0 ? len : 1);
	if (copy != NULL && len > 0) memcpy(copy, p, len);
	return copy;
}

// Overwrites len bytes at p with zeros (through a volatile pointer, so
// the compiler keeps the stores) and frees it: for copies of private keys.
static void dlgo_wipe_free(uint8_t *p, size_t len) {
	if (p == NULL) return;
	volatile uint8_t *v = p;
	for (size_t i = 0; i < len; i++) v[i] = 0;
	free(p);
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

// What a successful acquisition hands back in one crossing. Not the
// fence: a lock may be granted without one, given when first read.
typedef struct dlgo_acquired {
	distlock_guard *guard;
	char token[DISTLOCK_TOKEN_LEN + 1];
} dlgo_acquired;

static int32_t dlgo_acquire(distlock_client *client, const char *key,
		uint32_t kind, uint32_t permits, uint64_t ttl_ms, int64_t timeout_ms,
		distlock_cancel *cancel, dlgo_acquired *out, char **msg) {
	out->guard = NULL;
	int32_t st = distlock_acquire_kind(client, key, kind, permits, ttl_ms, timeout_ms, cancel,
		&out->guard);
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

static int32_t dlgo_fence(distlock_guard *guard, uint64_t *fence, char **msg) {
	int32_t st = distlock_guard_fence(guard, fence);
	*msg = dlgo_message(st);
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

// What distlock_client_inspect says, with the holder's token copied to C
// memory the caller frees (NULL when the lock is free).
typedef struct dlgo_inspected {
	distlock_lock_info info;
	char *token;
} dlgo_inspected;

static int32_t dlgo_inspect(distlock_client *client, const char *key, dlgo_inspected *out,
		char **msg) {
	char small[DISTLOCK_TOKEN_LEN + 1];
	char *buf = small, *big = NULL;
	size_t cap = sizeof small;
	out->token = NULL;
	out->info.struct_size = sizeof out->info;
	int32_t st = distlock_client_inspect(client, key, buf, cap, &out->info);
	// A value longer than any token distlock writes (a key set by
	// something else): again with room for it. It may change in between,
	// hence a few tries.
	for (int i = 0; i < 3 && st == DISTLOCK_INVALID_ARGUMENT && out->info.held &&
			out->info.token_len >= cap; i++) {
		char *grown = realloc(big, out->info.token_len + 1);
		if (grown == NULL) break;
		big = buf = grown;
		cap = out->info.token_len + 1;
		st = distlock_client_inspect(client, key, buf, cap, &out->info);
	}
	*msg = dlgo_message(st);
	if (st == DISTLOCK_OK && out->info.held) {
		out->token = malloc(out->info.token_len + 1);
		if (out->token != NULL) memcpy(out->token, buf, out->info.token_len + 1);
	}
	free(big);
	return st;
}

static int32_t dlgo_stats(distlock_client *client, distlock_stats *out, char **msg) {
	out->struct_size = sizeof *out;
	int32_t st = distlock_client_stats(client, out);
	*msg = dlgo_message(st);
	return st;
}

// The Go function that receives log lines (log.go exports it), and the
// C-typed callback that hands them on.
extern void dlgoLog(int32_t level, char *target, char *message, void *user);

static void dlgo_log_shim(int32_t level, const char *target, const char *message, void *user) {
	dlgoLog(level, (char *)target, (char *)message, user);
}

// Sends the library's log lines at level and above to dlgoLog; 0 stops them.
static int32_t dlgo_set_log(int32_t level, char **msg) {
	int32_t st = distlock_set_log_callback(level, level > 0 ? dlgo_log_shim : NULL, NULL);
	*msg = dlgo_message(st);
	return st;
}

static int32_t dlgo_held(distlock_client *client, const char *pattern, size_t limit,
		distlock_held **out, size_t *count, bool *more, char **msg) {
	int32_t st = distlock_client_held(client, pattern, limit, out, count, more);
	*msg = dlgo_message(st);
	return st;
}

static int32_t dlgo_held_get(const distlock_held *held, size_t index, distlock_held_lock *out) {
	out->struct_size = sizeof *out;
	return distlock_held_get(held, index, out);
}

static int32_t dlgo_release_token(distlock_client *client, const char *key, const char *token,
		bool *released, char **msg) {
	int32_t st = distlock_client_release_token(client, key, token, released);
	*msg = dlgo_message(st);
	return st;
}
*/
import "C"

import (
	"math"
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

// The kinds of lock distlock_acquire_kind takes.
const (
	kindPlain  = uint32(C.DISTLOCK_KIND_PLAIN)
	kindRead   = uint32(C.DISTLOCK_KIND_READ)
	kindWrite  = uint32(C.DISTLOCK_KIND_WRITE)
	kindPermit = uint32(C.DISTLOCK_KIND_PERMIT)
	kindFair   = uint32(C.DISTLOCK_KIND_FAIR)
)

// MaxPermits is the most permits a Semaphore may have (the native
// library's DISTLOCK_MAX_PERMITS).
const MaxPermits = int(C.DISTLOCK_MAX_PERMITS)

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

// Kinds of serverStep, as the C helper knows them.
const (
	stepURL      = int(C.DLGO_STEP_URL)
	stepNode     = int(C.DLGO_STEP_NODE)
	stepCluster  = int(C.DLGO_STEP_CLUSTER)
	stepMaster   = int(C.DLGO_STEP_MASTER)
	stepSentinel = int(C.DLGO_STEP_SENTINEL)
)

// stepNames name the value of each kind of step in messages.
var stepNames = map[int]string{
	stepURL:      "URL",
	stepNode:     "node URL",
	stepCluster:  "cluster URL",
	stepMaster:   "sentinel master name",
	stepSentinel: "sentinel address",
}

// serverStep is one call of a server setter of distlock_config.
type serverStep struct {
	kind  int
	value string
}

// pemSource is PEM from a file (path) or from memory (pem, when fromMemory).
type pemSource struct {
	path       string
	pem        []byte
	fromMemory bool
}

// nativeServers are the servers and settings that only
// distlock_client_open_config takes; nil pointers leave a setting out.
// The server steps are applied in order, as the options gave them.
type nativeServers struct {
	steps           []serverStep
	replicas        *[2]uint64 // count, timeout in ms
	maxRetryMS      *uint64
	pollMS          *uint64
	fastPath        *bool
	handoffLimit    *uint32
	handoffBudgetMS *uint64
	maxHoldMS       *uint64
	lingerMS        *uint64
	tlsCA           *pemSource
	tlsCert         *pemSource
	tlsKey          *pemSource // set together with tlsCert, from the same kind of source
	holderLabel     *string
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
	bytes := func(b []byte, wipe bool) (*C.uint8_t, C.size_t) {
		p := C.dlgo_copy_bytes(unsafe.Pointer(unsafe.SliceData(b)), C.size_t(len(b)))
		if wipe {
			frees = append(frees, func() { C.dlgo_wipe_free(p, C.size_t(len(b))) })
		} else {
			frees = append(frees, func() { C.free(unsafe.Pointer(p)) })
		}
		return p, C.size_t(len(b))
	}
	var err error
	if n := len(srv.steps); n > 0 {
		kinds := (*C.int)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.int(0)))))
		values := (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		kindSlots, valueSlots := unsafe.Slice(kinds, n), unsafe.Slice(values, n)
		frees = append(frees, func() {
			for _, p := range valueSlots {
				if p != nil {
					freeCString(p)
				}
			}
			C.free(unsafe.Pointer(values))
			C.free(unsafe.Pointer(kinds))
		})
		for i, step := range srv.steps {
			kindSlots[i] = C.int(step.kind)
			if valueSlots[i], err = cString(stepNames[step.kind], step.value); err != nil {
				return err
			}
		}
		in.step_kinds, in.step_values, in.n_steps = kinds, values, C.size_t(n)
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
	if v := srv.pollMS; v != nil {
		in.set_poll_interval, in.poll_interval_ms = true, C.uint64_t(*v)
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
	if v := srv.lingerMS; v != nil {
		in.set_linger, in.linger_ms = true, C.uint64_t(*v)
	}
	if ca := srv.tlsCA; ca != nil {
		if ca.fromMemory {
			in.set_tls_ca_pem = true
			in.tls_ca_pem, in.tls_ca_pem_len = bytes(ca.pem, false)
		} else if in.tls_ca_file, err = str("TLS CA file path", &ca.path); err != nil {
			return err
		}
	}
	if cert, key := srv.tlsCert, srv.tlsKey; cert != nil && key != nil {
		if cert.fromMemory {
			in.set_tls_client_pem = true
			in.tls_cert_pem, in.tls_cert_pem_len = bytes(cert.pem, false)
			in.tls_key_pem, in.tls_key_pem_len = bytes(key.pem, true)
		} else {
			if in.tls_cert_file, err = str("TLS client certificate file path", &cert.path); err != nil {
				return err
			}
			if in.tls_key_file, err = str("TLS client key file path", &key.path); err != nil {
				return err
			}
		}
	}
	if in.holder_label, err = str("holder label", srv.holderLabel); err != nil {
		return err
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
	token string
}

// nativeAcquire calls distlock_acquire_kind for k; on success it also
// reads the guard's token, which never changes.
func nativeAcquire(c clientPtr, key *C.char, k lockKind, ttlMS uint64, timeoutMS int64, cancel cancelPtr) (acquired, int32, string) {
	var out C.dlgo_acquired
	var msg *C.char
	st := int32(C.dlgo_acquire(c, key, C.uint32_t(k.kind), C.uint32_t(k.permits), C.uint64_t(ttlMS),
		C.int64_t(timeoutMS), cancel, &out, &msg))
	text := takeMessage(msg)
	if st != statusOK {
		return acquired{}, st, text
	}
	return acquired{
		guard: out.guard,
		token: C.GoString(&out.token[0]),
	}, st, ""
}

// nativeFence reads the guard's fence, which the first time may ask the
// server for it.
func nativeFence(g guardPtr) (uint64, int32, string) {
	var fence C.uint64_t
	var msg *C.char
	st := int32(C.dlgo_fence(g, &fence, &msg))
	return uint64(fence), st, takeMessage(msg)
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

// LockInfo is what the server held for one lock when Client.Inspect
// looked.
type LockInfo struct {
	// Held reports whether someone held the lock.
	Held bool
	// Token is the holder's token ("" when free): the value of the lock's
	// key, Lock.Token() of the Lock that holds it. A key set by something
	// other than distlock may hold any value.
	Token string
	// Remaining is the holder's remaining lease, if HasRemaining.
	Remaining time.Duration
	// HasRemaining is false when the lock is free, and when its key has no
	// expiry (set by something other than distlock).
	HasRemaining bool
	// Fence is the highest fencing token handed out (or reserved) for the
	// key so far, if HasFence: at least the holder's Lock.Fence(), and less
	// than the fence of every later acquisition.
	Fence uint64
	// HasFence is false if no fencing token was ever handed out for the
	// key.
	HasFence bool
	// Holder describes the holder (host, pid, label), or is nil when the
	// lock is free, or was taken by an older distlock or by something
	// else.
	Holder *Holder
	// Shares is how many shares of a read-write lock or semaphore of this
	// name are held (readers, the writer, or permits); 0 for a plain lock.
	// While shares are held, Held is true, Token is "" and Remaining is
	// the longest share's.
	Shares int
	// WritersWaiting is how many writers wait for a read-write lock of
	// this name (new readers wait behind them).
	WritersWaiting int
}

// Holder describes who took a lock, as the holder recorded it with the
// acquisition.
type Holder struct {
	// Host is the host name of the holder's machine (at most 64 bytes).
	Host string
	// Pid is the holder's process id.
	Pid uint32
	// Label is the label the holder's client set with WithHolderLabel
	// ("" when none).
	Label string
}

func nativeInspect(c clientPtr, key *C.char) (LockInfo, int32, string) {
	var out C.dlgo_inspected
	var msg *C.char
	st := int32(C.dlgo_inspect(c, key, &out, &msg))
	text := takeMessage(msg)
	if st != statusOK {
		return LockInfo{}, st, text
	}
	info := LockInfo{
		Held:           bool(out.info.held),
		HasRemaining:   bool(out.info.has_remaining),
		HasFence:       bool(out.info.has_fence),
		Fence:          uint64(out.info.fence),
		Shares:         int(out.info.shares),
		WritersWaiting: int(out.info.writers_waiting),
	}
	if info.HasRemaining {
		info.Remaining = time.Duration(out.info.remaining_ms) * time.Millisecond
	}
	if out.info.has_holder {
		info.Holder = &Holder{
			Host:  C.GoString(&out.info.holder_host[0]),
			Pid:   uint32(out.info.holder_pid),
			Label: C.GoString(&out.info.holder_label[0]),
		}
	}
	if out.token != nil {
		info.Token = C.GoStringN(out.token, C.int(out.info.token_len))
		C.free(unsafe.Pointer(out.token))
	} else if info.Held {
		return LockInfo{}, statusInternal, "out of memory copying the token"
	}
	return info, st, ""
}

func nativeReleaseToken(c clientPtr, key, token *C.char) (bool, int32, string) {
	var released C.bool
	var msg *C.char
	st := int32(C.dlgo_release_token(c, key, token, &released, &msg))
	return bool(released), st, takeMessage(msg)
}

func nativeStats(c clientPtr) (Stats, int32, string) {
	var out C.distlock_stats
	var msg *C.char
	st := int32(C.dlgo_stats(c, &out, &msg))
	text := takeMessage(msg)
	if st != statusOK {
		return Stats{}, st, text
	}
	us := func(v C.uint64_t) time.Duration {
		if uint64(v) > uint64(math.MaxInt64/int64(time.Microsecond)) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(v) * time.Microsecond
	}
	return Stats{
		Acquired:        uint64(out.acquired),
		Contended:       uint64(out.contended),
		TimedOut:        uint64(out.timed_out),
		Cancelled:       uint64(out.cancelled),
		Lost:            uint64(out.lost),
		Renewals:        uint64(out.renewals),
		RenewalFailures: uint64(out.renewal_failures),
		LocalHandoffs:   uint64(out.local_handoffs),
		FeedReconnects:  uint64(out.feed_reconnects),
		WaitP50:         us(out.wait_p50_us),
		WaitP99:         us(out.wait_p99_us),
		WaitMax:         us(out.wait_max_us),
		Lingered:        uint64(out.lingered),
	}, st, ""
}

// nativeSetLog sends the library's log lines at level (1 error .. 5 trace)
// and above to dlgoLog, or none for 0.
func nativeSetLog(level int32) (int32, string) {
	var msg *C.char
	st := int32(C.dlgo_set_log(C.int32_t(level), &msg))
	return st, takeMessage(msg)
}

// nativeHeld lists the locks held under c's prefix that match pattern.
func nativeHeld(c clientPtr, pattern *C.char, limit int) ([]HeldLock, bool, int32, string) {
	var held *C.distlock_held
	var count C.size_t
	var more C.bool
	var msg *C.char
	st := int32(C.dlgo_held(c, pattern, C.size_t(limit), &held, &count, &more, &msg))
	text := takeMessage(msg)
	if st != statusOK {
		return nil, false, st, text
	}
	defer C.distlock_held_free(held)
	locks := make([]HeldLock, 0, int(count))
	for i := 0; i < int(count); i++ {
		var e C.distlock_held_lock
		if st := int32(C.dlgo_held_get(held, C.size_t(i), &e)); st != statusOK {
			return nil, false, st, "reading entry of the listing failed"
		}
		l := HeldLock{
			Name:         C.GoString(e.name),
			Token:        C.GoString(e.token),
			HasRemaining: bool(e.has_remaining),
			Fence:        uint64(e.fence),
			HasFence:     bool(e.has_fence),
		}
		if l.HasRemaining {
			l.Remaining = time.Duration(e.remaining_ms) * time.Millisecond
		}
		if e.has_holder {
			l.Holder = &Holder{Host: C.GoString(e.holder_host), Pid: uint32(e.holder_pid)}
			if e.holder_label != nil {
				l.Holder.Label = C.GoString(e.holder_label)
			}
		}
		locks = append(locks, l)
	}
	return locks, bool(more), statusOK, ""
}
