/*
 * Exercises every function of the distlock C API, good inputs and bad,
 * against the redis-server on 127.0.0.1:$DISTLOCK_REDIS_PORT.
 *
 * Prints one line per failed check and ends with "N passed, M failed";
 * exits 0 only when nothing failed.
 */
#include <distlock.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expect.h"
#include "support.h"

static int port;
static char url[128];

/* 1 if the thread's last error message contains needle. */
static int last_error_has(const char *needle);

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int redis1(const char *cmd, const char *arg, char *out, size_t out_len) {
  const char *argv[] = {cmd, arg};
  return support_redis(port, 2, argv, out, out_len);
}

/* 1 if the Redis key exists, 0 if not, -1 on error. */
static int key_exists(const char *key) {
  char out[64];
  if (redis1("EXISTS", key, out, sizeof out) != SUPPORT_INTEGER) return -1;
  return atoi(out);
}

static distlock_client *open_client(const distlock_options *opts) {
  distlock_client *c = NULL;
  EXPECT(distlock_client_open(url, opts, &c), DISTLOCK_OK);
  CHECK(c != NULL);
  return c;
}

static distlock_guard *must_acquire(distlock_client *c, const char *key, uint64_t ttl_ms) {
  distlock_guard *g = NULL;
  EXPECT(distlock_acquire(c, key, ttl_ms, 0, NULL, &g), DISTLOCK_OK);
  CHECK(g != NULL);
  return g;
}

static void *fresh_thread_last_error(void *arg) {
  (void)arg;
  return (void *)distlock_last_error();
}

static void test_static_strings(void) {
  /* Nothing failed yet on this thread. */
  CHECK(distlock_last_error() == NULL);

  const char *v = distlock_version();
  CHECK(v != NULL && strlen(v) >= 5 && strchr(v, '.') != NULL);
  CHECK(v == distlock_version());
  /* The header's version is the library's. */
  CHECK(strcmp(v, DISTLOCK_VERSION) == 0);
  char numbers[64];
  snprintf(numbers, sizeof numbers, "%d.%d.%d", DISTLOCK_VERSION_MAJOR, DISTLOCK_VERSION_MINOR,
           DISTLOCK_VERSION_PATCH);
  CHECK(strcmp(v, numbers) == 0);

  static const char *const names[] = {
      "DISTLOCK_OK",           "DISTLOCK_NOT_ACQUIRED", "DISTLOCK_TIMEOUT",
      "DISTLOCK_LOST",         "DISTLOCK_CANCELLED",    "DISTLOCK_INVALID_ARGUMENT",
      "DISTLOCK_CONNECTION",   "DISTLOCK_AUTH",         "DISTLOCK_REDIS",
      "DISTLOCK_INTERNAL",
  };
  for (int32_t s = 0; s <= 9; s++) CHECK(strcmp(distlock_status_name(s), names[s]) == 0);
  CHECK(DISTLOCK_INTERNAL == 9 && DISTLOCK_NOT_ACQUIRED == 1);
  CHECK(strcmp(distlock_status_name(-1), "DISTLOCK_UNKNOWN") == 0);
  CHECK(strcmp(distlock_status_name(10), "DISTLOCK_UNKNOWN") == 0);
  CHECK(strcmp(distlock_status_name(INT32_MIN), "DISTLOCK_UNKNOWN") == 0);
}

