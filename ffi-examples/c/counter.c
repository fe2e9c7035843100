/*
 * N threads each increment a shared counter M times under one distlock
 * lock, with a deliberately racy read-yield-write. Without mutual exclusion
 * increments get lost; with it the end value is exactly N * M.
 *
 * Usage: counter [-t threads] [-n increments] [-s] [-u url]
 *   -s  all threads share one client (hand-offs inside the process);
 *       by default each thread opens its own client, so the server decides.
 *   -u  the server's URL (any backend: redis://, memcache://, ...); by
 *       default redis://127.0.0.1:$DISTLOCK_REDIS_PORT.
 */
#include <distlock.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static char url[256];
static distlock_client *shared_client;

/* The protected state: only ever touched while holding the lock. */
static long counter;
static uint64_t last_fence;
/* Checks on the lock itself. */
static atomic_int inside;
static atomic_int overlaps, stale_fences, errors;

struct worker {
  int increments;
};

static void report(const char *what, int32_t status) {
  const char *why = distlock_last_error();
  fprintf(stderr, "%s: %s (%s)\n", what, distlock_status_name(status), why ? why : "no message");
  atomic_fetch_add(&errors, 1);
}

static void *work(void *arg) {
  struct worker *w = arg;
  distlock_client *client = shared_client;
  int32_t s;
  if (client == NULL && (s = distlock_client_open(url, NULL, &client)) != DISTLOCK_OK) {
    report("distlock_client_open", s);
    return NULL;
  }
  for (int i = 0; i < w->increments; i++) {
    distlock_guard *guard = NULL;
    s = distlock_acquire(client, "counter", 0, -1, NULL, &guard);
    if (s != DISTLOCK_OK) {
      report("distlock_acquire", s);
      break;
    }
    if (atomic_fetch_add(&inside, 1) != 0) atomic_fetch_add(&overlaps, 1);

    uint64_t fence = 0;
    if ((s = distlock_guard_fence(guard, &fence)) != DISTLOCK_OK) report("distlock_guard_fence", s);
    if (fence <= last_fence) atomic_fetch_add(&stale_fences, 1);
    last_fence = fence;

    long seen = counter; /* GET */
    sched_yield();       /* invite another thread into the gap */
    counter = seen + 1;  /* SET */

    atomic_fetch_sub(&inside, 1);
    if ((s = distlock_guard_release(guard)) != DISTLOCK_OK) report("distlock_guard_release", s);
    distlock_guard_free(guard);
  }
  if (client != shared_client) distlock_client_close(client);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = 8, increments = 100, share = 0, opt;
  const char *given = NULL;
  while ((opt = getopt(argc, argv, "t:n:su:")) != -1) {
    switch (opt) {
      case 't':
        threads = atoi(optarg);
        break;
      case 'n':
        increments = atoi(optarg);
        break;
      case 's':
        share = 1;
        break;
      case 'u':
        given = optarg;
        break;
      default:
        fprintf(stderr, "usage: %s [-t threads] [-n increments] [-s] [-u url]\n", argv[0]);
        return 2;
    }
  }
  if (threads < 1 || threads > 1024 || increments < 0) {
    fprintf(stderr, "threads must be 1..1024 and increments >= 0\n");
    return 2;
  }
  if (given != NULL) {
    if (strlen(given) >= sizeof url) {
      fprintf(stderr, "the URL is longer than %zu bytes\n", sizeof url - 1);
      return 2;
    }
    strcpy(url, given);
  } else {
    support_url(url, sizeof url, support_port());
  }

  int32_t s;
  if (share && (s = distlock_client_open(url, NULL, &shared_client)) != DISTLOCK_OK) {
    report("distlock_client_open", s);
    return 1;
  }
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  struct worker w = {.increments = increments};
  int started = 0;
  for (; started < threads; started++) {
    if (pthread_create(&ids[started], NULL, work, &w) != 0) {
      fprintf(stderr, "cannot start thread %d\n", started);
      atomic_fetch_add(&errors, 1);
      break;
    }
  }
  for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
  free(ids);
  distlock_client_close(shared_client);

  long want = (long)threads * increments;
  printf("counter %ld of %ld (%d threads x %d, %s): overlaps %d, stale fences %d, errors %d\n",
         counter, want, threads, increments, share ? "one shared client" : "one client per thread",
         atomic_load(&overlaps), atomic_load(&stale_fences), atomic_load(&errors));
  int ok = counter == want && atomic_load(&overlaps) == 0 && atomic_load(&stale_fences) == 0 &&
           atomic_load(&errors) == 0;
  puts(ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
