/* Opening lock files safely: never through a symlink, never truncating before the lock, never
 * anything but a regular file; a file it creates gets exactly the `perm` asked for. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* Creates `path` (O_CREAT|O_EXCL): a descriptor, or -1 with errno. A given `perm` is made the
 * file's mode exactly, as py-filelock does with an explicit `mode`: open(2) masks it with the
 * umask, which would keep other users (an nginx worker, say, when the root master created the
 * file) out. The fchmod goes through the descriptor of the file this call just created, never
 * an existing one nor a name; a file system that keeps no modes (EPERM) leaves the file as
 * open(2) made it, as py-filelock lets it. */
static int pl_lockfile_create(const char *path, int oflags, int perm) {
  int exact = perm != PORTALOCK_PERM_UMASK;
  int fd = open(path, oflags | O_CREAT | O_EXCL, (mode_t)(exact ? perm : 0666));
  if (fd < 0 || !exact || fchmod(fd, (mode_t)perm) == 0 || errno == EPERM) return fd;
  int errnum = errno;
  close(fd);
  errno = errnum;
  return -1;
}

portalock_status pl_lockfile_open(const char *path, int oflags, int perm, int *fd_out,
                                  struct stat *st, portalock_error *err) {
  /* An existing file is opened without O_CREAT: with fs.protected_regular, O_CREAT on
   * another user's file in a sticky directory fails even though the file exists.
   * O_NONBLOCK keeps a FIFO planted at the path from blocking the open; it is refused below. */
  oflags |= O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  for (int round = 0; round < PL_ROUNDS; round++) {
    int fd = open(path, oflags);
    if (fd < 0 && errno == ENOENT) fd = pl_lockfile_create(path, oflags, perm);
    if (fd < 0) {
      /* EEXIST: created between the two opens; EINTR: a FIFO or a slow file system. */
      if (errno == EEXIST || errno == EINTR) continue;
      if (errno == EACCES || errno == ENOENT)
        return pl_fail_access(err, errno, "open", path, PL_SHARED_BY_CREATOR);
      return pl_fail_sys(err, errno, "open", path);
    }
    if (fstat(fd, st) != 0) {
      int errnum = errno;
      close(fd);
      return pl_fail_sys(err, errnum, "fstat", path);
    }
    if (S_ISDIR(st->st_mode)) {
      close(fd);
      return pl_fail_sys(err, EISDIR, "open", path);
    }
    if (!S_ISREG(st->st_mode)) {
      close(fd);
      return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EINVAL, path,
                     "open '%s': not a regular file (a FIFO, socket or device cannot be a lock "
                     "file)",
                     path);
    }
    /* The status flags are the ones just opened with (F_SETFL ignores the access mode and
     * the creation flags), so no F_GETFL is needed. */
    if (fcntl(fd, F_SETFL, oflags & ~O_NONBLOCK) != 0) {
      int errnum = errno;
      close(fd);
      return pl_fail_sys(err, errnum, "fcntl", path);
    }
    *fd_out = fd;
    return PORTALOCK_OK;
  }
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EEXIST, path,
                 "open '%s': the file kept appearing and disappearing", path);
}

int pl_lockfile_truncate(int fd) {
  if (ftruncate(fd, 0) != 0) return -1;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_APPEND) != 0) return -1;
  return lseek(fd, 0, SEEK_SET) < 0 ? -1 : 0;
}

portalock_status pl_lockfile_posix_check(const char *path, portalock_error *err) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return PORTALOCK_OK; /* nothing there this process could hold; open reports the rest */
  int other = pl_held_posix_fd(st.st_dev, st.st_ino, -1);
  if (other < 0) return PORTALOCK_OK;
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EDEADLK, path,
                 "lock '%s': this process already holds a posix lock on it through fd %d "
                 "(opening and closing another descriptor would drop that lock)",
                 path, other);
}
