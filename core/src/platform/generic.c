/* A system neither Linux nor a BSD: what POSIX alone offers. */
#include "../private.h"

#include "platform.h"

int pl_platform_network_file(int fd) {
  (void)fd; /* no portable way to tell */
  return 0;
}
