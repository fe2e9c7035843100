/*
 * Exports a client's stats in the Prometheus text exposition format: takes
 * a lock a few times (one acquisition waits for another thread's), then
 * prints distlock_<count>_total counters and the acquire-wait quantiles, as
 * a scrape handler would serve them. No metrics library: the format is
 * plain text.
 *
 * Usage: prometheus [url]   (default redis://127.0.0.1:$DISTLOCK_REDIS_PORT)
 */
#include <distlock.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static distlock_client *client;

/* Prints one counter with its HELP and TYPE lines. */
static void counter(const char *name, const char *help, uint64_t value) {
  printf("# HELP distlock_%s_total %s\n# TYPE distlock_%s_total counter\n", name, help, name);
  printf("distlock_%s_total %" PRIu64 "\n", name, value);
}

/* Writes the stats of `c` in the text exposition format. */
static int write_metrics(distlock_client *c) {
  distlock_stats s = {.struct_size = sizeof s};
  if (distlock_client_stats(c, &s) != DISTLOCK_OK) {
    fprintf(stderr, "stats: %s\n", distlock_last_error());
    return 1;
  }
  counter("acquired", "Acquisitions that returned a lock.", s.acquired);
  counter("contended", "Acquisitions that had to wait for the lock.", s.contended);
  counter("timed_out", "Acquisitions given up at their timeout.", s.timed_out);
  counter("cancelled", "Acquisitions given up because they were cancelled.", s.cancelled);
  counter("lost", "Locks lost while held.", s.lost);
  counter("renewals", "Leases extended by the renewal thread.", s.renewals);
  counter("renewal_failures", "Renewals that failed to reach the server.", s.renewal_failures);
  counter("local_handoffs", "Leases handed between threads without a round trip.", s.local_handoffs);
  counter("feed_reconnects", "Reconnections of the release-notification feed.", s.feed_reconnects);
  counter("lingered", "Acquisitions granted from a lock the client lingered on.", s.lingered);
  printf("# HELP distlock_acquire_wait_seconds Time from an acquire call to its lock, by quantile.\n");
  printf("# TYPE distlock_acquire_wait_seconds gauge\n");
  printf("distlock_acquire_wait_seconds{quantile=\"0.5\"} %g\n", s.wait_p50_us / 1e6);
  printf("distlock_acquire_wait_seconds{quantile=\"0.99\"} %g\n", s.wait_p99_us / 1e6);
  printf("# HELP distlock_acquire_wait_max_seconds Longest time from an acquire call to its lock.\n");
  printf("# TYPE distlock_acquire_wait_max_seconds gauge\n");
  printf("distlock_acquire_wait_max_seconds %g\n", s.wait_max_us / 1e6);
  return 0;
}

/* A second thread that waits for the lock the main thread holds. */
static void *waiter(void *arg) {
  (void)arg;
  distlock_guard *g = NULL;
  if (distlock_acquire(client, "prometheus:demo", 5000, 5000, NULL, &g) == DISTLOCK_OK) {
    distlock_guard_release(g);
    distlock_guard_free(g);
  }
  return NULL;
}

int main(int argc, char **argv) {
  char url[256];
  if (argc > 1) {
    snprintf(url, sizeof url, "%s", argv[1]);
  } else {
    const char *port = getenv("DISTLOCK_REDIS_PORT");
    snprintf(url, sizeof url, "redis://127.0.0.1:%s", port ? port : "6379");
  }
  if (distlock_client_open(url, NULL, &client) != DISTLOCK_OK) {
    fprintf(stderr, "open: %s\n", distlock_last_error());
    return 1;
  }
  int failed = 0;
  for (int i = 0; i < 3 && !failed; i++) {
    distlock_guard *g = NULL;
    failed = distlock_acquire(client, "prometheus:demo", 5000, 5000, NULL, &g) != DISTLOCK_OK;
    pthread_t t;
    if (!failed && i == 0) {
      /* Held while the other thread asks: it waits (contended). */
      failed = pthread_create(&t, NULL, waiter, NULL) != 0;
      struct timespec pause = {0, 300 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    if (g != NULL) {
      distlock_guard_release(g);
      distlock_guard_free(g);
    }
    if (!failed && i == 0) pthread_join(t, NULL);
  }
  if (failed) fprintf(stderr, "acquire: %s\n", distlock_last_error());
  failed |= write_metrics(client);
  distlock_client_close(client);
  return failed;
}
