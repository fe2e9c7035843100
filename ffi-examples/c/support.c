/* See support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int support_port(void) {
  const char *text = getenv("DISTLOCK_REDIS_PORT");
  char *end = NULL;
  long port = text ? strtol(text, &end, 10) : 0;
  if (!text || *end != '\0' || port <= 0 || port > 65535) {
    fprintf(stderr,
            "set DISTLOCK_REDIS_PORT to the port of a redis-server on 127.0.0.1 "
            "(run-tests.sh starts one)\n");
    exit(2);
  }
  return (int)port;
}

void support_url(char *buf, size_t len, int port) {
  snprintf(buf, len, "redis://127.0.0.1:%d/0", port);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

int support_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
      getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

static int send_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, 0);
    if (n <= 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads one CRLF-terminated line (without the CRLF) into line. */
static int read_line(int fd, char *line, size_t cap) {
  size_t used = 0;
  char c;
  for (;;) {
    ssize_t n = recv(fd, &c, 1, 0);
    if (n != 1) return -1;
    if (c == '\n') break;
    if (used + 1 < cap) line[used++] = c;
  }
  if (used > 0 && line[used - 1] == '\r') used--;
  line[used] = '\0';
  return 0;
}

/* Reads the payload of a bulk string of len bytes (and its CRLF),
 * appending to out (used bytes so far in *kept) as far as it has room. */
static int read_bulk(int fd, long len, char *out, size_t out_len, size_t *kept) {
  for (long i = 0; i < len + 2; i++) {
    char c;
    if (recv(fd, &c, 1, 0) != 1) return -1;
    if (i < len && *kept + 1 < out_len) out[(*kept)++] = c;
  }
  if (out_len > 0) out[*kept] = '\0';
  return 0;
}

/* Reads the n elements of a flat array into out, separated by spaces. */
static int read_array(int fd, long n, char *out, size_t out_len) {
  size_t kept = 0;
  char line[1024];
  for (long i = 0; i < n; i++) {
    if (i > 0 && kept + 1 < out_len) out[kept++] = ' ';
    if (out_len > 0) out[kept] = '\0';
    if (read_line(fd, line, sizeof line) != 0 || line[0] == '\0') return -1;
    switch (line[0]) {
      case '+':
      case '-':
      case ':':
        for (const char *p = line + 1; *p != '\0' && kept + 1 < out_len; p++) out[kept++] = *p;
        if (out_len > 0) out[kept] = '\0';
        break;
      case '$': {
        long len = strtol(line + 1, NULL, 10);
        if (len >= 0 && read_bulk(fd, len, out, out_len, &kept) != 0) return -1;
        break;
      }
      default:
        return -1; /* nested arrays are not needed */
    }
  }
  return 0;
}

int support_redis(int port, int argc, const char *const *argv, char *out, size_t out_len) {
  if (out_len > 0) out[0] = '\0';
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return SUPPORT_IO_ERROR;
  struct sockaddr_in addr = loopback(port);
  int kind = SUPPORT_IO_ERROR;
  char head[64];
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) goto done;
  snprintf(head, sizeof head, "*%d\r\n", argc);
  if (send_all(fd, head, strlen(head)) != 0) goto done;
  for (int i = 0; i < argc; i++) {
    size_t len = strlen(argv[i]);
    snprintf(head, sizeof head, "$%zu\r\n", len);
    if (send_all(fd, head, strlen(head)) != 0 || send_all(fd, argv[i], len) != 0 ||
        send_all(fd, "\r\n", 2) != 0) {
      goto done;
    }
  }
  char line[1024];
  if (read_line(fd, line, sizeof line) != 0 || line[0] == '\0') goto done;
  switch (line[0]) {
    case '+':
    case '-':
    case ':':
      snprintf(out, out_len, "%s", line + 1);
      kind = line[0];
      break;
    case '$': {
      long len = strtol(line + 1, NULL, 10);
      if (len < 0) {
        kind = SUPPORT_NIL;
        break;
      }
      /* The payload and its CRLF, copied as far as out has room. */
      size_t kept = 0;
      if (read_bulk(fd, len, out, out_len, &kept) != 0) goto done;
      kind = SUPPORT_BULK;
      break;
    }
    case '*':
      if (read_array(fd, strtol(line + 1, NULL, 10), out, out_len) != 0) goto done;
      kind = SUPPORT_ARRAY;
      break;
    default:
      break;
  }
done:
  close(fd);
  return kind;
}
