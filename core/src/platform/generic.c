/* A system neither Linux nor a BSD: what POSIX alone offers. */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform.h"

int pl_platform_dup_cloexec(int oldfd, int newfd) {
  int r;
  do
    r = dup2(oldfd, newfd);
  while (r < 0 && errno == EINTR);
  if (r >= 0 && fcntl(r, F_SETFD, FD_CLOEXEC) != 0) return -1;
  return r;
}

int pl_platform_network_file(int fd) {
  (void)fd; /* no portable way to tell */
  return 0;
}
