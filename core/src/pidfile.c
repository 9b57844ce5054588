/* PidFileLock: a lock on a sidecar file that publishes the holder's PID (both files removed
 * on release, the sidecar as a TemporaryFileLock's file), the strict reader of PID files,
 * and the one rule for who holds one. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pl_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

long portalock_read_pid(const char *filename) {
  if (filename == NULL) return 0;
  /* A symlink is no PID file: it could make anyone's file (or a FIFO) look like one. */
  int fd = open(filename, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  char buf[64];
  ssize_t n;
  do
    n = read(fd, buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0 || (size_t)n == sizeof buf) /* a PID never needs this much room */
    return 0;
  const char *p = buf, *end = buf + n;
  while (p < end && pl_is_space(*p))
    p++;
  long pid = 0;
  int digits = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
    int d = *p - '0';
    if (pid > (LONG_MAX - d) / 10) return 0;
    pid = pid * 10 + d;
  }
  while (p < end && pl_is_space(*p))
    p++;
  return p == end && digits >= 1 && digits <= 20 && pid > 0 ? pid : 0;
}

long portalock_pid_file_holder(const char *filename) {
  long pid = portalock_read_pid(filename);
  if (pid <= 0 || pid > INT_MAX) return 0;
  return kill((pid_t)pid, 0) == 0 || errno == EPERM ? pid : 0;
}

static void pl_pidfile_on_contended(portalock_lock_t *lock, portalock_error *err) {
  long pid = portalock_pid_file_holder(portalock_lock_filename(lock));
  if (err == NULL || pid == 0) return;
  err->holder_pid = pid;
  snprintf(err->message, sizeof err->message, "'%s': locked by process %ld",
           portalock_lock_filename(lock), pid);
}

static int pl_write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Writes `text` into a new file `tmp`. 0, or -1 with errno and `what` naming the failed step
 * (the file is left for the caller to remove). */
static int pl_write_new(const char *tmp, const char *text, const char **what) {
  int fd = -1;
  /* Our PID in the name: only a dead process that had the same PID can have left it. */
  for (int round = 0; round < 2 && fd < 0; round++) {
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && (errno != EEXIST || round > 0 || unlink(tmp) != 0)) {
      *what = "create";
      return -1;
    }
  }
  *what = "write";
  if (pl_write_all(fd, text, strlen(text)) == 0) {
    *what = "fsync";
    if (fsync(fd) == 0 || errno == EINVAL || errno == ENOTSUP) {
      *what = "close";
      return close(fd);
    }
  }
  int errnum = errno;
  close(fd);
  errno = errnum;
  return -1;
}

/* Readers see the old complete PID file or the new one, never a partial one. */
static portalock_status pl_pidfile_after_lock(portalock_lock_t *lock, int fd, int *replaced,
                                              portalock_error *err) {
  portalock_status status = pl_temporary_after_lock(lock, fd, replaced, err);
  if (status != PORTALOCK_OK || *replaced) return status;
  char text[32];
  snprintf(text, sizeof text, "%ld\n", (long)pl_self());
  size_t len = strlen(portalock_lock_filename(lock)) + 32;
  char *tmp = malloc(len);
  if (tmp == NULL) return pl_fail_sys(err, ENOMEM, "write PID file", portalock_lock_filename(lock));
  snprintf(tmp, len, "%s.%ld.tmp", portalock_lock_filename(lock), (long)pl_self());
  const char *what;
  int r = pl_write_new(tmp, text, &what);
  if (r == 0) {
    what = "rename";
    r = rename(tmp, portalock_lock_filename(lock));
  }
  if (r != 0) {
    int errnum = errno;
    if (strcmp(what, "create") != 0) unlink(tmp);
    status = pl_fail_sys(err, errnum, what, tmp);
  }
  free(tmp);
  return status;
}

/* The PID file, then the sidecar (while still locked, as a TemporaryFileLock's file). */
static portalock_status pl_pidfile_before_unlock(portalock_lock_t *lock, int fd,
                                                 portalock_error *err) {
  portalock_status status = PORTALOCK_OK;
  /* Someone who replaced the file on purpose keeps it. */
  if (portalock_read_pid(portalock_lock_filename(lock)) == (long)pl_self() &&
      unlink(portalock_lock_filename(lock)) != 0 && errno != ENOENT)
    status = pl_fail_sys(err, errno, "unlink", portalock_lock_filename(lock));
  portalock_status sidecar =
      pl_temporary_before_unlock(lock, fd, status == PORTALOCK_OK ? err : NULL);
  return status != PORTALOCK_OK ? status : sidecar;
}

const pl_kind pl_pidfile_kind = {
    .name = "PidFileLock",
    .default_filename = ".pid",
    .mode = "a",
    .lock_suffix = ".lock",
    .exclusive_only = 1,
    .default_fail_when_locked = 1,
    .after_lock = pl_pidfile_after_lock,
    .on_contended = pl_pidfile_on_contended,
    .before_unlock = pl_pidfile_before_unlock,
};

portalock_status portalock_pid_file_lock_new(portalock_lock_t **out, const char *filename,
                                             const portalock_lock_options *opts,
                                             portalock_error *err) {
  return pl_lock_create(out, &pl_pidfile_kind, filename, opts, err);
}
