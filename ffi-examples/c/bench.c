/*
 * Mean time of one uncontended acquire + release through the C API
 * (acquire with no time limit, release, free), for comparison with the
 * Rust benchmark's uncontended figure.
 *
 * Usage: bench [-n cycles]; the server is 127.0.0.1:$DISTLOCK_REDIS_PORT.
 * Prints "c_acquire_release_us <mean microseconds>".
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
  int cycles = 2000, opt;
  while ((opt = getopt(argc, argv, "n:")) != -1) {
    if (opt != 'n') {
      fprintf(stderr, "usage: %s [-n cycles]\n", argv[0]);
      return 2;
    }
    cycles = atoi(optarg);
  }
  if (cycles < 1) {
    fprintf(stderr, "cycles must be at least 1\n");
    return 2;
  }
  char url[128];
  support_url(url, sizeof url, support_port());
  distlock_client *client = NULL;
  int32_t s = distlock_client_open(url, NULL, &client);
  if (s != DISTLOCK_OK) {
    fprintf(stderr, "open: %s (%s)\n", distlock_status_name(s), distlock_last_error());
    return 1;
  }
  /* Warm up: connections, scripts loaded, code paged in. */
  for (int i = 0; i < 20; i++) {
    if (cycle(client) != DISTLOCK_OK) return 1;
  }
  double start = now_us();
  for (int i = 0; i < cycles; i++) {
    if (cycle(client) != DISTLOCK_OK) return 1;
  }
  double mean = (now_us() - start) / cycles;
  distlock_client_close(client);
  printf("c_acquire_release_us %.2f\n", mean);
  return 0;
}