static void test_last_error_is_per_thread(void) {
  distlock_client *c = (distlock_client *)0x1;
  EXPECT(distlock_client_open(NULL, NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  const char *msg = distlock_last_error();
  CHECK(msg != NULL && strstr(msg, "url") != NULL);
  /* A success leaves the last failure's message readable. */
  CHECK(strcmp(distlock_status_name(0), "DISTLOCK_OK") == 0);
  CHECK(distlock_last_error() != NULL);

  pthread_t t;
  void *other = (void *)1;
  CHECK(pthread_create(&t, NULL, fresh_thread_last_error, NULL) == 0);
  CHECK(pthread_join(t, &other) == 0);
  CHECK(other == NULL);
}

static void test_open(void) {
  distlock_client *c = (distlock_client *)0x1;

  EXPECT(distlock_client_open(url, NULL, NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_client_open(NULL, NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  CHECK(c == NULL);

  c = (distlock_client *)0x1;
  EXPECT(distlock_client_open("not a url", NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  CHECK(c == NULL);
  EXPECT(distlock_client_open("http://127.0.0.1:1/0", NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_client_open("redis://127.0.0.1:\xff/0", NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  CHECK(strstr(distlock_last_error(), "UTF-8") != NULL);

  /* A URL longer than DISTLOCK_MAX_URL_LEN is refused without being read
   * to its end. */
  size_t long_len = DISTLOCK_MAX_URL_LEN + 10;
  char *long_url = malloc(long_len + 1);
  memset(long_url, 'a', long_len);
  long_url[long_len] = '\0';
  EXPECT(distlock_client_open(long_url, NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  free(long_url);

  /* Nothing listens on the port: a connection error, quickly. */
  int closed = support_free_port();
  CHECK(closed > 0);
  char dead[128];
  support_url(dead, sizeof dead, closed);
  distlock_options quick = {0};
  quick.connect_timeout_ms = 500;
  uint64_t t0 = now_ms();
  EXPECT(distlock_client_open(dead, &quick, &c), DISTLOCK_CONNECTION);
  CHECK(c == NULL);
  CHECK(now_ms() - t0 < 10000);

  /* Refused credentials; the password never shows in the message. */
  char bad_auth[160];
  snprintf(bad_auth, sizeof bad_auth, "redis://nobody:s3cr3t-pw@127.0.0.1:%d/0", port);
  EXPECT(distlock_client_open(bad_auth, NULL, &c), DISTLOCK_AUTH);
  CHECK(distlock_last_error() != NULL && strstr(distlock_last_error(), "s3cr3t-pw") == NULL);

  /* Bad options. */
  distlock_options o = {0};
  o.prefix = "";
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  o.prefix = "a{b}";
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  o.prefix = "bad\xc3";
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  char long_prefix[DISTLOCK_MAX_PREFIX_LEN + 2];
  memset(long_prefix, 'p', sizeof long_prefix - 1);
  long_prefix[sizeof long_prefix - 1] = '\0';
  o.prefix = long_prefix;
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  o = (distlock_options){0};
  o.ttl_ms = 5; /* below the 10 ms minimum */
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  o.ttl_ms = 25ull * 3600 * 1000; /* above the 24 h maximum */
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  o = (distlock_options){0};
  o.pool_size = 5000;
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  o = (distlock_options){0};
  o.command_timeout_ms = UINT64_MAX;
  EXPECT(distlock_client_open(url, &o, &c), DISTLOCK_INVALID_ARGUMENT);
  CHECK(c == NULL);

  /* Good: defaults, and every option set. */
  c = open_client(NULL);
  distlock_client_close(c);
  o = (distlock_options){0};
  o.prefix = "ctest";
  o.ttl_ms = 2000;
  o.pool_size = 4;
  o.connect_timeout_ms = 1000;
  o.command_timeout_ms = 1000;
  c = open_client(&o);
  distlock_guard *g = must_acquire(c, "prefixed", 0);
  CHECK(key_exists("ctest:prefixed") == 1);
  CHECK(key_exists("distlock:prefixed") == 0);
  uint64_t left = 0;
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
  CHECK(left > 0 && left <= 2000);
  distlock_guard_free(g);
  CHECK(key_exists("ctest:prefixed") == 0);
  distlock_client_close(c);

  /* Closing twice, NULL or garbage: no-ops. */
  distlock_client_close(c);
  distlock_client_close(NULL);
  int not_a_client = 0;
  distlock_client_close((distlock_client *)&not_a_client);
}

static void test_acquire_arguments(distlock_client *c) {
  distlock_guard *g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(NULL, "k", 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  CHECK(g == NULL);
  int not_a_handle = 0;
  EXPECT(distlock_acquire((distlock_client *)&not_a_handle, "k", 0, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, NULL, 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, "", 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, "bad\xff\xfekey", 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  CHECK(strstr(distlock_last_error(), "UTF-8") != NULL);
  EXPECT(distlock_acquire(c, "k", 5, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, "k", 25ull * 3600 * 1000, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, "k", UINT64_MAX, -1, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, "k", 0, 0, (distlock_cancel *)&not_a_handle, &g),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(g == NULL);

  /* NULL out: refused before anything is taken. */
  EXPECT(distlock_acquire(c, "null-out", 0, 0, NULL, NULL), DISTLOCK_INVALID_ARGUMENT);
  CHECK(key_exists("distlock:null-out") == 0);

  /* Keys: 1024 bytes is the limit. */
  char key[DISTLOCK_MAX_KEY_LEN + 2];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  EXPECT(distlock_acquire(c, key, 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  CHECK(strstr(distlock_last_error(), "1024") != NULL);
  key[DISTLOCK_MAX_KEY_LEN] = '\0';
  EXPECT(distlock_acquire(c, key, 0, 0, NULL, &g), DISTLOCK_OK);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  distlock_guard_free(g);

  /* ttl 0 means the client's default (30 s); an explicit ttl is used. */
  g = must_acquire(c, "default-ttl", 0);
  uint64_t left = 0;
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
  CHECK(left > 20000 && left <= 30000);
  distlock_guard_free(g);
  g = must_acquire(c, "short-ttl", 5000);
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
  CHECK(left > 0 && left <= 5000);
  char ttl[32];
  const char *pttl[] = {"PTTL", "distlock:short-ttl"};
  CHECK(support_redis(port, 2, pttl, ttl, sizeof ttl) == SUPPORT_INTEGER);
  CHECK(atol(ttl) > 0 && atol(ttl) <= 5000);
  distlock_guard_free(g);
}

static void test_guard_lifecycle(distlock_client *c) {
  distlock_client *other = open_client(NULL);
  distlock_guard *g = must_acquire(c, "basic", 0);

  bool held = false;
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_OK);
  CHECK(held);
  uint64_t fence = 0;
  EXPECT(distlock_guard_fence(g, &fence), DISTLOCK_OK);
  CHECK(fence > 0);

  /* The token is what the server stores in the lock key. */
  char token[DISTLOCK_TOKEN_LEN + 1];
  EXPECT(distlock_guard_token(g, token, sizeof token), DISTLOCK_OK);
  CHECK(strlen(token) == DISTLOCK_TOKEN_LEN);
  char stored[128];
  CHECK(redis1("GET", "distlock:basic", stored, sizeof stored) == SUPPORT_BULK);
  CHECK(strstr(stored, token) != NULL);
  char small[DISTLOCK_TOKEN_LEN];
  memset(small, 'x', sizeof small);
  EXPECT(distlock_guard_token(g, small, sizeof small), DISTLOCK_INVALID_ARGUMENT);
  CHECK(small[0] == 'x');
  EXPECT(distlock_guard_token(g, NULL, 64), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_token(g, token, 0), DISTLOCK_INVALID_ARGUMENT);

  uint64_t left = 0;
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
  CHECK(left > 0);
  EXPECT(distlock_guard_extend(g), DISTLOCK_OK);

  /* NULL out-pointers. */
  EXPECT(distlock_guard_is_held(g, NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_fence(g, NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_remaining_ms(g, NULL), DISTLOCK_INVALID_ARGUMENT);

  /* Held: a try fails from this client and from another; a bounded wait
   * times out. */
  distlock_guard *g2 = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, "basic", 0, 0, NULL, &g2), DISTLOCK_NOT_ACQUIRED);
  CHECK(g2 == NULL);
  EXPECT(distlock_acquire(other, "basic", 0, 0, NULL, &g2), DISTLOCK_NOT_ACQUIRED);
  uint64_t t0 = now_ms();
  EXPECT(distlock_acquire(other, "basic", 0, 150, NULL, &g2), DISTLOCK_TIMEOUT);
  CHECK(now_ms() - t0 >= 140);
  EXPECT(distlock_acquire(c, "basic", 0, 100, NULL, &g2), DISTLOCK_TIMEOUT);
  EXPECT(distlock_guard_wait_lost(g, 0), DISTLOCK_TIMEOUT);
  EXPECT(distlock_guard_wait_lost(g, 30), DISTLOCK_TIMEOUT);

  /* Release: no longer held, but fence and token stay readable. */
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  CHECK(key_exists("distlock:basic") == 0);
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_OK);
  CHECK(!held);
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
  CHECK(left == 0);
  uint64_t fence_after = 0;
  EXPECT(distlock_guard_fence(g, &fence_after), DISTLOCK_OK);
  CHECK(fence_after == fence);
  /* The first lock of a key comes without its fence (on Redis 7, given
   * when first read): released before it was read, it has none to give. */
  distlock_guard *unread = must_acquire(c, "basic-unread", 0);
  EXPECT(distlock_guard_release(unread), DISTLOCK_OK);
  uint64_t none = 7;
  EXPECT(distlock_guard_fence(unread, &none), DISTLOCK_LOST);
  CHECK(none == 7);
  distlock_guard_free(unread);
  char token_after[64];
  EXPECT(distlock_guard_token(g, token_after, sizeof token_after), DISTLOCK_OK);
  CHECK(strcmp(token, token_after) == 0);
  EXPECT(distlock_guard_extend(g), DISTLOCK_LOST);
  EXPECT(distlock_guard_wait_lost(g, 0), DISTLOCK_LOST);
  EXPECT(distlock_guard_wait_lost(g, -1), DISTLOCK_LOST);
  /* Double release. */
  EXPECT(distlock_guard_release(g), DISTLOCK_INVALID_ARGUMENT);
  CHECK(strstr(distlock_last_error(), "already released") != NULL);

  /* Now the other client gets it, with a greater fence. */
  g2 = NULL;
  EXPECT(distlock_acquire(other, "basic", 0, 1000, NULL, &g2), DISTLOCK_OK);
  uint64_t fence2 = 0;
  EXPECT(distlock_guard_fence(g2, &fence2), DISTLOCK_OK);
  CHECK(fence2 > fence);
  distlock_guard_free(g2);

  /* Freed: every use is refused, and freeing again is a no-op. */
  distlock_guard_free(g);
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_INVALID_ARGUMENT);
  CHECK(strstr(distlock_last_error(), "freed") != NULL);
  EXPECT(distlock_guard_fence(g, &fence), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_token(g, token, sizeof token), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_extend(g), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_wait_lost(g, 0), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_release(g), DISTLOCK_INVALID_ARGUMENT);
  distlock_guard_free(g);
  distlock_guard_free(NULL);

  /* NULL and garbage guards. */
  int not_a_guard = 0;
  distlock_guard *bogus = (distlock_guard *)&not_a_guard;
  EXPECT(distlock_guard_is_held(NULL, &held), DISTLOCK_INVALID_ARGUMENT);
  CHECK(strstr(distlock_last_error(), "NULL") != NULL);
  EXPECT(distlock_guard_is_held(bogus, &held), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_fence(NULL, &fence), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_token(NULL, token, sizeof token), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_remaining_ms(bogus, &left), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_extend(NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_release(NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_release(bogus), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_wait_lost(NULL, 0), DISTLOCK_INVALID_ARGUMENT);
  distlock_guard_free(bogus);
  CHECK(not_a_guard == 0);

  /* Freeing a held guard releases the lock. */
  g = must_acquire(c, "freed-while-held", 0);
  CHECK(key_exists("distlock:freed-while-held") == 1);
  distlock_guard_free(g);
  CHECK(key_exists("distlock:freed-while-held") == 0);

  distlock_client_close(other);
}

static void test_guard_outlives_client(void) {
  distlock_client *c = open_client(NULL);
  distlock_guard *g = must_acquire(c, "outlives", 0);
  distlock_client_close(c);
  bool held = false;
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_OK);
  CHECK(held);
  EXPECT(distlock_guard_extend(g), DISTLOCK_OK);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  CHECK(key_exists("distlock:outlives") == 0);
  distlock_guard_free(g);
  /* The closed client is gone for good. */
  distlock_guard *g2 = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, "outlives", 0, 0, NULL, &g2), DISTLOCK_INVALID_ARGUMENT);
  CHECK(g2 == NULL);
  char token[DISTLOCK_TOKEN_LEN + 1];
  distlock_lock_info info = {.struct_size = sizeof info};
  EXPECT(distlock_client_inspect(c, "outlives", token, sizeof token, &info),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  bool released = true;
  EXPECT(distlock_client_release_token(c, "outlives", "t", &released), DISTLOCK_INVALID_ARGUMENT);
  CHECK(!released && last_error_has("freed"));
  int not_a_client = 0;
  distlock_client *bogus = (distlock_client *)&not_a_client;
  EXPECT(distlock_client_inspect(bogus, "outlives", token, sizeof token, &info),
         DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_client_release_token(bogus, "outlives", "t", &released),
         DISTLOCK_INVALID_ARGUMENT);
  distlock_stats stats = {.struct_size = sizeof stats, .acquired = 7};
  EXPECT(distlock_client_stats(c, &stats), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed") && stats.acquired == 0);
  stats.acquired = 7;
  EXPECT(distlock_client_stats(bogus, &stats), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("unknown") && stats.acquired == 0);
  CHECK(not_a_client == 0);
}

struct waiter {
  distlock_client *client;
  const char *key;
  int64_t timeout_ms;
  distlock_cancel *cancel;
  distlock_guard *guard;
  int32_t status;
  /* Set (under the mutex) just before the waiter calls distlock_acquire. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started;
};

static void *waiter_main(void *arg) {
  struct waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  w->started = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  w->status = distlock_acquire(w->client, w->key, 0, w->timeout_ms, w->cancel, &w->guard);
  return NULL;
}

static void start_waiter(pthread_t *t, struct waiter *w) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->started = 0;
  w->guard = NULL;
  w->status = -1;
  CHECK(pthread_create(t, NULL, waiter_main, w) == 0);
  pthread_mutex_lock(&w->mu);
  while (!w->started) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static void finish_waiter(pthread_t t, struct waiter *w) {
  CHECK(pthread_join(t, NULL) == 0);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}

/* Starts a wait for `key` (held elsewhere) with `timeout_ms`, triggers
 * `cancel` from this thread, and checks that the wait ends cancelled, with
 * no guard, well before any timeout. */
static void cancel_a_wait(distlock_client *c, const char *key, int64_t timeout_ms,
                          distlock_cancel *cancel) {
  struct waiter w = {.client = c, .key = key, .timeout_ms = timeout_ms, .cancel = cancel};
  pthread_t t;
  uint64_t t0 = now_ms();
  start_waiter(&t, &w);
  EXPECT(distlock_cancel_trigger(cancel), DISTLOCK_OK);
  finish_waiter(t, &w);
  EXPECT(w.status, DISTLOCK_CANCELLED);
  CHECK(w.guard == NULL);
  CHECK(now_ms() - t0 < 20000);
}

static void test_cancel(distlock_client *c) {
  distlock_client *other = open_client(NULL);
  distlock_guard *holder = must_acquire(other, "cancel", 0);

  EXPECT(distlock_cancel_trigger(NULL), DISTLOCK_INVALID_ARGUMENT);
  int not_a_cancel = 0;
  EXPECT(distlock_cancel_trigger((distlock_cancel *)&not_a_cancel), DISTLOCK_INVALID_ARGUMENT);
  distlock_cancel_free(NULL);
  distlock_cancel_free((distlock_cancel *)&not_a_cancel);

  /* An untriggered cancel changes nothing. */
  distlock_cancel *cancel = distlock_cancel_new();
  CHECK(cancel != NULL);
  distlock_guard *g = NULL;
  EXPECT(distlock_acquire(c, "cancel-free-lock", 0, 0, cancel, &g), DISTLOCK_OK);
  distlock_guard_free(g);
  EXPECT(distlock_acquire(c, "cancel", 0, 0, cancel, &g), DISTLOCK_NOT_ACQUIRED);
  EXPECT(distlock_acquire(c, "cancel", 0, 50, cancel, &g), DISTLOCK_TIMEOUT);

  /* Triggered from another thread while a wait without limit is on. */
  cancel_a_wait(c, "cancel", -1, cancel);

  /* Idempotent, and it stays triggered: even a free lock is not taken. */
  EXPECT(distlock_cancel_trigger(cancel), DISTLOCK_OK);
  g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, "cancel", 0, -1, cancel, &g), DISTLOCK_CANCELLED);
  EXPECT(distlock_acquire(c, "cancel", 0, 0, cancel, &g), DISTLOCK_CANCELLED);
  EXPECT(distlock_acquire(c, "cancel-free-lock", 0, 1000, cancel, &g), DISTLOCK_CANCELLED);
  CHECK(g == NULL);
  distlock_cancel_free(cancel);
  EXPECT(distlock_cancel_trigger(cancel), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire(c, "cancel", 0, 0, cancel, &g), DISTLOCK_INVALID_ARGUMENT);
  distlock_cancel_free(cancel);

  /* Freeing a cancel handle cancels the wait using it. Whether the waiter
   * looked the handle up before the free (CANCELLED) or after it
   * (INVALID_ARGUMENT) is up to the scheduler; either way it does not sit
   * out its 60 s. */
  distlock_cancel *cancel2 = distlock_cancel_new();
  struct waiter w2 = {.client = c, .key = "cancel", .timeout_ms = 60000, .cancel = cancel2};
  pthread_t t;
  uint64_t t0 = now_ms();
  start_waiter(&t, &w2);
  distlock_cancel_free(cancel2);
  finish_waiter(t, &w2);
  CHECK(w2.status == DISTLOCK_CANCELLED || w2.status == DISTLOCK_INVALID_ARGUMENT);
  CHECK(now_ms() - t0 < 30000);

  /* A waiter without cancel gets the lock once it is released. */
  struct waiter w3 = {.client = c, .key = "cancel", .timeout_ms = -1, .cancel = NULL};
  start_waiter(&t, &w3);
  EXPECT(distlock_guard_release(holder), DISTLOCK_OK);
  finish_waiter(t, &w3);
  EXPECT(w3.status, DISTLOCK_OK);
  CHECK(w3.guard != NULL);
  distlock_guard_free(w3.guard);
  distlock_guard_free(holder);
  distlock_client_close(other);
}

struct lost_waiter {
  distlock_guard *guard;
  int32_t status;
};

static void *wait_lost_main(void *arg) {
  struct lost_waiter *w = arg;
  w->status = distlock_guard_wait_lost(w->guard, -1);
  return NULL;
}

static void test_wait_lost(distlock_client *c) {
  /* Somebody deletes the key: the next renewal (within a third of the TTL)
   * finds out, and wait_lost returns. */
  distlock_guard *g = must_acquire(c, "lost", 1500);
  EXPECT(distlock_guard_wait_lost(g, 0), DISTLOCK_TIMEOUT);
  char out[32];
  CHECK(redis1("DEL", "distlock:lost", out, sizeof out) == SUPPORT_INTEGER);
  CHECK(strcmp(out, "1") == 0);
  uint64_t t0 = now_ms();
  EXPECT(distlock_guard_wait_lost(g, -1), DISTLOCK_LOST);
  CHECK(now_ms() - t0 < 20000);
  bool held = true;
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_OK);
  CHECK(!held);
  uint64_t left = 1;
  EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
  CHECK(left == 0);
  EXPECT(distlock_guard_extend(g), DISTLOCK_LOST);
  EXPECT(distlock_guard_release(g), DISTLOCK_LOST);
  EXPECT(distlock_guard_release(g), DISTLOCK_INVALID_ARGUMENT);
  distlock_guard_free(g);

  /* Another thread waits without limit; the release ends its wait. */
  g = must_acquire(c, "lost-release", 0);
  struct lost_waiter w = {.guard = g, .status = -1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, wait_lost_main, &w) == 0);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  CHECK(pthread_join(t, NULL) == 0);
  EXPECT(w.status, DISTLOCK_LOST);
  distlock_guard_free(g);

  /* Someone else took it over after expiry: release deletes nothing. */
  g = must_acquire(c, "taken", 1500);
  const char *set[] = {"SET", "distlock:taken", "someone-else"};
  CHECK(support_redis(port, 3, set, out, sizeof out) == SUPPORT_STATUS);
  EXPECT(distlock_guard_wait_lost(g, -1), DISTLOCK_LOST);
  EXPECT(distlock_guard_release(g), DISTLOCK_LOST);
  char stored[64];
  CHECK(redis1("GET", "distlock:taken", stored, sizeof stored) == SUPPORT_BULK);
  CHECK(strcmp(stored, "someone-else") == 0);
  CHECK(redis1("DEL", "distlock:taken", out, sizeof out) == SUPPORT_INTEGER);
  distlock_guard_free(g);
}

/* ---- distlock_config: the extensible way to open a client ---- */

static int last_error_has(const char *needle) {
  const char *why = distlock_last_error();
  return why != NULL && strstr(why, needle) != NULL;
}

/* 1 if the thread's last error is exactly want. */
static int last_error_is(const char *want) {
  const char *why = distlock_last_error();
  if (why != NULL && strcmp(why, want) == 0) return 1;
  printf("  last error: %s\n  expected:   %s\n", why ? why : "(none)", want);
  return 0;
}

/* What src/servers.rs (Builder::check) says of a bad choice of servers:
 * the C API must refuse the same choices with the same words. */
#define REFUSED_NODES(n) \
  "invalid argument: Redlock needs at least 3 independent nodes (5 is usual); " n " given"
#define REFUSED_NO_SENTINELS "invalid argument: sentinel mode needs at least one sentinel address"
#define REFUSED_NO_MASTER \
  "invalid argument: sentinel addresses were given without a master name"
#define REFUSED_TLS_DEPLOYMENT \
  "invalid argument: custom TLS certificates work with a single node or Redlock, not Cluster " \
  "or Sentinel"

/* 1 if distlock_config_check refuses cfg with exactly want. */
static int check_says(const distlock_config *cfg, const char *want) {
  return distlock_config_check(cfg) == DISTLOCK_INVALID_ARGUMENT && last_error_is(want);
}

static distlock_config *new_config(void) {
  distlock_config *cfg = distlock_config_new();
  CHECK(cfg != NULL);
  return cfg;
}

/* Opens cfg expecting want; on failure *out must come back NULL. */
#define OPEN_CONFIG(cfg, want) open_config((cfg), (want), __LINE__)
/* Opens `cfg` expecting `want`. What distlock_config_check refuses, open
 * refuses with the same message; what open accepts, check passes. (Open
 * can still fail on what only the servers tell, such as a seed that is no
 * cluster node.) */
static distlock_client *open_config(const distlock_config *cfg, int32_t want, int line) {
  int32_t checked = distlock_config_check(cfg);
  const char *why = distlock_last_error();
  char *check_msg = checked != DISTLOCK_OK && why ? strdup(why) : NULL;
  distlock_client *c = (distlock_client *)0x1;
  int32_t got = distlock_client_open_config(cfg, &c);
  expect_status(got, want, "distlock_client_open_config", __FILE__, line);
  if (checked != DISTLOCK_OK) {
    why = distlock_last_error();
    CHECK(got == checked && check_msg != NULL && why != NULL && strcmp(check_msg, why) == 0);
  }
  free(check_msg);
  if (got != DISTLOCK_OK) {
    CHECK(c == NULL);
    return NULL;
  }
  CHECK(c != NULL);
  return c;
}

static void test_config_arguments(void) {
  int not_a_config = 0;
  distlock_config *bogus = (distlock_config *)&not_a_config;
  EXPECT(distlock_config_set_url(NULL, url), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("config handle is NULL"));
  EXPECT(distlock_config_set_ttl_ms(bogus, 1000), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("unknown or already freed config"));
  EXPECT(distlock_config_add_node(bogus, url), DISTLOCK_INVALID_ARGUMENT);
  distlock_client *c = (distlock_client *)0x1;
  EXPECT(distlock_client_open_config(NULL, &c), DISTLOCK_INVALID_ARGUMENT);
  CHECK(c == NULL);
  EXPECT(distlock_client_open_config(bogus, &c), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_check(bogus), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("unknown or already freed config"));

  distlock_config *cfg = new_config();
  EXPECT(distlock_client_open_config(cfg, NULL), DISTLOCK_INVALID_ARGUMENT);
  /* No server given: the default one (redis://127.0.0.1:6379/0), as with
   * the Rust builder. Only checked: something may listen there. */
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);

  /* Strings: NULL, bad UTF-8, malformed, too long. */
  EXPECT(distlock_config_set_url(cfg, NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_url(cfg, "redis://127.0.0.1:\xff/0"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("UTF-8"));
  EXPECT(distlock_config_set_url(cfg, "not a url"), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_add_node(cfg, "http://127.0.0.1:1/0"), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_add_cluster_url(cfg, NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_add_cluster_url(cfg, "redis://nobody:s3cr3t-pw@127.0.0.1:1/x"),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(distlock_last_error() != NULL && !last_error_has("s3cr3t-pw"));
  size_t long_len = DISTLOCK_MAX_URL_LEN + 10;
  char *long_url = malloc(long_len + 1);
  memset(long_url, 'a', long_len);
  long_url[long_len] = '\0';
  EXPECT(distlock_config_add_node(cfg, long_url), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_add_sentinel(cfg, long_url), DISTLOCK_INVALID_ARGUMENT);
  free(long_url);
  EXPECT(distlock_config_add_sentinel(cfg, ""), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_add_sentinel(cfg, NULL), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_sentinel(cfg, ""), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_sentinel(cfg, NULL), DISTLOCK_INVALID_ARGUMENT);
  char long_name[DISTLOCK_MAX_MASTER_NAME_LEN + 2];
  memset(long_name, 'm', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  EXPECT(distlock_config_set_sentinel(cfg, long_name), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_prefix(cfg, ""), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_prefix(cfg, "a{b}"), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_prefix(cfg, "bad\xc3"), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_prefix(cfg, NULL), DISTLOCK_INVALID_ARGUMENT);

  /* Numbers out of range. */
  EXPECT(distlock_config_set_ttl_ms(cfg, 5), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_ttl_ms(cfg, 25ull * 3600 * 1000), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_pool_size(cfg, 0), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_pool_size(cfg, 5000), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_connect_timeout_ms(cfg, 0), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_command_timeout_ms(cfg, UINT64_MAX), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_max_retry_interval_ms(cfg, 0), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_handoff_limit(cfg, 64), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("handoff_limit"));
  EXPECT(distlock_config_set_linger_ms(cfg, 3600001), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("linger must be between 1 ms and 1 hour"));
  EXPECT(distlock_config_set_linger_ms(cfg, 0), DISTLOCK_OK); /* off */
  EXPECT(distlock_config_set_replicas(cfg, 1, 0), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("replica"));
  EXPECT(distlock_config_set_replicas(cfg, 0, 0), DISTLOCK_OK); /* off */

  /* The choice of servers is one value: each kind of server setter
   * replaces it, and the first add after another kind starts a new list. */
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/1"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is(REFUSED_NODES("1")));
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/2"), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is(REFUSED_NODES("2")));
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/3"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  /* A URL after the nodes: one server. */
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  /* A node after the URL: a new list, of one. */
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/4"), DISTLOCK_OK);
  CHECK(check_says(cfg, REFUSED_NODES("1")));
  /* Half a sentinel setting, either half. */
  EXPECT(distlock_config_set_sentinel(cfg, "mymaster"), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is(REFUSED_NO_SENTINELS));
  EXPECT(distlock_config_add_sentinel(cfg, "127.0.0.1:1"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  /* At most DISTLOCK_MAX_SERVERS nodes, counted from the first after the
   * sentinel. */
  for (int i = 0; i < DISTLOCK_MAX_SERVERS; i++) {
    EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/0"), DISTLOCK_OK);
  }
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/0"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("at most 64 Redlock nodes"));
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  distlock_config_free(cfg);

  /* Cluster seeds, then a sentinel address: a sentinel setting without
   * its master's name. */
  cfg = new_config();
  EXPECT(distlock_config_add_cluster_url(cfg, "redis://127.0.0.1:1"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  EXPECT(distlock_config_add_sentinel(cfg, "127.0.0.1:1"), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is(REFUSED_NO_MASTER));
  /* Settings in between do not mind the unfinished choice. */
  EXPECT(distlock_config_set_ttl_ms(cfg, 2000), DISTLOCK_OK);
  EXPECT(distlock_config_set_sentinel(cfg, "mymaster"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  distlock_config_free(cfg);

  /* zk:// is a backend of its own: one ensemble, its servers listed in
   * one URL, never a node or a seed; a bad one is refused by the setter
   * and by distlock_client_open alike. */
  cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, "zk://127.0.0.1:2181,127.0.0.1:2182/chroot"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  EXPECT(distlock_config_set_url(cfg, "zk://127.0.0.1:2181,:2/chroot"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is("invalid argument: cannot parse the ZooKeeper URL: server #2 has no host"));
  {
    distlock_client *rc = (distlock_client *)0x1;
    EXPECT(distlock_client_open("zk://127.0.0.1:2181,:2/chroot", NULL, &rc),
           DISTLOCK_INVALID_ARGUMENT);
    CHECK(rc == NULL &&
          last_error_is("invalid argument: cannot parse the ZooKeeper URL: server #2 has no host"));
  }
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/0"), DISTLOCK_OK);
  EXPECT(distlock_config_add_node(cfg, "zk://127.0.0.1:2181"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("Redlock node #2: zk:// names one ZooKeeper ensemble"));
  EXPECT(distlock_config_add_cluster_url(cfg, "zk://127.0.0.1:2181"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("cluster seed URL #1: zk:// names one ZooKeeper ensemble"));
  distlock_config_free(cfg);
  /* memcache:// is a backend of its own: one server, never a node or a
   * seed. */
  cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, "memcache://127.0.0.1:11211"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  /* Lease caching needs Redis: a waiter there tells the lingering holder. */
  EXPECT(distlock_config_set_linger_ms(cfg, 1000), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("linger needs Redis") && last_error_has("memcached cannot"));
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/0"), DISTLOCK_OK);
  EXPECT(distlock_config_add_node(cfg, "memcache://127.0.0.1:11211"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is("invalid argument: Redlock node #2: memcache:// names a single memcached server (give it alone, as the server URL); Redlock, Cluster and Sentinel need redis:// or rediss://"));
  distlock_config_free(cfg);
  /* So are etcd:// and etcds://: one cluster, its members listed in one
   * URL, never a node or a seed. */
  cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, "etcd://127.0.0.1:2379,127.0.0.1:2380"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/0"), DISTLOCK_OK);
  EXPECT(distlock_config_add_node(cfg, "etcds://127.0.0.1:2379"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("Redlock node #2: etcds:// names one etcd cluster"));
  distlock_config_free(cfg);
  cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, "http://u:s3cr3t-pw@127.0.0.1:1/"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_is("invalid argument: the server URL: unsupported scheme \"http\"; "
                      "use redis:// or rediss://"));
  CHECK(!last_error_has("s3cr3t-pw"));
  /* Cluster seeds are checked together, as the builder checks them. */
  EXPECT(distlock_config_add_cluster_url(cfg, "redis://127.0.0.1:1/0"), DISTLOCK_OK);
  EXPECT(distlock_config_add_cluster_url(cfg, "redis://127.0.0.1:2/1"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("different database"));
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  distlock_config_free(cfg);

  /* Freed: refused; freeing again, NULL or garbage: no-ops. */
  distlock_config_free(cfg);
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  const uint8_t pem[] = "-----BEGIN CERTIFICATE-----";
  EXPECT(distlock_config_set_tls_ca_file(cfg, "/etc/ca.pem"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  EXPECT(distlock_config_set_tls_ca_pem(cfg, pem, sizeof pem), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, "/c.pem", "/k.pem"),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  EXPECT(distlock_config_set_tls_client_cert_pem(cfg, pem, sizeof pem, pem, sizeof pem),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  EXPECT(distlock_config_set_tls_ca_file(bogus, "/etc/ca.pem"), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("unknown or already freed config"));
  EXPECT(distlock_client_open_config(cfg, &c), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_check(cfg), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("freed"));
  distlock_config_free(cfg);
  distlock_config_free(NULL);
  distlock_config_free(bogus);
  CHECK(not_a_config == 0);
}

static void test_config_single_server(void) {
  /* Every scalar setting, through to a working client. */
  distlock_config *cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_OK);
  EXPECT(distlock_config_set_prefix(cfg, "cfgtest"), DISTLOCK_OK);
  EXPECT(distlock_config_set_ttl_ms(cfg, 2000), DISTLOCK_OK);
  EXPECT(distlock_config_set_pool_size(cfg, 4), DISTLOCK_OK);
  EXPECT(distlock_config_set_connect_timeout_ms(cfg, 1000), DISTLOCK_OK);
  EXPECT(distlock_config_set_command_timeout_ms(cfg, 1000), DISTLOCK_OK);
  EXPECT(distlock_config_set_max_hold_ms(cfg, 60000), DISTLOCK_OK);
  EXPECT(distlock_config_set_max_retry_interval_ms(cfg, 50), DISTLOCK_OK);
  EXPECT(distlock_config_set_fast_path(cfg, false), DISTLOCK_OK);
  EXPECT(distlock_config_set_handoff_limit(cfg, 4), DISTLOCK_OK);
  EXPECT(distlock_config_set_handoff_budget_ms(cfg, 5), DISTLOCK_OK);
  distlock_client *c = OPEN_CONFIG(cfg, DISTLOCK_OK);
  /* The client copied what it needs. */
  distlock_config_free(cfg);
  if (c != NULL) {
    distlock_guard *g = must_acquire(c, "configured", 0);
    CHECK(key_exists("cfgtest:configured") == 1);
    CHECK(key_exists("distlock:configured") == 0);
    uint64_t left = 0;
    EXPECT(distlock_guard_remaining_ms(g, &left), DISTLOCK_OK);
    CHECK(left > 0 && left <= 2000);
    distlock_guard *g2 = (distlock_guard *)0x1;
    EXPECT(distlock_acquire(c, "configured", 0, 0, NULL, &g2), DISTLOCK_NOT_ACQUIRED);
    EXPECT(distlock_guard_release(g), DISTLOCK_OK);
    CHECK(key_exists("cfgtest:configured") == 0);
    distlock_guard_free(g);
    distlock_client_close(c);
  }

  /* A config may open several clients, and be changed in between. */
  cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_OK);
  distlock_client *a = OPEN_CONFIG(cfg, DISTLOCK_OK);
  EXPECT(distlock_config_set_prefix(cfg, "cfgtest-b"), DISTLOCK_OK);
  distlock_client *b = OPEN_CONFIG(cfg, DISTLOCK_OK);
  if (a != NULL && b != NULL) {
    distlock_guard *ga = must_acquire(a, "reuse", 0);
    distlock_guard *gb = must_acquire(b, "reuse", 0);
    CHECK(key_exists("distlock:reuse") == 1 && key_exists("cfgtest-b:reuse") == 1);
    distlock_guard_free(ga);
    distlock_guard_free(gb);
  }
  distlock_client_close(a);
  distlock_client_close(b);

  /* Replica acknowledgement reaches the server: this one has no replicas,
   * so WAIT confirms none and the acquisition is given back. */
  EXPECT(distlock_config_set_replicas(cfg, 1, 50), DISTLOCK_OK);
  c = OPEN_CONFIG(cfg, DISTLOCK_OK);
  if (c != NULL) {
    distlock_guard *g = (distlock_guard *)0x1;
    EXPECT(distlock_acquire(c, "replicated", 0, 0, NULL, &g), DISTLOCK_CONNECTION);
    CHECK(g == NULL);
    CHECK(last_error_has("replica"));
    CHECK(key_exists("cfgtest-b:replicated") == 0);
    distlock_client_close(c);
  }
  distlock_config_free(cfg);

  /* Nothing listens: a connection error; refused credentials: auth. */
  int closed = support_free_port();
  char dead[128];
  support_url(dead, sizeof dead, closed);
  cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, dead), DISTLOCK_OK);
  EXPECT(distlock_config_set_connect_timeout_ms(cfg, 500), DISTLOCK_OK);
  uint64_t t0 = now_ms();
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  CHECK(now_ms() - t0 < 10000);
  char bad_auth[160];
  snprintf(bad_auth, sizeof bad_auth, "redis://nobody:s3cr3t-pw@127.0.0.1:%d/0", port);
  EXPECT(distlock_config_set_url(cfg, bad_auth), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_AUTH);
  CHECK(distlock_last_error() != NULL && !last_error_has("s3cr3t-pw"));

  /* Sentinel and cluster are really asked for: a sentinel nobody runs
   * cannot be reached, and a server without cluster mode is no cluster. */
  char sentinel[64];
  snprintf(sentinel, sizeof sentinel, "127.0.0.1:%d", closed);
  EXPECT(distlock_config_set_url(cfg, "redis://127.0.0.1/0"), DISTLOCK_OK);
  EXPECT(distlock_config_set_sentinel(cfg, "mymaster"), DISTLOCK_OK);
  EXPECT(distlock_config_add_sentinel(cfg, sentinel), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  distlock_config_free(cfg);
  cfg = new_config();
  EXPECT(distlock_config_add_cluster_url(cfg, url), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("not a Redis Cluster node"));
  distlock_config_free(cfg);
}

/* Reads the ports of the Redlock nodes from $DISTLOCK_REDLOCK_PORTS. */
static int redlock_ports(int ports[3]) {
  const char *text = getenv("DISTLOCK_REDLOCK_PORTS");
  if (text == NULL) return 0;
  return sscanf(text, "%d %d %d", &ports[0], &ports[1], &ports[2]) == 3;
}

/* How many of the nodes hold key with value token. */
static int holders(const int ports[3], const char *key, const char *token) {
  int n = 0;
  for (int i = 0; i < 3; i++) {
    char out[128];
    const char *get[] = {"GET", key};
    if (support_redis(ports[i], 2, get, out, sizeof out) == SUPPORT_BULK &&
        strstr(out, token) != NULL) {
      n++;
    }
  }
  return n;
}

static distlock_client *open_redlock(const int ports[3], int live) {
  distlock_config *cfg = new_config();
  EXPECT(distlock_config_set_prefix(cfg, "rl"), DISTLOCK_OK);
  EXPECT(distlock_config_set_connect_timeout_ms(cfg, 500), DISTLOCK_OK);
  EXPECT(distlock_config_set_command_timeout_ms(cfg, 500), DISTLOCK_OK);
  for (int i = 0; i < 3; i++) {
    char node[128];
    /* The nodes past `live` are replaced by a port nobody listens on. */
    support_url(node, sizeof node, i < live ? ports[i] : support_free_port());
    EXPECT(distlock_config_add_node(cfg, node), DISTLOCK_OK);
  }
  distlock_client *c = OPEN_CONFIG(cfg, live >= 2 ? DISTLOCK_OK : DISTLOCK_CONNECTION);
  distlock_config_free(cfg);
  return c;
}

static void test_config_redlock(void) {
  int ports[3];
  if (!redlock_ports(ports)) {
    printf("skipping the Redlock checks: set DISTLOCK_REDLOCK_PORTS to three ports "
           "(run-tests.sh does)\n");
    return;
  }
  distlock_client *c = open_redlock(ports, 3);
  distlock_client *other = open_redlock(ports, 3);
  if (c == NULL || other == NULL) {
    distlock_client_close(c);
    distlock_client_close(other);
    return;
  }
  distlock_guard *g = must_acquire(c, "job", 0);
  char token[DISTLOCK_TOKEN_LEN + 1] = "";
  EXPECT(distlock_guard_token(g, token, sizeof token), DISTLOCK_OK);
  /* Acquire returns once a majority granted it; the third may lag. */
  CHECK(holders(ports, "rl:job", token) >= 2);
  uint64_t fence = 0;
  EXPECT(distlock_guard_fence(g, &fence), DISTLOCK_OK);
  CHECK(fence > 0);
  distlock_guard *g2 = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(other, "job", 0, 0, NULL, &g2), DISTLOCK_NOT_ACQUIRED);
  EXPECT(distlock_acquire(other, "job", 0, 100, NULL, &g2), DISTLOCK_TIMEOUT);
  EXPECT(distlock_guard_extend(g), DISTLOCK_OK);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  CHECK(holders(ports, "rl:job", token) == 0);
  distlock_guard_free(g);
  g2 = NULL;
  EXPECT(distlock_acquire(other, "job", 0, 1000, NULL, &g2), DISTLOCK_OK);
  uint64_t fence2 = 0;
  EXPECT(distlock_guard_fence(g2, &fence2), DISTLOCK_OK);
  CHECK(fence2 > fence);
  distlock_guard_free(g2);
  distlock_client_close(c);
  distlock_client_close(other);

  /* Two of three nodes are a majority; one is not. */
  c = open_redlock(ports, 2);
  if (c != NULL) {
    g = must_acquire(c, "majority", 0);
    EXPECT(distlock_guard_token(g, token, sizeof token), DISTLOCK_OK);
    CHECK(holders(ports, "rl:majority", token) == 2);
    distlock_guard_free(g);
    CHECK(holders(ports, "rl:majority", token) == 0);
    distlock_client_close(c);
  }
  c = open_redlock(ports, 1);
  CHECK(c == NULL && last_error_has("majority"));
}

/* ---- the bad input catalogue (issue 8) ---- */

#define INVALID DISTLOCK_INVALID_ARGUMENT

/* Every pointer argument NULL: refused with a message naming it, never a
 * crash, never a wait. */
static void test_null_everywhere(distlock_client *c) {
  EXPECT(distlock_client_open(NULL, NULL, NULL), INVALID);
  EXPECT(distlock_client_open_config(NULL, NULL), INVALID);
  EXPECT(distlock_config_check(NULL), INVALID);
  CHECK(last_error_has("config handle is NULL"));
  EXPECT(distlock_acquire(NULL, NULL, 0, 0, NULL, NULL), INVALID);
  CHECK(last_error_has("out is NULL"));
  distlock_guard *g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(NULL, NULL, 0, -1, NULL, &g), INVALID);
  CHECK(g == NULL && last_error_has("client handle is NULL"));
  EXPECT(distlock_acquire(c, NULL, 0, -1, NULL, &g), INVALID);
  CHECK(g == NULL && last_error_has("key is NULL"));

  uint64_t n = 7;
  EXPECT(distlock_guard_remaining_ms(NULL, &n), INVALID);
  CHECK(last_error_has("guard handle is NULL"));
  EXPECT(distlock_guard_remaining_ms(NULL, NULL), INVALID);
  EXPECT(distlock_guard_fence(NULL, NULL), INVALID);
  EXPECT(distlock_guard_is_held(NULL, NULL), INVALID);
  EXPECT(distlock_guard_token(NULL, NULL, 0), INVALID);
  EXPECT(distlock_guard_wait_lost(NULL, -1), INVALID);
  EXPECT(distlock_guard_wait_lost(NULL, INT64_MAX), INVALID);
  CHECK(n == 7);

  /* Every config function with a NULL config. */
  const char *null_cfg = "config handle is NULL";
  EXPECT(distlock_config_set_url(NULL, url), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_add_node(NULL, url), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_add_cluster_url(NULL, url), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_sentinel(NULL, "mymaster"), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_add_sentinel(NULL, "127.0.0.1:1"), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_replicas(NULL, 0, 0), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_prefix(NULL, "p"), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_ttl_ms(NULL, 1000), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_pool_size(NULL, 4), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_connect_timeout_ms(NULL, 100), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_command_timeout_ms(NULL, 100), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_max_hold_ms(NULL, 0), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_max_retry_interval_ms(NULL, 50), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_fast_path(NULL, true), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_handoff_limit(NULL, 1), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_handoff_budget_ms(NULL, 1), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_linger_ms(NULL, 1), INVALID);
  CHECK(last_error_has(null_cfg));
  const uint8_t pem[] = "-----BEGIN CERTIFICATE-----";
  EXPECT(distlock_config_set_tls_ca_file(NULL, "/etc/ca.pem"), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_tls_ca_pem(NULL, pem, sizeof pem), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_tls_client_cert_files(NULL, "/c.pem", "/k.pem"), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_tls_client_cert_pem(NULL, pem, sizeof pem, pem, sizeof pem), INVALID);
  CHECK(last_error_has(null_cfg));
  EXPECT(distlock_config_set_tls_ca_file(NULL, NULL), INVALID);
  EXPECT(distlock_config_set_tls_ca_pem(NULL, NULL, 0), INVALID);
  EXPECT(distlock_config_set_tls_client_cert_files(NULL, NULL, NULL), INVALID);
  EXPECT(distlock_config_set_tls_client_cert_pem(NULL, NULL, 0, NULL, 0), INVALID);

  /* Every other pointer argument of the TLS setters NULL. */
  distlock_config *cfg = new_config();
  EXPECT(distlock_config_set_tls_ca_file(cfg, NULL), INVALID);
  CHECK(last_error_has("path is NULL"));
  EXPECT(distlock_config_set_tls_ca_pem(cfg, NULL, sizeof pem), INVALID);
  CHECK(last_error_has("pem is NULL"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, NULL, "/k.pem"), INVALID);
  CHECK(last_error_has("cert_path is NULL"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, "/c.pem", NULL), INVALID);
  CHECK(last_error_has("key_path is NULL"));
  EXPECT(distlock_config_set_tls_client_cert_pem(cfg, NULL, 1, pem, sizeof pem), INVALID);
  CHECK(last_error_has("cert is NULL"));
  EXPECT(distlock_config_set_tls_client_cert_pem(cfg, pem, sizeof pem, NULL, 1), INVALID);
  CHECK(last_error_has("key is NULL"));
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  distlock_config_free(cfg);

  /* inspect and release_token: each pointer NULL in turn, then all. */
  char token[DISTLOCK_TOKEN_LEN + 1];
  distlock_lock_info info = {.struct_size = sizeof info};
  EXPECT(distlock_client_inspect(NULL, "k", token, sizeof token, &info), INVALID);
  CHECK(last_error_has("client handle is NULL"));
  EXPECT(distlock_client_inspect(c, NULL, token, sizeof token, &info), INVALID);
  CHECK(last_error_has("key is NULL"));
  EXPECT(distlock_client_inspect(c, "k", NULL, sizeof token, &info), INVALID);
  CHECK(last_error_has("token_buf is NULL"));
  EXPECT(distlock_client_inspect(c, "k", token, sizeof token, NULL), INVALID);
  CHECK(last_error_has("out is NULL"));
  EXPECT(distlock_client_inspect(NULL, NULL, NULL, 0, NULL), INVALID);
  bool released = true;
  EXPECT(distlock_client_release_token(NULL, "k", "t", &released), INVALID);
  CHECK(!released && last_error_has("client handle is NULL"));
  EXPECT(distlock_client_release_token(c, NULL, "t", &released), INVALID);
  CHECK(last_error_has("key is NULL"));
  EXPECT(distlock_client_release_token(c, "k", NULL, &released), INVALID);
  CHECK(last_error_has("token is NULL"));
  EXPECT(distlock_client_release_token(c, "k", "t", NULL), INVALID);
  CHECK(last_error_has("released is NULL"));
  EXPECT(distlock_client_release_token(NULL, NULL, NULL, NULL), INVALID);

  /* stats: each pointer NULL in turn, then both. */
  distlock_stats stats = {.struct_size = sizeof stats, .acquired = 7};
  EXPECT(distlock_client_stats(NULL, &stats), INVALID);
  CHECK(last_error_has("client handle is NULL"));
  CHECK(stats.struct_size == sizeof stats && stats.acquired == 0);
  EXPECT(distlock_client_stats(c, NULL), INVALID);
  CHECK(last_error_has("out is NULL"));
  EXPECT(distlock_client_stats(NULL, NULL), INVALID);
}

/* Invalid UTF-8 in every string argument, and unterminated buffers that are
 * read no further than their limit (valgrind would see a read past them). */
static void test_non_utf8_and_unterminated(distlock_client *c) {
  static const char *const bad[] = {
      "\xff",         "\x80",
      "lone\x80",     "\xc0\x80",         /* an overlong NUL */
      "\xed\xa0\x80", /* a UTF-16 surrogate */
      "\xf4\x90\x80\x80",                 /* past U+10FFFF */
      "cut\xe2\x82",  /* truncated */     "\xfe\xfe",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    distlock_guard *g = (distlock_guard *)0x1;
    EXPECT(distlock_acquire(c, bad[i], 0, 0, NULL, &g), INVALID);
    CHECK(g == NULL && last_error_has("UTF-8"));
  }
  distlock_guard *g = NULL;
  EXPECT(distlock_acquire(c, "cut\xe2\x82", 0, 0, NULL, &g), INVALID);
  CHECK(last_error_has("offset 3"));

  distlock_options o = {0};
  o.prefix = "bad\xff";
  distlock_client *oc = (distlock_client *)0x1;
  EXPECT(distlock_client_open(url, &o, &oc), INVALID);
  CHECK(oc == NULL && last_error_has("prefix") && last_error_has("UTF-8"));

  distlock_config *cfg = new_config();
  EXPECT(distlock_config_add_node(cfg, "redis://127.0.0.1:1/\xff"), INVALID);
  CHECK(last_error_has("UTF-8"));
  EXPECT(distlock_config_add_cluster_url(cfg, "\xc0\x80"), INVALID);
  CHECK(last_error_has("UTF-8"));
  EXPECT(distlock_config_set_sentinel(cfg, "m\xed\xa0\x80"), INVALID);
  CHECK(last_error_has("UTF-8"));
  EXPECT(distlock_config_add_sentinel(cfg, "127.0.0.1:\x80"), INVALID);
  CHECK(last_error_has("UTF-8"));
  EXPECT(distlock_config_set_prefix(cfg, "\xf4\x90\x80\x80"), INVALID);
  CHECK(last_error_has("UTF-8"));
  EXPECT(distlock_config_set_tls_ca_file(cfg, "/tmp/\xff.pem"), INVALID);
  CHECK(last_error_has("path") && last_error_has("UTF-8"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, "\xc0\x80", "/k.pem"), INVALID);
  CHECK(last_error_has("cert_path") && last_error_has("UTF-8"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, "/c.pem", "cut\xe2\x82"), INVALID);
  CHECK(last_error_has("key_path") && last_error_has("UTF-8"));
  /* PEM bytes are bytes: invalid UTF-8 is simply no PEM. */
  const uint8_t junk[] = {0xff, 0xfe, 0x80};
  EXPECT(distlock_config_set_tls_ca_pem(cfg, junk, sizeof junk), INVALID);
  CHECK(last_error_has("holds no certificate"));
  char token[DISTLOCK_TOKEN_LEN + 1];
  distlock_lock_info info = {.struct_size = sizeof info};
  bool released = true;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    EXPECT(distlock_client_inspect(c, bad[i], token, sizeof token, &info), INVALID);
    CHECK(last_error_has("key") && last_error_has("UTF-8"));
    EXPECT(distlock_client_release_token(c, bad[i], "t", &released), INVALID);
    CHECK(last_error_has("key") && last_error_has("UTF-8"));
    EXPECT(distlock_client_release_token(c, "k", bad[i], &released), INVALID);
    CHECK(!released && last_error_has("token") && last_error_has("UTF-8"));
  }
  /* Nothing of it was kept: the default server. */
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);

  /* Exactly one byte more than allowed, and no NUL anywhere. */
  char *key = malloc(DISTLOCK_MAX_KEY_LEN + 1);
  memset(key, 'k', DISTLOCK_MAX_KEY_LEN + 1);
  EXPECT(distlock_acquire(c, key, 0, 0, NULL, &g), INVALID);
  CHECK(last_error_has("longer than 1024"));
  free(key);
  char *long_url = malloc(DISTLOCK_MAX_URL_LEN + 1);
  memset(long_url, 'u', DISTLOCK_MAX_URL_LEN + 1);
  EXPECT(distlock_client_open(long_url, NULL, &oc), INVALID);
  EXPECT(distlock_config_set_url(cfg, long_url), INVALID);
  EXPECT(distlock_config_add_sentinel(cfg, long_url), INVALID);
  free(long_url);
  char *prefix = malloc(DISTLOCK_MAX_PREFIX_LEN + 1);
  memset(prefix, 'p', DISTLOCK_MAX_PREFIX_LEN + 1);
  EXPECT(distlock_config_set_prefix(cfg, prefix), INVALID);
  o.prefix = prefix;
  EXPECT(distlock_client_open(url, &o, &oc), INVALID);
  free(prefix);
  char *master = malloc(DISTLOCK_MAX_MASTER_NAME_LEN + 1);
  memset(master, 'm', DISTLOCK_MAX_MASTER_NAME_LEN + 1);
  EXPECT(distlock_config_set_sentinel(cfg, master), INVALID);
  free(master);
  key = malloc(DISTLOCK_MAX_KEY_LEN + 1);
  memset(key, 'k', DISTLOCK_MAX_KEY_LEN + 1);
  EXPECT(distlock_client_inspect(c, key, token, sizeof token, &info), INVALID);
  CHECK(last_error_has("longer than 1024"));
  EXPECT(distlock_client_release_token(c, key, "t", &released), INVALID);
  CHECK(last_error_has("longer than 1024"));
  free(key);
  char *long_token = malloc(DISTLOCK_MAX_TOKEN_LEN + 1);
  memset(long_token, 't', DISTLOCK_MAX_TOKEN_LEN + 1);
  EXPECT(distlock_client_release_token(c, "k", long_token, &released), INVALID);
  CHECK(last_error_has("token is longer than 4096"));
  free(long_token);
  char *path = malloc(DISTLOCK_MAX_PATH_LEN + 1);
  memset(path, '/', DISTLOCK_MAX_PATH_LEN + 1);
  EXPECT(distlock_config_set_tls_ca_file(cfg, path), INVALID);
  CHECK(last_error_has("path is longer than 4096"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, path, "/k.pem"), INVALID);
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, "/c.pem", path), INVALID);
  free(path);
  distlock_config_free(cfg);
}

static void *wait_lost_forever_main(void *arg) {
  struct lost_waiter *w = arg;
  w->status = distlock_guard_wait_lost(w->guard, INT64_MAX);
  return NULL;
}

/* UINT64_MAX and INT64_MIN/MAX wherever a number goes. */
static void test_absurd_numbers(distlock_client *c) {
  distlock_client *oc = (distlock_client *)0x1;
  distlock_options o = {0};
  o.ttl_ms = UINT64_MAX;
  EXPECT(distlock_client_open(url, &o, &oc), INVALID);
  CHECK(last_error_has("ttl"));
  o = (distlock_options){0};
  o.connect_timeout_ms = UINT64_MAX;
  EXPECT(distlock_client_open(url, &o, &oc), INVALID);
  CHECK(last_error_has("connect_timeout"));
  o = (distlock_options){0};
  o.pool_size = UINT32_MAX;
  EXPECT(distlock_client_open(url, &o, &oc), INVALID);
  CHECK(last_error_has("pool_size"));
  CHECK(oc == NULL);

  distlock_config *cfg = new_config();
  EXPECT(distlock_config_set_ttl_ms(cfg, UINT64_MAX), INVALID);
  EXPECT(distlock_config_set_connect_timeout_ms(cfg, UINT64_MAX), INVALID);
  EXPECT(distlock_config_set_pool_size(cfg, UINT32_MAX), INVALID);
  EXPECT(distlock_config_set_max_hold_ms(cfg, UINT64_MAX), INVALID);
  CHECK(last_error_has("max_hold"));
  EXPECT(distlock_config_set_max_retry_interval_ms(cfg, UINT64_MAX), INVALID);
  CHECK(last_error_has("max_retry_interval"));
  EXPECT(distlock_config_set_handoff_budget_ms(cfg, UINT64_MAX), INVALID);
  CHECK(last_error_has("handoff_budget"));
  EXPECT(distlock_config_set_handoff_limit(cfg, UINT32_MAX), INVALID);
  EXPECT(distlock_config_set_replicas(cfg, 1, UINT64_MAX), INVALID);
  EXPECT(distlock_config_set_replicas(cfg, UINT32_MAX, UINT64_MAX), INVALID);
  /* Off: the timeout is not looked at. */
  EXPECT(distlock_config_set_replicas(cfg, 0, UINT64_MAX), DISTLOCK_OK);
  /* The largest values accepted. */
  EXPECT(distlock_config_set_max_hold_ms(cfg, 365ull * 24 * 3600 * 1000), DISTLOCK_OK);
  EXPECT(distlock_config_set_max_retry_interval_ms(cfg, 3600ull * 1000), DISTLOCK_OK);
  EXPECT(distlock_config_set_handoff_budget_ms(cfg, 3600ull * 1000), DISTLOCK_OK);
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_OK);
  distlock_client *big = OPEN_CONFIG(cfg, DISTLOCK_OK);
  distlock_config_free(cfg);
  if (big != NULL) {
    distlock_guard *g = must_acquire(big, "absurd-config", 0);
    EXPECT(distlock_guard_release(g), DISTLOCK_OK);
    distlock_guard_free(g);
    distlock_client_close(big);
  }

  /* Timeouts at both ends of int64_t take a free lock at once. */
  distlock_guard *g = NULL;
  EXPECT(distlock_acquire(c, "absurd-timeout", 0, INT64_MAX, NULL, &g), DISTLOCK_OK);
  distlock_guard_free(g);
  g = NULL;
  EXPECT(distlock_acquire(c, "absurd-timeout", 0, INT64_MIN, NULL, &g), DISTLOCK_OK);
  /* A buffer claimed larger than it is: only the token and NUL go in it. */
  char token[DISTLOCK_TOKEN_LEN + 1];
  EXPECT(distlock_guard_token(g, token, SIZE_MAX), DISTLOCK_OK);
  CHECK(strlen(token) == DISTLOCK_TOKEN_LEN);
  distlock_guard_free(g);
  /* An absurd lease is refused whatever the timeout. */
  g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, "absurd-timeout", UINT64_MAX, INT64_MAX, NULL, &g), INVALID);
  CHECK(g == NULL && last_error_has("ttl"));

  /* On a held lock they wait, until cancelled. */
  distlock_client *other = open_client(NULL);
  distlock_guard *holder = must_acquire(other, "absurd-timeout", 0);
  const int64_t forever[] = {INT64_MAX, INT64_MIN};
  for (int i = 0; i < 2; i++) {
    distlock_cancel *cancel = distlock_cancel_new();
    cancel_a_wait(c, "absurd-timeout", forever[i], cancel);
    distlock_cancel_free(cancel);
  }

  /* wait_lost with INT64_MAX ends when the lock goes; on a released guard,
   * both ends of int64_t return at once. */
  EXPECT(distlock_guard_wait_lost(holder, 0), DISTLOCK_TIMEOUT);
  struct lost_waiter lw = {.guard = holder, .status = -1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, wait_lost_forever_main, &lw) == 0);
  EXPECT(distlock_guard_release(holder), DISTLOCK_OK);
  CHECK(pthread_join(t, NULL) == 0);
  EXPECT(lw.status, DISTLOCK_LOST);
  EXPECT(distlock_guard_wait_lost(holder, INT64_MAX), DISTLOCK_LOST);
  EXPECT(distlock_guard_wait_lost(holder, INT64_MIN), DISTLOCK_LOST);
  distlock_guard_free(holder);
  distlock_client_close(other);
}

/* Whether someone subscribes to channel within five seconds: a waiter on
 * that lock is then inside distlock_acquire. Nothing signals it, so this
 * asks the server every 5 ms. */
static int wait_subscribed(const char *channel) {
  uint64_t t0 = now_ms();
  while (now_ms() - t0 < 5000) {
    char out[256];
    const char *numsub[] = {"PUBSUB", "NUMSUB", channel};
    if (support_redis(port, 3, numsub, out, sizeof out) == SUPPORT_ARRAY) {
      const char *count = strrchr(out, ' ');
      if (count != NULL && atoi(count + 1) > 0) return 1;
    }
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return 0;
}

/* A client closed while another thread waits in distlock_acquire on it:
 * the wait finishes normally, and later calls on the handle are refused. */
static void test_close_during_a_call(void) {
  distlock_client *holder_client = open_client(NULL);
  distlock_client *c = open_client(NULL);
  if (holder_client == NULL || c == NULL) return;
  distlock_guard *holder = must_acquire(holder_client, "closing", 0);
  struct waiter w = {.client = c, .key = "closing", .timeout_ms = 60000, .cancel = NULL};
  pthread_t t;
  start_waiter(&t, &w);
  CHECK(wait_subscribed("distlock:closing"));
  distlock_client_close(c);
  distlock_guard *g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, "closing-other", 0, 0, NULL, &g), INVALID);
  CHECK(g == NULL && last_error_has("freed"));
  EXPECT(distlock_guard_release(holder), DISTLOCK_OK);
  finish_waiter(t, &w);
  EXPECT(w.status, DISTLOCK_OK);
  bool held = false;
  EXPECT(distlock_guard_is_held(w.guard, &held), DISTLOCK_OK);
  CHECK(held);
  EXPECT(distlock_guard_extend(w.guard), DISTLOCK_OK);
  EXPECT(distlock_guard_release(w.guard), DISTLOCK_OK);
  CHECK(key_exists("distlock:closing") == 0);
  distlock_guard_free(w.guard);
  distlock_guard_free(holder);
  distlock_client_close(c);
  distlock_client_close(holder_client);
}

/* ---- inspect and release_token ---- */

/* Copies the guard's token into buf (DISTLOCK_TOKEN_LEN + 1 bytes). */
static void token_of(const distlock_guard *g, char *buf) {
  EXPECT(distlock_guard_token(g, buf, DISTLOCK_TOKEN_LEN + 1), DISTLOCK_OK);
}

static void test_inspect(distlock_client *c) {
  char token[DISTLOCK_TOKEN_LEN + 1];
  distlock_lock_info info;

  /* A name never used: free, no fence, an empty token. */
  memset(&info, 0x5a, sizeof info);
  info.struct_size = sizeof info;
  memset(token, 'x', sizeof token);
  EXPECT(distlock_client_inspect(c, "inspect-unused", token, sizeof token, &info), DISTLOCK_OK);
  CHECK(!info.held && !info.has_remaining && !info.has_fence);
  CHECK(info.token_len == 0 && info.remaining_ms == 0 && info.fence == 0);
  CHECK(info.struct_size == sizeof info && token[0] == '\0');
  CHECK(key_exists("distlock:inspect-unused") == 0);

  /* Held: the guard's token, a lease within its TTL, its fence. */
  distlock_guard *g = must_acquire(c, "inspected", 5000);
  char mine[DISTLOCK_TOKEN_LEN + 1];
  token_of(g, mine);
  uint64_t fence = 0;
  EXPECT(distlock_guard_fence(g, &fence), DISTLOCK_OK);
  EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &info), DISTLOCK_OK);
  CHECK(info.held && info.token_len == DISTLOCK_TOKEN_LEN && strcmp(token, mine) == 0);
  CHECK(info.has_remaining && info.remaining_ms > 0 && info.remaining_ms <= 5000);
  CHECK(info.has_fence && info.fence >= fence);
  uint64_t highest = info.fence;

  /* The token is optional; a buffer too small is refused, the rest filled
   * and the size needed told. */
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(distlock_client_inspect(c, "inspected", NULL, 0, &info), DISTLOCK_OK);
  CHECK(info.held && info.token_len == DISTLOCK_TOKEN_LEN && info.has_fence);
  char small[DISTLOCK_TOKEN_LEN];
  memset(small, 'x', sizeof small);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(distlock_client_inspect(c, "inspected", small, sizeof small, &info), INVALID);
  CHECK(last_error_has("token_buf_len is 36; the token needs 37 bytes"));
  CHECK(info.held && info.token_len == DISTLOCK_TOKEN_LEN && info.fence == highest);
  CHECK(small[0] == 'x' && small[sizeof small - 1] == 'x');
  EXPECT(distlock_client_inspect(c, "inspected", NULL, 8, &info), INVALID);
  CHECK(last_error_has("token_buf is NULL"));

  /* struct_size: smaller than the first version of the struct (up to
   * fence) is refused before anything is written; larger (a newer
   * header's struct) gets nothing past what this library knows. */
  const size_t first = offsetof(distlock_lock_info, fence) + sizeof(uint64_t);
  memset(&info, 0x5a, sizeof info);
  info.struct_size = first - 1;
  unsigned char before[sizeof info];
  memcpy(before, &info, sizeof info);
  EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &info), INVALID);
  CHECK(last_error_has("struct_size"));
  CHECK(memcmp(before, &info, sizeof info) == 0);
  info.struct_size = 0;
  EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &info), INVALID);
  struct {
    distlock_lock_info info;
    unsigned char tail[32];
  } newer;
  memset(&newer, 0xa5, sizeof newer);
  newer.info.struct_size = sizeof newer;
  EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &newer.info), DISTLOCK_OK);
  CHECK(newer.info.held && newer.info.struct_size == sizeof newer);
  int untouched = 1;
  for (size_t i = 0; i < sizeof newer.tail; i++) untouched &= newer.tail[i] == 0xa5;
  CHECK(untouched);
  /* A program built against the first version gets its fields, and no
   * byte past them; one whose struct_size falls inside the last fields
   * gets every field that fits, and no byte past its struct_size. */
  const size_t olds[] = {first, sizeof info - 1};
  for (size_t k = 0; k < 2; k++) {
    memset(&newer, 0xa5, sizeof newer);
    newer.info.struct_size = olds[k];
    EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &newer.info), DISTLOCK_OK);
    CHECK(newer.info.held && newer.info.has_fence && newer.info.fence == highest);
    CHECK(newer.info.token_len == DISTLOCK_TOKEN_LEN && newer.info.struct_size == olds[k]);
    const unsigned char *raw = (const unsigned char *)&newer;
    untouched = 1;
    for (size_t i = olds[k]; i < sizeof newer; i++) untouched &= raw[i] == 0xa5;
    CHECK(untouched);
  }
  /* The holder fields of a lock this client took: this process's. */
  memset(&info, 0x5a, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &info), DISTLOCK_OK);
  CHECK(info.has_holder);
  CHECK(info.holder_pid == (uint32_t)getpid());
  CHECK(info.holder_host[0] != '\0' && strlen(info.holder_host) <= DISTLOCK_MAX_HOLDER_HOST_LEN);
  CHECK(info.holder_label[0] == '\0');

  /* Released: free again, and the fence stays; the next acquisition's
   * fence is above it. */
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  info.struct_size = sizeof info;
  EXPECT(distlock_client_inspect(c, "inspected", token, sizeof token, &info), DISTLOCK_OK);
  CHECK(!info.held && !info.has_remaining && info.token_len == 0 && token[0] == '\0');
  CHECK(info.has_fence && info.fence == highest);
  distlock_guard_free(g);
  g = must_acquire(c, "inspected", 0);
  uint64_t next = 0;
  EXPECT(distlock_guard_fence(g, &next), DISTLOCK_OK);
  CHECK(next > highest);
  distlock_guard_free(g);

  /* A key set by something else, longer than any token and without an
   * expiry: reported as it is. */
  char foreign[101];
  memset(foreign, 'f', 100);
  foreign[100] = '\0';
  char out[32];
  const char *set[] = {"SET", "distlock:inspect-foreign", foreign};
  CHECK(support_redis(port, 3, set, out, sizeof out) == SUPPORT_STATUS);
  EXPECT(distlock_client_inspect(c, "inspect-foreign", token, sizeof token, &info), INVALID);
  CHECK(info.held && info.token_len == 100 && !info.has_remaining && !info.has_fence);
  char *big = malloc(info.token_len + 1);
  EXPECT(distlock_client_inspect(c, "inspect-foreign", big, info.token_len + 1, &info),
         DISTLOCK_OK);
  CHECK(strcmp(big, foreign) == 0);
  bool released = false;
  EXPECT(distlock_client_release_token(c, "inspect-foreign", big, &released), DISTLOCK_OK);
  CHECK(released && key_exists("distlock:inspect-foreign") == 0);
  free(big);

  /* Bad keys, as for distlock_acquire. */
  EXPECT(distlock_client_inspect(c, "", token, sizeof token, &info), INVALID);
  CHECK(last_error_has("lock name is empty") && !info.held);
}

static void test_release_token(distlock_client *c) {
  /* A short lease, so that the guard's renewal (a third of it) comes
   * soon. */
  distlock_guard *g = must_acquire(c, "forced", 1500);
  char token[DISTLOCK_TOKEN_LEN + 1];
  token_of(g, token);
  bool released = true;
  EXPECT(distlock_client_release_token(c, "forced", "not-the-token", &released), DISTLOCK_OK);
  CHECK(!released);
  char shorter[DISTLOCK_TOKEN_LEN + 1];
  memcpy(shorter, token, sizeof shorter);
  shorter[DISTLOCK_TOKEN_LEN - 1] = '\0';
  released = true;
  EXPECT(distlock_client_release_token(c, "forced", shorter, &released), DISTLOCK_OK);
  CHECK(!released);
  EXPECT(distlock_client_release_token(c, "forced", "", &released), INVALID);
  CHECK(last_error_has("token is empty"));
  /* Still held, by the guard. */
  bool held = false;
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_OK);
  CHECK(held && key_exists("distlock:forced") == 1);
  EXPECT(distlock_guard_wait_lost(g, 0), DISTLOCK_TIMEOUT);

  /* The right token frees it; the guard finds out at its next renewal. */
  EXPECT(distlock_client_release_token(c, "forced", token, &released), DISTLOCK_OK);
  CHECK(released && key_exists("distlock:forced") == 0);
  EXPECT(distlock_guard_wait_lost(g, 5000), DISTLOCK_LOST);
  EXPECT(distlock_guard_is_held(g, &held), DISTLOCK_OK);
  CHECK(!held);
  EXPECT(distlock_client_release_token(c, "forced", token, &released), DISTLOCK_OK);
  CHECK(!released);
  /* A later owner is not freed by the old token. */
  distlock_guard *next = must_acquire(c, "forced", 0);
  EXPECT(distlock_client_release_token(c, "forced", token, &released), DISTLOCK_OK);
  CHECK(!released && key_exists("distlock:forced") == 1);
  EXPECT(distlock_guard_release(g), DISTLOCK_LOST);
  distlock_guard_free(g);
  distlock_guard_free(next);
  EXPECT(distlock_client_release_token(c, "never-held", token, &released), DISTLOCK_OK);
  CHECK(!released);
}

/* ---- TLS: a private CA, and mutual TLS ---- */

static const char *tls_dir;
static int tls_port, mtls_port;

/* The path of file name in the test PKI (a static buffer per slot). */
static const char *pki(int slot, const char *name) {
  static char paths[4][512];
  snprintf(paths[slot], sizeof paths[slot], "%s/%s", tls_dir, name);
  return paths[slot];
}

/* The whole file at path, NUL-terminated; *len is its length. */
static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  uint8_t *buf = malloc(DISTLOCK_MAX_PEM_LEN + 1);
  *len = fread(buf, 1, DISTLOCK_MAX_PEM_LEN, f);
  buf[*len] = '\0';
  fclose(f);
  return buf;
}

/* A config for the TLS server on port p, with quick timeouts. */
static distlock_config *tls_config(int p) {
  char u[64];
  snprintf(u, sizeof u, "rediss://127.0.0.1:%d/0", p);
  distlock_config *cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, u), DISTLOCK_OK);
  EXPECT(distlock_config_set_connect_timeout_ms(cfg, 2000), DISTLOCK_OK);
  EXPECT(distlock_config_set_command_timeout_ms(cfg, 2000), DISTLOCK_OK);
  return cfg;
}

/* Takes and gives back a lock through c, and sees a second try fail
 * meanwhile: the client really works over TLS. */
static void lock_over(distlock_client *c, const char *key) {
  if (c == NULL) return;
  distlock_guard *g = must_acquire(c, key, 0);
  distlock_guard *g2 = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, key, 0, 0, NULL, &g2), DISTLOCK_NOT_ACQUIRED);
  distlock_lock_info info = {.struct_size = sizeof info};
  EXPECT(distlock_client_inspect(c, key, NULL, 0, &info), DISTLOCK_OK);
  CHECK(info.held);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  distlock_guard_free(g);
  distlock_client_close(c);
}

