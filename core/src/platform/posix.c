/* Every system but Linux: the answers for what only Linux has. */
#include "../private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform.h"

int pl_platform_sem_path(const char *name, char *path, size_t cap) {
  (void)name;
  (void)path;
  (void)cap;
  errno = ENOTSUP;
  return -1;
}

int pl_platform_signal_open(const sigset_t *signals) {
  (void)signals;
  errno = ENOSYS; /* command.c waits for signals in short slices */
  return -1;
}

int pl_platform_watch_open(void) {
  errno = ENOSYS; /* waits poll on the clock */
  return -1;
}

int pl_platform_watch_add(int watch_fd, const char *path) {
  (void)watch_fd;
  (void)path;
  errno = ENOSYS;
  return -1;
}

void pl_platform_watch_remove(int watch_fd, int watch) {
  (void)watch_fd;
  (void)watch;
}

int pl_platform_rename_noreplace(int dirfd, const char *from, const char *to) {
  (void)dirfd;
  (void)from;
  (void)to;
  errno = ENOSYS; /* atomic.c publishes with link() */
  return -1;
}

long pl_platform_getrandom(void *buf, size_t len) {
  (void)buf;
  (void)len;
  errno = ENOSYS; /* random.c reads /dev/urandom */
  return -1;
}

portalock_status pl_platform_lock_holders(const char *path, const struct stat *st,
                                          portalock_holder *out, size_t cap, size_t *count,
                                          portalock_error *err) {
  (void)st;
  (void)out;
  (void)cap;
  (void)count;
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ENOSYS, path,
                 "lock holders of '%s': lock holders are only known on Linux (/proc/locks)", path);
}

int pl_platform_event_open(int *read_fd, int *write_fd) {
  int fds[2];
#if defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
#else
  /* No pipe2 (macOS): a fork-and-exec by another thread in between inherits the pipe. */
  if (pipe(fds) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    int flags = fcntl(fds[i], F_GETFL);
    if (flags == -1 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) != 0 ||
        fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
      int errnum = errno;
      close(fds[0]);
      close(fds[1]);
      errno = errnum;
      return -1;
    }
  }
#endif
  *read_fd = fds[0];
  *write_fd = fds[1];
  return 0;
}
