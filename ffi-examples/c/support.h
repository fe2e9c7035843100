/*
 * Helpers shared by the distlock C examples: where the test server is,
 * a free loopback port, and a minimal Redis client (enough to GET, DEL and
 * EXISTS a key behind the library's back).
 */
#ifndef DISTLOCK_EXAMPLE_SUPPORT_H
#define DISTLOCK_EXAMPLE_SUPPORT_H

#include <stddef.h>

/* The port of the test server: $DISTLOCK_REDIS_PORT. Exits with a usage
 * message when it is missing or not a port number. */
int support_port(void);

/* Writes "redis://127.0.0.1:<port>/0" into buf. */
void support_url(char *buf, size_t len, int port);

/* A loopback TCP port that nothing listened on a moment ago, or -1. */
int support_free_port(void);

/* Reply kinds of support_redis. */
enum support_reply {
  SUPPORT_IO_ERROR = 0,   /* could not connect, send or read */
  SUPPORT_STATUS = '+',   /* simple string, in out */
  SUPPORT_ERROR = '-',    /* error message, in out */
  SUPPORT_INTEGER = ':',  /* decimal text, in out */
  SUPPORT_BULK = '$',     /* bulk string, in out (truncated to out_len - 1) */
  SUPPORT_NIL = 'n',      /* nil bulk string; out is empty */
  SUPPORT_ARRAY = '*',    /* flat array of simple values and bulk strings,
                             in out separated by spaces */
};

/* Sends one command (argc words) to 127.0.0.1:port on a fresh connection
 * and reads one reply. Returns its kind; the text goes to out. */
int support_redis(int port, int argc, const char *const *argv, char *out, size_t out_len);

#endif