static void test_tls(void) {
  tls_dir = getenv("DISTLOCK_TLS_DIR");
  const char *p1 = getenv("DISTLOCK_TLS_PORT"), *p2 = getenv("DISTLOCK_MTLS_PORT");
  if (tls_dir == NULL || p1 == NULL || p2 == NULL) {
    printf("skipping the TLS checks: set DISTLOCK_TLS_DIR, DISTLOCK_TLS_PORT and "
           "DISTLOCK_MTLS_PORT (run-tests.sh does)\n");
    return;
  }
  tls_port = atoi(p1);
  mtls_port = atoi(p2);

  /* Without the CA, the server's certificate is not trusted, and the
   * message says what to set. */
  distlock_config *cfg = tls_config(tls_port);
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  CHECK(last_error_has("UnknownIssuer") && last_error_has("give the CA that signed it"));
  char u[64];
  snprintf(u, sizeof u, "rediss://127.0.0.1:%d/0", tls_port);
  distlock_client *c = (distlock_client *)0x1;
  distlock_options quick = {.connect_timeout_ms = 2000};
  EXPECT(distlock_client_open(u, &quick, &c), DISTLOCK_CONNECTION);
  CHECK(c == NULL && last_error_has("give the CA that signed it"));

  /* The CA from its file. */
  EXPECT(distlock_config_set_tls_ca_file(cfg, pki(0, "ca.pem")), DISTLOCK_OK);
  lock_over(OPEN_CONFIG(cfg, DISTLOCK_OK), "tls-ca-file");
  /* The wrong CA replaces it: untrusted again. */
  EXPECT(distlock_config_set_tls_ca_file(cfg, pki(0, "other-ca.pem")), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  CHECK(last_error_has("UnknownIssuer"));
  distlock_config_free(cfg);

  /* The CA from PEM bytes (not NUL-terminated: the length counts). */
  size_t ca_len = 0;
  uint8_t *ca = slurp(pki(0, "ca.pem"), &ca_len);
  CHECK(ca != NULL && ca_len > 0);
  if (ca == NULL) return;
  ca[ca_len] = '#';
  cfg = tls_config(tls_port);
  EXPECT(distlock_config_set_tls_ca_pem(cfg, ca, ca_len), DISTLOCK_OK);
  lock_over(OPEN_CONFIG(cfg, DISTLOCK_OK), "tls-ca-pem");
  /* The same server, plain text: refused. */
  char plain[64];
  snprintf(plain, sizeof plain, "redis://127.0.0.1:%d/0", tls_port);
  EXPECT(distlock_config_set_url(cfg, plain), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  CHECK(last_error_has("use rediss://"));
  /* Custom certificates fit a single server or Redlock, not a cluster or
   * sentinel: the same refusal as the Rust builder's. */
  EXPECT(distlock_config_add_cluster_url(cfg, "rediss://127.0.0.1:1"), DISTLOCK_OK);
  CHECK(check_says(cfg, REFUSED_TLS_DEPLOYMENT));
  EXPECT(distlock_config_set_sentinel(cfg, "mymaster"), DISTLOCK_OK);
  EXPECT(distlock_config_add_sentinel(cfg, "127.0.0.1:1"), DISTLOCK_OK);
  CHECK(check_says(cfg, REFUSED_TLS_DEPLOYMENT));
  distlock_config_free(cfg);

  /* Mutual TLS: without a client certificate the server hangs up. */
  cfg = tls_config(mtls_port);
  EXPECT(distlock_config_set_tls_ca_pem(cfg, ca, ca_len), DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  CHECK(last_error_has("requires a client certificate"));
  /* With one, from files. */
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, pki(0, "client.pem"),
                                                   pki(1, "client.key")),
         DISTLOCK_OK);
  lock_over(OPEN_CONFIG(cfg, DISTLOCK_OK), "mtls-files");
  /* A certificate of a CA the server does not trust. */
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, pki(0, "other-client.pem"),
                                                   pki(1, "other-client.key")),
         DISTLOCK_OK);
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  CHECK(last_error_has("does not trust the client certificate"));
  /* A key that is not the certificate's is refused by the setter, which
   * keeps the certificate set before. */
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, pki(0, "client.pem"),
                                                   pki(1, "other-client.key")),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("other-client.key") && last_error_has("is not the key of") &&
        last_error_has("client.pem"));
  OPEN_CONFIG(cfg, DISTLOCK_CONNECTION);
  distlock_config_free(cfg);
  /* From PEM bytes. */
  size_t cert_len = 0, key_len = 0;
  uint8_t *cert = slurp(pki(0, "client.pem"), &cert_len);
  uint8_t *key = slurp(pki(0, "client.key"), &key_len);
  CHECK(cert != NULL && key != NULL);
  if (cert != NULL && key != NULL) {
    cfg = tls_config(mtls_port);
    EXPECT(distlock_config_set_tls_ca_file(cfg, pki(0, "ca.pem")), DISTLOCK_OK);
    EXPECT(distlock_config_set_tls_client_cert_pem(cfg, cert, cert_len, key, key_len),
           DISTLOCK_OK);
    lock_over(OPEN_CONFIG(cfg, DISTLOCK_OK), "mtls-pem");
    /* Swapped: the key where the certificate goes. Nothing of the key is
     * shown. */
    EXPECT(distlock_config_set_tls_client_cert_pem(cfg, key, key_len, cert, cert_len),
           DISTLOCK_INVALID_ARGUMENT);
    CHECK(last_error_has("the TLS client certificate PEM holds no certificate"));
    char key_line[65] = "";
    const char *body = strchr((const char *)key, '\n');
    if (body != NULL) snprintf(key_line, 17, "%s", body + 1);
    CHECK(strlen(key_line) == 16 && !last_error_has(key_line));
    EXPECT(distlock_config_set_tls_client_cert_pem(cfg, cert, cert_len, cert, cert_len),
           DISTLOCK_INVALID_ARGUMENT);
    CHECK(last_error_has("the TLS client key PEM holds no private key"));
    /* The key file given as the CA: refused, its content not shown. */
    EXPECT(distlock_config_set_tls_ca_file(cfg, pki(0, "client.key")), DISTLOCK_INVALID_ARGUMENT);
    CHECK(last_error_has("client.key") && last_error_has("holds no certificate") &&
          !last_error_has(key_line));
    /* Still the settings that worked. */
    lock_over(OPEN_CONFIG(cfg, DISTLOCK_OK), "mtls-pem-kept");
    distlock_config_free(cfg);
  }
  free(cert);
  free(key);
  free(ca);

  /* Files that cannot be read are named, with the reason. */
  cfg = new_config();
  const char *missing = pki(2, "no-such-dir/ca.pem");
  EXPECT(distlock_config_set_tls_ca_file(cfg, missing), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("cannot read the TLS CA file") && last_error_has(missing) &&
        last_error_has("No such file"));
  EXPECT(distlock_config_set_tls_ca_file(cfg, tls_dir), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has(tls_dir) && last_error_has("directory"));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, pki(0, "client.pem"), missing),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("cannot read the TLS client key file") && last_error_has(missing));
  EXPECT(distlock_config_set_tls_client_cert_files(cfg, missing, pki(1, "client.key")),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("cannot read the TLS client certificate file"));
  EXPECT(distlock_config_set_tls_ca_file(cfg, ""), DISTLOCK_INVALID_ARGUMENT);
  /* PEM bytes: empty, too many. */
  uint8_t one = '-';
  EXPECT(distlock_config_set_tls_ca_pem(cfg, &one, 0), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("empty"));
  uint8_t *huge = calloc(DISTLOCK_MAX_PEM_LEN + 1, 1);
  EXPECT(distlock_config_set_tls_ca_pem(cfg, huge, DISTLOCK_MAX_PEM_LEN + 1),
         DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("at most 1048576"));
  EXPECT(distlock_config_set_tls_client_cert_pem(cfg, huge, DISTLOCK_MAX_PEM_LEN + 1, &one, 1),
         DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_config_set_tls_client_cert_pem(cfg, &one, 1, huge, SIZE_MAX),
         DISTLOCK_INVALID_ARGUMENT);
  free(huge);
  /* None of it was kept: no TLS settings, so a cluster is fine. */
  EXPECT(distlock_config_add_cluster_url(cfg, "rediss://127.0.0.1:1"), DISTLOCK_OK);
  EXPECT(distlock_config_check(cfg), DISTLOCK_OK);
  distlock_config_free(cfg);
}

