/* The OS random source: the system's own call where it has one, else /dev/urandom. */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform.h"

int pl_platform_random_bytes(void *buf, size_t len) {
  unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    long n = pl_platform_getrandom(p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS) break; /* no such call, or a kernel older than it */
      return -1;
    }
    done += (size_t)n;
  }
  if (done == len) return 0;

  int fd;
  do
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return -1;
  while (done < len) {
    ssize_t n = read(fd, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int errnum = n < 0 ? errno : EIO;
      close(fd);
      errno = errnum;
      return -1;
    }
    done += (size_t)n;
  }
  close(fd);
  return 0;
}
