/*
 * A program written the way a user of an installed distlock writes one: it
 * includes <distlock.h> and nothing else of this repository, and is built
 * with pkg-config's flags (see run-tests.sh, which builds it in a scratch
 * directory against a scratch prefix, linked dynamically and statically).
 *
 * It checks that the header's version macros match the library it runs
 * with, then takes a lock, prints its fence, sees a second client refused
 * with typed errors while it is held, releases it, and sees the second
 * client get it with a higher fence.
 *
 * Usage: install_check [redis-url]   (default redis://127.0.0.1:6379/0)
 * Prints "install check OK" and exits 0 when everything holds.
 */
#define _POSIX_C_SOURCE 200809L /* getpid() under -std=c11 */

#include <distlock.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define EXPECT(cond, ...)                                   \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "install_check: FAILED %s: ", #cond); \
      fprintf(stderr, __VA_ARGS__);                         \
      fputc('\n', stderr);                                  \
      failures++;                                           \
    }                                                       \
  } while (0)

static const char *why(void) {
  const char *e = distlock_last_error();
  return e ? e : "no message";
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379/0";

  /* Compile-time version (header) against run-time version (library). */
  char numbers[64];
  snprintf(numbers, sizeof numbers, "%d.%d.%d", DISTLOCK_VERSION_MAJOR, DISTLOCK_VERSION_MINOR,
           DISTLOCK_VERSION_PATCH);
  EXPECT(strcmp(distlock_version(), DISTLOCK_VERSION) == 0, "library %s, header %s",
         distlock_version(), DISTLOCK_VERSION);
  EXPECT(strcmp(distlock_version(), numbers) == 0, "library %s, header numbers %s",
         distlock_version(), numbers);
  printf("distlock %s (header %s)\n", distlock_version(), DISTLOCK_VERSION);

  distlock_client *owner = NULL, *other = NULL;
  int32_t s = distlock_client_open(url, NULL, &owner);
  if (s != DISTLOCK_OK) {
    fprintf(stderr, "install_check: cannot open %s: %s (%s)\n", url, distlock_status_name(s),
            why());
    return 1;
  }
  s = distlock_client_open(url, NULL, &other);
  if (s != DISTLOCK_OK) {
    fprintf(stderr, "install_check: cannot open a second client: %s (%s)\n",
            distlock_status_name(s), why());
    distlock_client_close(owner);
    return 1;
  }

  char key[64];
  snprintf(key, sizeof key, "install-check:%ld", (long)getpid());

  distlock_guard *guard = NULL;
  s = distlock_acquire(owner, key, 0, 2000, NULL, &guard);
  EXPECT(s == DISTLOCK_OK, "acquire: %s (%s)", distlock_status_name(s), why());
  uint64_t fence = 0;
  if (s == DISTLOCK_OK) {
    s = distlock_guard_fence(guard, &fence);
    EXPECT(s == DISTLOCK_OK && fence > 0, "fence: %s", distlock_status_name(s));
    printf("acquired %s, fence %llu\n", key, (unsigned long long)fence);

    /* Held: a try of another client is refused at once, a bounded wait
     * runs out. Neither leaves a guard behind. */
    distlock_guard *refused = NULL;
    s = distlock_acquire(other, key, 0, 0, NULL, &refused);
    EXPECT(s == DISTLOCK_NOT_ACQUIRED && refused == NULL, "try while held: %s",
           distlock_status_name(s));
    s = distlock_acquire(other, key, 0, 100, NULL, &refused);
    EXPECT(s == DISTLOCK_TIMEOUT && refused == NULL, "100 ms wait while held: %s",
           distlock_status_name(s));
    EXPECT(strcmp(distlock_status_name(s), "DISTLOCK_TIMEOUT") == 0, "status name %s",
           distlock_status_name(s));
    printf("while held: try -> DISTLOCK_NOT_ACQUIRED, 100 ms wait -> %s\n",
           distlock_status_name(s));

    s = distlock_guard_release(guard);
    EXPECT(s == DISTLOCK_OK, "release: %s (%s)", distlock_status_name(s), why());
    distlock_guard_free(guard);

    /* Released: the other client gets it, with a later fence. */
    distlock_guard *next = NULL;
    s = distlock_acquire(other, key, 0, 0, NULL, &next);
    EXPECT(s == DISTLOCK_OK, "try after release: %s (%s)", distlock_status_name(s), why());
    if (s == DISTLOCK_OK) {
      uint64_t next_fence = 0;
      distlock_guard_fence(next, &next_fence);
      EXPECT(next_fence > fence, "fence %llu after %llu", (unsigned long long)next_fence,
             (unsigned long long)fence);
      printf("released; the other client got it, fence %llu\n", (unsigned long long)next_fence);
      distlock_guard_release(next);
      distlock_guard_free(next);
    }
  }

  distlock_client_close(other);
  distlock_client_close(owner);
  if (failures) {
    fprintf(stderr, "install check: %d failure(s)\n", failures);
    return 1;
  }
  printf("install check OK\n");
  return 0;
}
