/*
 * The checks of the C test programs (test_distlock.c, test_kinds.c): each
 * counts into `passed` or `failed`, and a failure prints where it was and
 * the thread's last error. Include it once, in a program's one file.
 */
#ifndef DISTLOCK_EXAMPLE_EXPECT_H
#define DISTLOCK_EXAMPLE_EXPECT_H

#include <distlock.h>

#include <stdint.h>
#include <stdio.h>

static int passed, failed;

/* Records one check; on failure prints where, and the thread's last error. */
#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
static void check(int ok, const char *what, const char *file, int line) {
  if (ok) {
    passed++;
    return;
  }
  failed++;
  const char *why = distlock_last_error();
  printf("FAIL %s:%d: %s (last error: %s)\n", file, line, what, why ? why : "none");
}

/* A call's status, compared by name so failures read well. */
#define EXPECT(call, status) expect_status((call), (status), #call, __FILE__, __LINE__)
static void expect_status(int32_t got, int32_t want, const char *call, const char *file,
                          int line) {
  if (got == want) {
    passed++;
    return;
  }
  failed++;
  const char *why = distlock_last_error();
  printf("FAIL %s:%d: %s returned %s, expected %s (last error: %s)\n", file, line, call,
         distlock_status_name(got), distlock_status_name(want), why ? why : "none");
}

#endif