/* ---- client stats (issue 19) ---- */

static distlock_stats stats_of(distlock_client *c) {
  distlock_stats s;
  memset(&s, 0xA5, sizeof s);
  s.struct_size = sizeof s;
  EXPECT(distlock_client_stats(c, &s), DISTLOCK_OK);
  return s;
}

static int renewed_twice(const distlock_stats *s) { return s->renewals >= 2; }
static int lost_one(const distlock_stats *s) { return s->lost >= 1; }

/* Polls c's stats every 5 ms until done says so or limit_ms has passed;
 * returns the last snapshot. */
static distlock_stats stats_until(distlock_client *c, uint64_t limit_ms,
                                  int (*done)(const distlock_stats *)) {
  uint64_t end = now_ms() + limit_ms;
  for (;;) {
    distlock_stats s = stats_of(c);
    if (done(&s) || now_ms() > end) return s;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* Each counter moves by exactly what a scripted workload did. */
static void test_stats(void) {
  distlock_options opts = {.ttl_ms = 300};
  distlock_client *c = open_client(&opts);
  distlock_client *other = open_client(NULL);
  if (c == NULL || other == NULL) return;
  distlock_stats zero;
  memset(&zero, 0, sizeof zero);
  zero.struct_size = sizeof zero;
  distlock_stats s = stats_of(c);
  CHECK(memcmp(&s, &zero, sizeof s) == 0);

  /* Two uncontended cycles. */
  for (int i = 0; i < 2; i++) {
    distlock_guard *g = must_acquire(c, "stats-free", 0);
    EXPECT(distlock_guard_release(g), DISTLOCK_OK);
    distlock_guard_free(g);
  }
  s = stats_of(c);
  CHECK(s.acquired == 2 && s.contended == 0);
  CHECK(s.wait_p50_us <= s.wait_p99_us && s.wait_p99_us <= s.wait_max_us && s.wait_max_us > 0);

  /* The other client holds a lock: a timeout; a wait cancelled from this
   * thread while it runs, then one whose handle was triggered before; and
   * a try that finds it held (not counted: it did not wait). */
  distlock_guard *holder = must_acquire(other, "stats-held", 0);
  distlock_guard *g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(c, "stats-held", 0, 50, NULL, &g), DISTLOCK_TIMEOUT);
  s = stats_of(c);
  CHECK(s.timed_out == 1 && s.cancelled == 0);
  distlock_cancel *cancel = distlock_cancel_new();
  cancel_a_wait(c, "stats-held", -1, cancel);
  s = stats_of(c);
  CHECK(s.cancelled == 1 && s.timed_out == 1);
  EXPECT(distlock_acquire(c, "stats-held", 0, 1000, cancel, &g), DISTLOCK_CANCELLED);
  distlock_cancel_free(cancel);
  EXPECT(distlock_acquire(c, "stats-held", 0, 0, NULL, &g), DISTLOCK_NOT_ACQUIRED);
  s = stats_of(c);
  CHECK(s.cancelled == 2 && s.timed_out == 1 && s.acquired == 2 && s.contended == 0);
  distlock_guard_free(holder);

  /* A held lock is renewed (every 100 ms for its 300 ms lease) ... */
  g = must_acquire(c, "stats-renewed", 0);
  s = stats_until(c, 5000, renewed_twice);
  CHECK(s.renewals >= 2 && s.renewal_failures == 0 && s.acquired == 3);
  /* ... until its key is deleted behind its back: one loss. */
  char out[32];
  CHECK(redis1("DEL", "distlock:stats-renewed", out, sizeof out) == SUPPORT_INTEGER);
  CHECK(strcmp(out, "1") == 0);
  EXPECT(distlock_guard_wait_lost(g, 5000), DISTLOCK_LOST);
  s = stats_until(c, 1000, lost_one);
  CHECK(s.lost == 1);
  EXPECT(distlock_guard_release(g), DISTLOCK_LOST);
  distlock_guard_free(g);
  s = stats_of(c);
  CHECK(s.lost == 1); /* a release after the loss is no second loss */
  CHECK(s.wait_p50_us <= s.wait_p99_us && s.wait_p99_us <= s.wait_max_us);
  CHECK(s.local_handoffs == 0 && s.feed_reconnects == 0);

  /* An older caller's struct that ends after `contended` gets just that:
   * nothing past struct_size is written. */
  union {
    distlock_stats stats;
    unsigned char bytes[sizeof(distlock_stats) + 16];
  } buf;
  const size_t older = offsetof(distlock_stats, contended) + sizeof(uint64_t);
  memset(&buf, 0xA5, sizeof buf);
  buf.stats.struct_size = older;
  EXPECT(distlock_client_stats(c, &buf.stats), DISTLOCK_OK);
  CHECK(buf.stats.struct_size == older && buf.stats.acquired == 3 && buf.stats.contended == 0);
  int untouched = 1;
  for (size_t i = older; i < sizeof buf.bytes; i++) untouched &= buf.bytes[i] == 0xA5;
  CHECK(untouched);
  /* Too small for even `acquired`: refused, nothing written. */
  memset(&buf, 0xA5, sizeof buf);
  buf.stats.struct_size = sizeof(size_t) + 7;
  EXPECT(distlock_client_stats(c, &buf.stats), INVALID);
  CHECK(last_error_has("struct_size"));
  untouched = 1;
  for (size_t i = sizeof(size_t); i < sizeof buf.bytes; i++) untouched &= buf.bytes[i] == 0xA5;
  CHECK(untouched);
  buf.stats.struct_size = 0;
  EXPECT(distlock_client_stats(c, &buf.stats), INVALID);

  /* The counters are the client's: the other client's stayed its own. */
  s = stats_of(other);
  CHECK(s.acquired == 1 && s.timed_out == 0 && s.cancelled == 0 && s.lost == 0);
  distlock_client_close(other);
  distlock_client_close(c);
}

/* Has c linger on `name` (at most 10 s): c's first release of a name goes
 * to the server and subscribes to the announcements of clients that want
 * it, and once c hears them a release leaves the lock held on the server.
 * Cycles until one does; the last acquisition came from the server, so
 * `lingered` is as it was. Returns 1 if the lock stayed, with the fence of
 * that last acquisition in *fence. */
static int linger_on(distlock_client *c, const char *name, uint64_t *fence) {
  char key[128];
  snprintf(key, sizeof key, "distlock:%s", name);
  uint64_t end = now_ms() + 10000;
  for (;;) {
    distlock_guard *g = NULL;
    int32_t st = distlock_acquire(c, name, 0, 5000, NULL, &g);
    if (st != DISTLOCK_OK) {
      EXPECT(st, DISTLOCK_OK);
      return 0;
    }
    EXPECT(distlock_guard_fence(g, fence), DISTLOCK_OK);
    int32_t released = distlock_guard_release(g);
    distlock_guard_free(g);
    if (released != DISTLOCK_OK) {
      EXPECT(released, DISTLOCK_OK);
      return 0;
    }
    if (key_exists(key) == 1) return 1;
    if (now_ms() > end) {
      CHECK(!"the released lock never stayed held on the server");
      return 0;
    }
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* Lease caching (distlock_config_set_linger_ms): a lock released while no
 * thread of the client waits stays held on the server (once the client
 * hears who wants it), and the client's next acquisition of it is granted
 * locally, counted in `lingered`. The stay is long (a minute), so that
 * nothing here depends on valgrind's pace: another client gets the lock
 * well before it ends only because it announces itself and the lingering
 * client lets go. */
static void test_linger(void) {
  distlock_config *cfg = new_config();
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_OK);
  EXPECT(distlock_config_set_linger_ms(cfg, 60000), DISTLOCK_OK);
  /* What contradicts it is refused, and the linger kept. */
  EXPECT(distlock_config_set_fast_path(cfg, false), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("linger needs the local fast path"));
  EXPECT(distlock_config_set_max_hold_ms(cfg, 60000), DISTLOCK_INVALID_ARGUMENT);
  CHECK(last_error_has("must be shorter than max_hold"));
  distlock_client *c = OPEN_CONFIG(cfg, DISTLOCK_OK);
  distlock_config_free(cfg);
  distlock_client *other = open_client(NULL);
  if (c == NULL || other == NULL) {
    distlock_client_close(c);
    distlock_client_close(other);
    return;
  }

  /* Released, yet still held on the server: the client lingers on it. */
  uint64_t first = 0, second = 0;
  CHECK(linger_on(c, "linger", &first));
  distlock_stats before = stats_of(c);
  CHECK(before.acquired >= 2 && before.lingered == 0);
  /* Granted from the stay: no round trip, counted. */
  distlock_guard *g = must_acquire(c, "linger", 0);
  distlock_stats s = stats_of(c);
  CHECK(s.acquired == before.acquired + 1 && s.lingered == 1);
  EXPECT(distlock_guard_fence(g, &second), DISTLOCK_OK);
  CHECK(second > first);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  distlock_guard_free(g);
  CHECK(key_exists("distlock:linger") == 1);

  /* Another client wants it: it gets it long before the stay ends. */
  distlock_guard *theirs = (distlock_guard *)0x1;
  EXPECT(distlock_acquire(other, "linger", 0, 20000, NULL, &theirs), DISTLOCK_OK);
  if (theirs != NULL && theirs != (distlock_guard *)0x1) {
    uint64_t fence = 0;
    EXPECT(distlock_guard_fence(theirs, &fence), DISTLOCK_OK);
    CHECK(fence > second);
    EXPECT(distlock_guard_release(theirs), DISTLOCK_OK);
    distlock_guard_free(theirs);
  }
  s = stats_of(c);
  CHECK(s.acquired == before.acquired + 1 && s.lingered == 1 && s.lost == 0);

  /* Closing the client releases what it lingers on, at once. */
  CHECK(linger_on(c, "linger-close", &first));
  distlock_client_close(c);
  CHECK(key_exists("distlock:linger-close") == 0);
  distlock_client_close(other);
}

/* What the log callback saw. It runs on library threads too (the renewal
 * thread reports a loss), hence the mutex and the condition to wait on. */
struct log_seen {
  pthread_mutex_t mutex;
  pthread_cond_t changed;
  int calls;
  int foreign_target; /* lines whose target is not distlock's */
  int acquired;       /* debug lines about "log-c" being acquired */
  int lost;           /* warnings about "log-c-lost" being lost */
};

static void on_log(int32_t level, const char *target, const char *message, void *user) {
  struct log_seen *seen = user;
  pthread_mutex_lock(&seen->mutex);
  seen->calls++;
  if (strcmp(target, "distlock") != 0 && strncmp(target, "distlock::", 10) != 0) {
    seen->foreign_target++;
  }
  if (level == DISTLOCK_LOG_DEBUG && strstr(message, "acquired \"log-c\"") != NULL) {
    seen->acquired++;
  }
  if (level == DISTLOCK_LOG_WARN && strstr(message, "lost the lock \"log-c-lost\"") != NULL) {
    seen->lost++;
  }
  pthread_cond_broadcast(&seen->changed);
  pthread_mutex_unlock(&seen->mutex);
}

/* Waits at most ms for the callback to have seen a loss; returns the count. */
static int wait_for_lost(struct log_seen *seen, int ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&seen->mutex);
  while (seen->lost == 0) {
    if (pthread_cond_timedwait(&seen->changed, &seen->mutex, &until) != 0) break;
  }
  int lost = seen->lost;
  pthread_mutex_unlock(&seen->mutex);
  return lost;
}

static int log_count(struct log_seen *seen, const int *field) {
  pthread_mutex_lock(&seen->mutex);
  int n = *field;
  pthread_mutex_unlock(&seen->mutex);
  return n;
}

static void test_log_callback(void) {
  static struct log_seen seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};
  EXPECT(distlock_set_log_callback(6, on_log, &seen), INVALID);
  CHECK(last_error_has("out of range"));
  EXPECT(distlock_set_log_callback(-1, on_log, &seen), INVALID);

  /* Debug: the acquisition's line, on this thread, before acquire returns. */
  EXPECT(distlock_set_log_callback(DISTLOCK_LOG_DEBUG, on_log, &seen), DISTLOCK_OK);
  /* A lease long enough not to run out on a loaded machine (valgrind)
   * before the key is deleted; the loss is noticed at the next renewal. */
  distlock_options opts = {.ttl_ms = 1500};
  distlock_client *c = open_client(&opts);
  if (c == NULL) return;
  distlock_guard *g = must_acquire(c, "log-c", 0);
  CHECK(log_count(&seen, &seen.acquired) == 1);
  distlock_guard_free(g);

  /* A loss is a warning, from the renewal thread: the key is deleted
   * behind the guard's back. */
  g = must_acquire(c, "log-c-lost", 0);
  char out[32];
  CHECK(redis1("DEL", "distlock:log-c-lost", out, sizeof out) == SUPPORT_INTEGER);
  EXPECT(distlock_guard_wait_lost(g, 5000), DISTLOCK_LOST);
  CHECK(wait_for_lost(&seen, 5000) == 1);
  distlock_guard_free(g);

  /* Warnings only: the next acquisition logs nothing the callback sees. */
  EXPECT(distlock_set_log_callback(DISTLOCK_LOG_WARN, on_log, &seen), DISTLOCK_OK);
  g = must_acquire(c, "log-c", 0);
  distlock_guard_free(g);
  CHECK(log_count(&seen, &seen.acquired) == 1);

  /* Removed: no more calls at all. */
  EXPECT(distlock_set_log_callback(DISTLOCK_LOG_DEBUG, on_log, &seen), DISTLOCK_OK);
  EXPECT(distlock_set_log_callback(DISTLOCK_LOG_DEBUG, NULL, NULL), DISTLOCK_OK);
  int calls = log_count(&seen, &seen.calls);
  g = must_acquire(c, "log-c", 0);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  distlock_guard_free(g);
  CHECK(log_count(&seen, &seen.calls) == calls);
  CHECK(log_count(&seen, &seen.foreign_target) == 0);
  /* Level 0 removes too, and removing twice is fine. */
  EXPECT(distlock_set_log_callback(DISTLOCK_LOG_OFF, on_log, &seen), DISTLOCK_OK);
  EXPECT(distlock_set_log_callback(DISTLOCK_LOG_OFF, NULL, NULL), DISTLOCK_OK);
  distlock_client_close(c);
}

