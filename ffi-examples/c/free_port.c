/* Prints a loopback TCP port that is free right now (for run-tests.sh). */
#include <stdio.h>

#include "support.h"

int main(void) {
  int port = support_free_port();
  if (port <= 0) {
    fprintf(stderr, "cannot find a free loopback port\n");
    return 1;
  }
  printf("%d\n", port);
  return 0;
}
