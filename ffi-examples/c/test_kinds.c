/*
 * Exercises distlock_acquire_kind: read-write locks, semaphores and fair
 * locks, good inputs and bad, against the redis-server on
 * 127.0.0.1:$DISTLOCK_REDIS_PORT, and their refusal by the memcached at
 * $DISTLOCK_MEMCACHED_URL (skipped, and said so, when that is unset).
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

#include "expect.h"
#include "support.h"

static int port;
static char url[128];

/* The last error contains needle; prints it when not. */
#define SAYS(needle) says((needle), __LINE__)
static void says(const char *needle, int line) {
  const char *m = distlock_last_error();
  int ok = m != NULL && strstr(m, needle) != NULL;
  if (ok) {
    passed++;
    return;
  }
  failed++;
  printf("FAIL %s:%d: last error should contain \"%s\", is \"%s\"\n", __FILE__, line, needle,
         m ? m : "none");
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static distlock_client *open_url(const char *u) {
  distlock_client *c = NULL;
  EXPECT(distlock_client_open(u, NULL, &c), DISTLOCK_OK);
  return c;
}

/* One try (timeout 0) of kind on key; the guard on success, else NULL
 * with the status in *status. */
static distlock_guard *try_kind(distlock_client *c, const char *key, uint32_t kind,
                                uint32_t permits, int32_t *status) {
  distlock_guard *g = (distlock_guard *)0x1;
  *status = distlock_acquire_kind(c, key, kind, permits, 0, 0, NULL, &g);
  if (*status != DISTLOCK_OK) CHECK(g == NULL);
  return *status == DISTLOCK_OK ? g : NULL;
}

static distlock_guard *must_take(distlock_client *c, const char *key, uint32_t kind,
                                 uint32_t permits) {
  int32_t st;
  distlock_guard *g = try_kind(c, key, kind, permits, &st);
  EXPECT(st, DISTLOCK_OK);
  return g;
}

static void must_refuse(distlock_client *c, const char *key, uint32_t kind, uint32_t permits,
                        int32_t want) {
  int32_t st;
  distlock_guard *g = try_kind(c, key, kind, permits, &st);
  EXPECT(st, want);
  distlock_guard_free(g);
}

/* A Redis command of up to three words; the reply's integer, or -1. */
static long redis_int(const char *a, const char *b, const char *c) {
  const char *argv[] = {a, b, c};
  char out[64];
  if (support_redis(port, c ? 3 : 2, argv, out, sizeof out) != SUPPORT_INTEGER) return -1;
  return atol(out);
}

/* Waits (at most five seconds, asking every 2 ms) until the reply of a
 * Redis integer command is want: the state a waiter inside
 * distlock_acquire_kind leaves on the server. */
static int until_int(const char *cmd, const char *key, long want) {
  uint64_t t0 = now_ms();
  while (now_ms() - t0 < 5000) {
    if (redis_int(cmd, key, NULL) == want) return 1;
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return 0;
}

/* A thread that waits for a kind of lock; with `order`, it appends its id
 * there once it holds, then releases. */
struct waiter {
  distlock_client *client;
  const char *key;
  uint32_t kind;
  int id;
  int release_at_once;
  distlock_guard *guard;
  int32_t status;
  pthread_mutex_t *order_mu;
  int *order;
  int *order_len;
};

static void *waiter_main(void *arg) {
  struct waiter *w = arg;
  w->status = distlock_acquire_kind(w->client, w->key, w->kind, 0, 0, 10000, NULL, &w->guard);
  if (w->status == DISTLOCK_OK && w->release_at_once) {
    pthread_mutex_lock(w->order_mu);
    w->order[(*w->order_len)++] = w->id;
    pthread_mutex_unlock(w->order_mu);
    w->status = distlock_guard_release(w->guard);
    distlock_guard_free(w->guard);
    w->guard = NULL;
  }
  return NULL;
}

static void test_arguments(distlock_client *c) {
  distlock_guard *g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire_kind(NULL, "k", DISTLOCK_KIND_READ, 0, 0, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("client handle is NULL");
  CHECK(g == NULL);
  EXPECT(distlock_acquire_kind(c, "k", DISTLOCK_KIND_READ, 0, 0, 0, NULL, NULL),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("out is NULL");
  EXPECT(distlock_acquire_kind(c, NULL, DISTLOCK_KIND_WRITE, 0, 0, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("key is NULL");
  EXPECT(distlock_acquire_kind(c, "", DISTLOCK_KIND_PERMIT, 2, 0, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_acquire_kind(c, "k", 5, 0, 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  SAYS("kind is 5");
  EXPECT(distlock_acquire_kind(c, "k", UINT32_MAX, 0, 0, 0, NULL, &g), DISTLOCK_INVALID_ARGUMENT);
  /* A permit count with another kind would be ignored: refused. */
  EXPECT(distlock_acquire_kind(c, "k", DISTLOCK_KIND_READ, 3, 0, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("only DISTLOCK_KIND_PERMIT takes a permit count");
  EXPECT(distlock_acquire_kind(c, "k", DISTLOCK_KIND_WRITE, 0, 5, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("ttl");
  /* Permit counts: 1 to DISTLOCK_MAX_PERMITS, in the library's words. */
  CHECK(DISTLOCK_MAX_PERMITS == 10000);
  EXPECT(distlock_acquire_kind(c, "k", DISTLOCK_KIND_PERMIT, 0, 0, 0, NULL, &g),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("a semaphore must have 1 to 10000 permits, got 0");
  EXPECT(distlock_acquire_kind(c, "k", DISTLOCK_KIND_PERMIT, DISTLOCK_MAX_PERMITS + 1, 0, -1, NULL,
                               &g),
         DISTLOCK_INVALID_ARGUMENT);
  SAYS("a semaphore must have 1 to 10000 permits, got 10001");
  CHECK(g == NULL);
  CHECK(redis_int("EXISTS", "distlock:k", NULL) == 0);
  g = must_take(c, "k", DISTLOCK_KIND_PERMIT, DISTLOCK_MAX_PERMITS);
  distlock_guard_free(g);
}

static void test_readers_share_a_writer_excludes(distlock_client *a, distlock_client *b) {
  distlock_guard *r1 = must_take(a, "doc", DISTLOCK_KIND_READ, 0);
  distlock_guard *r2 = must_take(b, "doc", DISTLOCK_KIND_READ, 0);
  uint64_t f1 = 0, f2 = 0;
  EXPECT(distlock_guard_fence(r1, &f1), DISTLOCK_OK);
  EXPECT(distlock_guard_fence(r2, &f2), DISTLOCK_OK);
  CHECK(f1 > 0 && f2 > f1);
  char t1[DISTLOCK_TOKEN_LEN + 1], t2[DISTLOCK_TOKEN_LEN + 1];
  EXPECT(distlock_guard_token(r1, t1, sizeof t1), DISTLOCK_OK);
  EXPECT(distlock_guard_token(r2, t2, sizeof t2), DISTLOCK_OK);
  CHECK(strcmp(t1, t2) != 0);
  /* Both shares are members of the lock's holder set. */
  CHECK(redis_int("ZCARD", "distlock:doc", NULL) == 2);

  must_refuse(b, "doc", DISTLOCK_KIND_WRITE, 0, DISTLOCK_NOT_ACQUIRED);
  distlock_guard *w = (distlock_guard *)0x1;
  uint64_t t0 = now_ms();
  EXPECT(distlock_acquire_kind(b, "doc", DISTLOCK_KIND_WRITE, 0, 0, 100, NULL, &w),
         DISTLOCK_TIMEOUT);
  CHECK(w == NULL && now_ms() - t0 >= 90);

  /* Every guard function works on a share. */
  bool held = false;
  EXPECT(distlock_guard_is_held(r1, &held), DISTLOCK_OK);
  CHECK(held);
  uint64_t left = 0;
  EXPECT(distlock_guard_remaining_ms(r1, &left), DISTLOCK_OK);
  CHECK(left > 0 && left <= 30000);
  EXPECT(distlock_guard_extend(r1), DISTLOCK_OK);
  EXPECT(distlock_guard_wait_lost(r1, 0), DISTLOCK_TIMEOUT);
  EXPECT(distlock_guard_release(r1), DISTLOCK_OK);
  EXPECT(distlock_guard_release(r1), DISTLOCK_INVALID_ARGUMENT);
  EXPECT(distlock_guard_wait_lost(r1, 0), DISTLOCK_LOST);
  distlock_guard_free(r1);
  must_refuse(b, "doc", DISTLOCK_KIND_WRITE, 0, DISTLOCK_NOT_ACQUIRED); /* one reader left */
  distlock_guard_free(r2);

  w = must_take(b, "doc", DISTLOCK_KIND_WRITE, 0);
  uint64_t fw = 0;
  EXPECT(distlock_guard_fence(w, &fw), DISTLOCK_OK);
  CHECK(fw > f2);
  must_refuse(a, "doc", DISTLOCK_KIND_READ, 0, DISTLOCK_NOT_ACQUIRED);
  SAYS("a writer holds the lock or waits for it");
  must_refuse(a, "doc", DISTLOCK_KIND_WRITE, 0, DISTLOCK_NOT_ACQUIRED);
  EXPECT(distlock_guard_release(w), DISTLOCK_OK);
  distlock_guard_free(w);
  CHECK(redis_int("EXISTS", "distlock:doc", NULL) == 0);
}

static void test_a_waiting_writer_holds_new_readers_back(distlock_client *a, distlock_client *b) {
  distlock_guard *reader = must_take(a, "pref", DISTLOCK_KIND_READ, 0);
  struct waiter w = {.client = b, .key = "pref", .kind = DISTLOCK_KIND_WRITE};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, waiter_main, &w) == 0);
  /* The writer keeps its place beside the lock while it waits. */
  CHECK(until_int("EXISTS", "{distlock:pref}:writers", 1));
  must_refuse(a, "pref", DISTLOCK_KIND_READ, 0, DISTLOCK_NOT_ACQUIRED);
  SAYS("a writer holds the lock or waits for it");
  EXPECT(distlock_guard_release(reader), DISTLOCK_OK);
  distlock_guard_free(reader);
  CHECK(pthread_join(t, NULL) == 0);
  EXPECT(w.status, DISTLOCK_OK);
  CHECK(redis_int("EXISTS", "{distlock:pref}:writers", NULL) == 0);
  must_refuse(a, "pref", DISTLOCK_KIND_READ, 0, DISTLOCK_NOT_ACQUIRED);
  EXPECT(distlock_guard_release(w.guard), DISTLOCK_OK);
  distlock_guard_free(w.guard);
  distlock_guard_free(must_take(a, "pref", DISTLOCK_KIND_READ, 0));
}

static void test_semaphore_grants_its_permits(distlock_client *a, distlock_client *b) {
  enum { N = 3 };
  distlock_guard *permits[N];
  for (int i = 0; i < N; i++) permits[i] = must_take(i % 2 ? a : b, "slots", DISTLOCK_KIND_PERMIT, N);
  CHECK(redis_int("ZCARD", "distlock:slots", NULL) == N);
  must_refuse(a, "slots", DISTLOCK_KIND_PERMIT, N, DISTLOCK_NOT_ACQUIRED);
  SAYS("every permit of the semaphore is taken");
  distlock_guard *g = (distlock_guard *)0x1;
  EXPECT(distlock_acquire_kind(b, "slots", DISTLOCK_KIND_PERMIT, N, 0, 50, NULL, &g),
         DISTLOCK_TIMEOUT);
  CHECK(g == NULL);
  /* A returned permit is there for the next. */
  EXPECT(distlock_guard_release(permits[1]), DISTLOCK_OK);
  distlock_guard_free(permits[1]);
  permits[1] = must_take(b, "slots", DISTLOCK_KIND_PERMIT, N);
  /* A higher count applies at once to its own acquisitions. */
  distlock_guard *extra = must_take(a, "slots", DISTLOCK_KIND_PERMIT, N + 1);
  must_refuse(a, "slots", DISTLOCK_KIND_PERMIT, N + 1, DISTLOCK_NOT_ACQUIRED);
  distlock_guard_free(extra);
  for (int i = 0; i < N; i++) distlock_guard_free(permits[i]);
  CHECK(redis_int("EXISTS", "distlock:slots", NULL) == 0);
}

static void test_a_name_used_by_another_kind_is_refused(distlock_client *a, distlock_client *b) {
  distlock_guard *plain = NULL;
  EXPECT(distlock_acquire(a, "taken", 0, 0, NULL, &plain), DISTLOCK_OK);
  must_refuse(b, "taken", DISTLOCK_KIND_READ, 0, DISTLOCK_INVALID_ARGUMENT);
  SAYS("in use by a plain lock; a read-write lock");
  must_refuse(b, "taken", DISTLOCK_KIND_PERMIT, 2, DISTLOCK_INVALID_ARGUMENT);
  SAYS("in use by a plain lock; a semaphore");
  distlock_guard_free(plain);

  distlock_guard *reader = must_take(a, "shared", DISTLOCK_KIND_READ, 0);
  must_refuse(b, "shared", DISTLOCK_KIND_PLAIN, 0, DISTLOCK_INVALID_ARGUMENT);
  SAYS("in use by a read-write lock or a semaphore; a plain lock");
  EXPECT(distlock_acquire(b, "shared", 0, 0, NULL, &plain), DISTLOCK_INVALID_ARGUMENT);
  must_refuse(b, "shared", DISTLOCK_KIND_PERMIT, 5, DISTLOCK_INVALID_ARGUMENT);
  SAYS("in use by a read-write lock; a semaphore");
  distlock_guard_free(reader);
  /* Free again: any kind may take the name. */
  distlock_guard_free(must_take(b, "shared", DISTLOCK_KIND_PERMIT, 5));
}

static void test_fair_lock_serves_waiters_in_arrival_order(distlock_client *holder_client) {
  enum { WAITERS = 3 };
  distlock_guard *first = must_take(holder_client, "fifo", DISTLOCK_KIND_FAIR, 0);
  must_refuse(holder_client, "fifo", DISTLOCK_KIND_FAIR, 0, DISTLOCK_NOT_ACQUIRED);
  /* The fair lock is the plain lock's key: a plain try sees it held. */
  must_refuse(holder_client, "fifo", DISTLOCK_KIND_PLAIN, 0, DISTLOCK_NOT_ACQUIRED);
  uint64_t fence = 0;
  EXPECT(distlock_guard_fence(first, &fence), DISTLOCK_OK);
  CHECK(fence > 0);
  EXPECT(distlock_guard_extend(first), DISTLOCK_OK);

  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  int order[WAITERS] = {0}, order_len = 0;
  distlock_client *clients[WAITERS] = {0};
  struct waiter w[WAITERS];
  pthread_t t[WAITERS];
  for (int i = 0; i < WAITERS; i++) {
    /* Each waiter on a client of its own, in line before the next comes. */
    clients[i] = open_url(url);
    w[i] = (struct waiter){.client = clients[i], .key = "fifo", .kind = DISTLOCK_KIND_FAIR,
                           .id = i + 1, .release_at_once = 1, .order_mu = &mu, .order = order,
                           .order_len = &order_len};
    CHECK(pthread_create(&t[i], NULL, waiter_main, &w[i]) == 0);
    CHECK(until_int("ZCARD", "{distlock:fifo}:line", i + 1));
  }
  EXPECT(distlock_guard_release(first), DISTLOCK_OK);
  distlock_guard_free(first);
  for (int i = 0; i < WAITERS; i++) {
    CHECK(pthread_join(t[i], NULL) == 0);
    EXPECT(w[i].status, DISTLOCK_OK);
    distlock_client_close(clients[i]);
  }
  CHECK(order_len == WAITERS && order[0] == 1 && order[1] == 2 && order[2] == 3);
  CHECK(redis_int("ZCARD", "{distlock:fifo}:line", NULL) == 0);
  pthread_mutex_destroy(&mu);
}

static void test_memcached_refuses_the_kinds(const char *mc_url) {
  distlock_client *c = open_url(mc_url);
  if (c == NULL) return;
  must_refuse(c, "kinds", DISTLOCK_KIND_READ, 0, DISTLOCK_INVALID_ARGUMENT);
  SAYS("read-write locks are not supported with");
  must_refuse(c, "kinds", DISTLOCK_KIND_WRITE, 0, DISTLOCK_INVALID_ARGUMENT);
  SAYS("read-write locks are not supported with");
  must_refuse(c, "kinds", DISTLOCK_KIND_PERMIT, 2, DISTLOCK_INVALID_ARGUMENT);
  SAYS("semaphores are not supported with");
  must_refuse(c, "kinds", DISTLOCK_KIND_FAIR, 0, DISTLOCK_INVALID_ARGUMENT);
  SAYS("fair locks are not supported with");
  /* A bad count is refused for what it is, whatever the server. */
  must_refuse(c, "kinds", DISTLOCK_KIND_PERMIT, 0, DISTLOCK_INVALID_ARGUMENT);
  SAYS("a semaphore must have 1 to 10000 permits, got 0");
  distlock_guard *g = must_take(c, "kinds", DISTLOCK_KIND_PLAIN, 0);
  EXPECT(distlock_guard_release(g), DISTLOCK_OK);
  distlock_guard_free(g);
  distlock_client_close(c);
}

int main(void) {
  port = support_port();
  support_url(url, sizeof url, port);
  distlock_client *a = open_url(url);
  distlock_client *b = open_url(url);
  if (a != NULL && b != NULL) {
    test_arguments(a);
    test_readers_share_a_writer_excludes(a, b);
    test_a_waiting_writer_holds_new_readers_back(a, b);
    test_semaphore_grants_its_permits(a, b);
    test_a_name_used_by_another_kind_is_refused(a, b);
    test_fair_lock_serves_waiters_in_arrival_order(a);
  }
  distlock_client_close(a);
  distlock_client_close(b);
  const char *mc_url = getenv("DISTLOCK_MEMCACHED_URL");
  if (mc_url != NULL && *mc_url != '\0') {
    test_memcached_refuses_the_kinds(mc_url);
  } else {
    printf("skipped: memcached refusals (DISTLOCK_MEMCACHED_URL is not set)\n");
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
