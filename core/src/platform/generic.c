/* A system neither Linux nor a BSD: no portable way to tell a network file system. */
#include "../private.h"

#include "platform.h"

int pl_platform_network_file(int fd) {
  (void)fd; /* no portable way to tell */
  return 0;
}
