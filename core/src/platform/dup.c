/* Duplicating a descriptor onto another, close-on-exec from the start where the system has
 * dup3 (PL_HAVE_DUP3). */
#define _GNU_SOURCE /* dup3 in glibc */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform.h"

int pl_platform_dup_cloexec(int oldfd, int newfd) {
  int r;
#if PL_HAVE_DUP3
  do
    r = dup3(oldfd, newfd, O_CLOEXEC);
  while (r < 0 && errno == EINTR);
#else
  do
    r = dup2(oldfd, newfd);
  while (r < 0 && errno == EINTR);
  if (r >= 0 && fcntl(r, F_SETFD, FD_CLOEXEC) != 0) return -1;
#endif
  return r;
}