/* One entry of a listing: its name, token and fence. */
static int held_entry(const distlock_held *h, size_t i, distlock_held_lock *e) {
  memset(e, 0x5a, sizeof *e);
  e->struct_size = sizeof *e;
  return distlock_held_get(h, i, e);
}

static void test_held(void) {
  /* A client of its own, with a label, and locks under a prefix of their
   * own, so that no other test's locks show up. */
  distlock_config *cfg = distlock_config_new();
  EXPECT(distlock_config_set_url(cfg, url), DISTLOCK_OK);
  EXPECT(distlock_config_set_prefix(cfg, "heldtest"), DISTLOCK_OK);
  EXPECT(distlock_config_set_holder_label(cfg, NULL), INVALID);
  CHECK(last_error_has("label is NULL"));
  EXPECT(distlock_config_set_holder_label(NULL, "x"), INVALID);
  EXPECT(distlock_config_set_holder_label(cfg, "c-test job"), DISTLOCK_OK);
  distlock_client *c = NULL;
  EXPECT(distlock_client_open_config(cfg, &c), DISTLOCK_OK);
  distlock_config_free(cfg);
  if (c == NULL) return;

  const char *names[] = {"jobs:a", "jobs:b", "other"};
  distlock_guard *guards[3];
  char tokens[3][DISTLOCK_TOKEN_LEN + 1];
  uint64_t fences[3];
  for (int i = 0; i < 3; i++) {
    guards[i] = must_acquire(c, names[i], 5000);
    token_of(guards[i], tokens[i]);
    EXPECT(distlock_guard_fence(guards[i], &fences[i]), DISTLOCK_OK);
  }

  distlock_held *h = (distlock_held *)0x1;
  size_t n = 99;
  bool more = true;
  EXPECT(distlock_client_held(c, "*", 100, &h, &n, &more), DISTLOCK_OK);
  CHECK(h != NULL && n == 3 && !more);
  int found[3] = {0, 0, 0};
  distlock_held_lock e;
  for (size_t i = 0; i < n; i++) {
    EXPECT(held_entry(h, i, &e), DISTLOCK_OK);
    CHECK(e.struct_size == sizeof e && e.has_remaining && e.remaining_ms <= 5000 && e.has_fence);
    for (int k = 0; k < 3; k++) {
      if (strcmp(e.name, names[k]) == 0) {
        found[k]++;
        CHECK(strcmp(e.token, tokens[k]) == 0 && e.fence >= fences[k]);
      }
    }
    CHECK(e.has_holder);
    CHECK(e.holder_pid == (uint32_t)getpid() && e.holder_host != NULL && e.holder_host[0] != '\0');
    CHECK(e.holder_label != NULL && strcmp(e.holder_label, "c-test job") == 0);
  }
  CHECK(found[0] == 1 && found[1] == 1 && found[2] == 1);
  /* Past the end, a short struct: refused, nothing written. */
  EXPECT(held_entry(h, n, &e), INVALID);
  CHECK(last_error_has("out of range") && e.struct_size == sizeof e);
  memset(&e, 0x5a, sizeof e);
  e.struct_size = sizeof e - 1;
  EXPECT(distlock_held_get(h, 0, &e), INVALID);
  CHECK(last_error_has("struct_size"));
  EXPECT(distlock_held_get(h, 0, NULL), INVALID);
  distlock_held_free(h);
  EXPECT(held_entry(h, 0, &e), INVALID);
  CHECK(last_error_has("unknown or already freed held handle"));
  distlock_held_free(h); /* a second free is a no-op */
  distlock_held_free(NULL);

  /* A pattern, and a limit that stops the listing. */
  EXPECT(distlock_client_held(c, "jobs:*", 100, &h, &n, &more), DISTLOCK_OK);
  CHECK(n == 2 && !more);
  distlock_held_free(h);
  EXPECT(distlock_client_held(c, "*", 1, &h, &n, &more), DISTLOCK_OK);
  CHECK(n == 1 && more);
  distlock_held_free(h);

  /* The holder, as inspect shows it. */
  distlock_lock_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(distlock_client_inspect(c, "jobs:a", NULL, 0, &info), DISTLOCK_OK);
  CHECK(info.held);
  if (info.has_holder) {
    CHECK(info.holder_pid == (uint32_t)getpid() && info.holder_host[0] != '\0');
    CHECK(strcmp(info.holder_label, "c-test job") == 0);
  }

  /* Bad arguments: nothing is handed out. */
  EXPECT(distlock_client_held(c, "*", 0, &h, &n, &more), INVALID);
  CHECK(last_error_has("limit") && h == NULL && n == 0 && !more);
  EXPECT(distlock_client_held(c, "", 5, &h, &n, &more), INVALID);
  EXPECT(distlock_client_held(c, NULL, 5, &h, &n, &more), INVALID);
  CHECK(last_error_has("pattern is NULL"));
  EXPECT(distlock_client_held(c, "*", 5, NULL, &n, &more), INVALID);
  EXPECT(distlock_client_held(c, "*", 5, &h, NULL, &more), INVALID);
  EXPECT(distlock_client_held(c, "*", 5, &h, &n, NULL), INVALID);
  EXPECT(distlock_client_held(NULL, "*", 5, &h, &n, &more), INVALID);
  CHECK(last_error_has("client handle is NULL"));

  /* Released: the listing is empty. */
  for (int i = 0; i < 3; i++) distlock_guard_free(guards[i]);
  EXPECT(distlock_client_held(c, "*", 100, &h, &n, &more), DISTLOCK_OK);
  CHECK(n == 0 && !more && h != NULL);
  EXPECT(held_entry(h, 0, &e), INVALID);
  distlock_held_free(h);
  distlock_client_close(c);
}

int main(void) {
  port = support_port();
  support_url(url, sizeof url, port);

  test_static_strings();
  test_last_error_is_per_thread();
  test_open();

  distlock_client *c = open_client(NULL);
  if (c != NULL) {
    test_acquire_arguments(c);
    test_guard_lifecycle(c);
    test_guard_outlives_client();
    test_cancel(c);
    test_wait_lost(c);
    test_null_everywhere(c);
    test_non_utf8_and_unterminated(c);
    test_absurd_numbers(c);
    test_inspect(c);
    test_release_token(c);
    distlock_client_close(c);
  }
  test_stats();
  test_linger();
  test_log_callback();
  test_held();
  test_config_arguments();
  test_config_single_server();
  test_config_redlock();
  test_tls();
  test_close_during_a_call();

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
