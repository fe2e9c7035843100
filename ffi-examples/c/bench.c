/*
 * Median time of one uncontended acquire + release through the C API
 * (acquire with no time limit, release, free), for comparison with the
 * Rust floor (examples/ffi_floor.rs): scripts/bench-ffi.sh runs both.
 *
 * Usage: bench [-n cycles] [-w warm-up cycles]; the server is
 * 127.0.0.1:$DISTLOCK_REDIS_PORT.
 * Prints "c_acquire_release_us <median microseconds per cycle>".
 */
#include <distlock.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cycle(distlock_client *client) {
  distlock_guard *guard = NULL;
  int32_t s = distlock_acquire(client, "bench:c", 0, -1, NULL, &guard);
  if (s == DISTLOCK_OK) s = distlock_guard_release(guard);
  distlock_guard_free(guard);
  if (s != DISTLOCK_OK) {
    const char *why = distlock_last_error();
    fprintf(stderr, "cycle failed: %s (%s)\n", distlock_status_name(s), why ? why : "");
  }
  return s;
}

int main(int argc, char **argv) {
  int cycles = 2000, warmup = 200, opt;
  while ((opt = getopt(argc, argv, "n:w:")) != -1) {
    switch (opt) {
      case 'n':
        cycles = atoi(optarg);
        break;
      case 'w':
        warmup = atoi(optarg);
        break;
      default:
        fprintf(stderr, "usage: %s [-n cycles] [-w warm-up cycles]\n", argv[0]);
        return 2;
    }
  }
  if (cycles < 1 || warmup < 0) {
    fprintf(stderr, "cycles must be at least 1 and warm-up cycles not negative\n");
    return 2;
  }
  double *samples = malloc((size_t)cycles * sizeof *samples);
  if (samples == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  char url[128];
  support_url(url, sizeof url, support_port());
  distlock_client *client = NULL;
  int32_t s = distlock_client_open(url, NULL, &client);
  if (s != DISTLOCK_OK) {
    fprintf(stderr, "open: %s (%s)\n", distlock_status_name(s), distlock_last_error());
    free(samples);
    return 1;
  }
  int rc = 0;
  /* Warm up: connections, scripts loaded, code paged in. */
  for (int i = 0; i < warmup && rc == 0; i++) {
    if (cycle(client) != DISTLOCK_OK) rc = 1;
  }
  for (int i = 0; i < cycles && rc == 0; i++) {
    double start = now_us();
    if (cycle(client) != DISTLOCK_OK) rc = 1;
    samples[i] = now_us() - start;
  }
  distlock_client_close(client);
  if (rc == 0) {
    qsort(samples, (size_t)cycles, sizeof *samples, by_value);
    printf("c_acquire_release_us %.2f\n", samples[cycles / 2]);
  }
  free(samples);
  return rc;
}
