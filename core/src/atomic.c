/*
 * open_atomic: write a temporary file next to the target, publish it with one rename (or,
 * never replacing, renameat2(RENAME_NOREPLACE) or link()), fsync the directory.
 *
 * Everything happens relative to a descriptor of the target's directory, opened once, so
 * the temporary, the target and the directory that is fsynced are always the same ones.
 */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/platform.h"

#define PL_NAME_MAX 255
#define PL_TMP_PREFIX ".portalock-"
/* "." + basename + ".portalock-" + 16 hex + ".tmp" */
#define PL_TMP_EXTRA (1 + (sizeof PL_TMP_PREFIX - 1) + 16 + 4)
#define PL_TMP_TRIES 100

typedef enum pl_atomic_state {
  PL_ATOMIC_OPEN,     /* writable; the temporary exists */
  PL_ATOMIC_KEPT,     /* a replace = 0 commit failed; the temporary stays as the payload */
  PL_ATOMIC_FINISHED, /* committed or aborted; nothing of ours remains */
} pl_atomic_state;

struct portalock_atomic {
  char *filename;  /* as given */
  char *base;      /* the last component of filename */
  char *temp_path; /* directory part of filename + temporary name */
  char *temp_name; /* points into temp_path */
  int dirfd;       /* the target's directory, or -1 */
  int fd;          /* the temporary, or -1 */
  int replace;
  int poisoned; /* errno of the failed write, or 0 */
  pl_atomic_state state;
  pid_t pid; /* the process that opened it: another pid means a forked child */
};

void portalock_atomic_options_init(portalock_atomic_options *opts) {
  opts->replace = 1;
}

/* ---------------------------------------------------------------- helpers */

/* The process umask without changing it where /proc/self/status tells (Linux 4.7+); else a
 * umask() round trip (briefly observable by other threads). */
static mode_t pl_current_umask(void) {
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    size_t n = 0;
    while (n < sizeof buf - 1) {
      ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    const char *line = strstr(buf, "\nUmask:");
    if (line != NULL) {
      char *end;
      unsigned long mask = strtoul(line + 7, &end, 8);
      if (end != line + 7 && mask <= 0777) return (mode_t)mask;
    }
  }
  mode_t mask = umask(022);
  umask(mask);
  return mask;
}

static int pl_close_keep_errno(int fd) {
  int e = errno;
  int r = close(fd);
  errno = e;
  return r;
}

/* Closes the temporary and, unless `keep`, removes it. 0, or -1 with errno from unlink. */
static int pl_atomic_drop(portalock_atomic_t *a, int keep) {
  int r = 0;
  int mine = a->pid == pl_self();
  if (a->fd >= 0) pl_close_keep_errno(a->fd);
  a->fd = -1;
  if (!keep && mine && a->state == PL_ATOMIC_OPEN && a->dirfd >= 0 &&
      unlinkat(a->dirfd, a->temp_name, 0) != 0 && errno != ENOENT)
    r = -1;
  int e = errno;
  if (a->dirfd >= 0) close(a->dirfd);
  a->dirfd = -1;
  a->state = keep && mine ? PL_ATOMIC_KEPT : PL_ATOMIC_FINISHED;
  errno = e;
  return r;
}

static portalock_status pl_atomic_usable(portalock_atomic_t *a, const char *what,
                                         portalock_error *err) {
  if (a == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "%s: no atomic handle", what);
  if (a->pid != pl_self())
    return pl_fail(err, PORTALOCK_INVALID, 0, a->filename,
                   "%s '%s': the atomic handle belongs to process %ld (this is a forked child)",
                   what, a->filename, (long)a->pid);
  if (a->state != PL_ATOMIC_OPEN)
    return pl_fail(err, PORTALOCK_INVALID, 0, a->filename,
                   "%s '%s': the atomic handle is already committed or aborted", what, a->filename);
  return PORTALOCK_OK;
}

/* What a file of this type is called in messages, or NULL for the types a commit may
 * publish over: a regular file (replaced) and a symlink (replaced, not written through). */
static const char *pl_unpublishable_type(mode_t mode) {
  if (S_ISREG(mode) || S_ISLNK(mode)) return NULL;
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "a special file";
}

/*
 * Looks at what is at the target now (without following a symlink): *st is filled and
 * *exists set. A target that is neither missing, a regular file nor a symlink is refused:
 * a rename over a device or FIFO would replace the node with a regular file. Refused:
 * LOCK_EXCEPTION with EISDIR for a directory, EINVAL for anything else.
 */
static portalock_status pl_atomic_check_target(const portalock_atomic_t *a, const char *what,
                                               struct stat *st, int *exists, portalock_error *err) {
  *exists = fstatat(a->dirfd, a->base, st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!*exists) return PORTALOCK_OK; /* missing, or unreadable: publishing will tell */
  const char *type = pl_unpublishable_type(st->st_mode);
  if (type == NULL) return PORTALOCK_OK;
  int e = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
  if (a->state == PL_ATOMIC_OPEN) /* at commit: the temporary holds the payload */
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                   "%s: '%s' is %s, not a regular file; not replaced, the payload was kept at "
                   "'%s'",
                   what, a->filename, type, a->temp_path);
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                 "%s: '%s' is %s, not a regular file: open_atomic publishes only over a "
                 "regular file or a symlink",
                 what, a->filename, type);
}

/* ---------------------------------------------------------------- open */

static void pl_atomic_destroy(portalock_atomic_t *a) {
  free(a->filename);
  free(a->temp_path);
  free(a);
}

portalock_status portalock_atomic_open(portalock_atomic_t **out, const char *filename,
                                       const portalock_atomic_options *opts, portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "open_atomic: `out` is NULL");
  *out = NULL;
  if (filename == NULL || filename[0] == '\0')
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad argument 'filename' to 'open_atomic': must not be empty");
  size_t flen = strlen(filename);
  if (flen >= PORTALOCK_PATH_MAX)
    return pl_fail(err, PORTALOCK_INVALID, ENAMETOOLONG, NULL,
                   "bad argument 'filename' to 'open_atomic': longer than %d bytes",
                   PORTALOCK_PATH_MAX - 1);
  const char *slash = strrchr(filename, '/');
  const char *base = slash ? slash + 1 : filename;
  if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, filename,
                   "bad argument 'filename' to 'open_atomic' (\"%s\"): must name a file, not a "
                   "directory",
                   filename);
  size_t blen = strlen(base);
  size_t dlen = (size_t)(base - filename); /* the directory part, with its slash */

  portalock_atomic_t *a = calloc(1, sizeof *a);
  if (a == NULL) return pl_fail_sys(err, ENOMEM, "open_atomic", filename);
  a->fd = -1;
  a->dirfd = -1;
  a->replace = opts ? opts->replace != 0 : 1;
  a->pid = pl_self();
  a->state = PL_ATOMIC_FINISHED;
  a->filename = strdup(filename);
  size_t keep = blen; /* how much of the basename goes into the temporary's name */
  if (keep + PL_TMP_EXTRA > PL_NAME_MAX) keep = PL_NAME_MAX - PL_TMP_EXTRA;
  a->temp_path = malloc(dlen + keep + PL_TMP_EXTRA + 1);
  if (a->filename == NULL || a->temp_path == NULL) {
    pl_atomic_destroy(a);
    return pl_fail_sys(err, ENOMEM, "open_atomic", filename);
  }
  a->base = a->filename + dlen;
  memcpy(a->temp_path, filename, dlen);
  a->temp_name = a->temp_path + dlen;

  /* The directory: "." for a bare name, "/" for "/name". */
  char *dir = NULL;
  if (dlen == 0) {
    dir = strdup(".");
  } else {
    dir = strndup(filename, dlen);
    if (dir != NULL && dlen > 1) dir[dlen - 1] = '\0'; /* drop the slash, but keep "/" */
  }
  if (dir == NULL) {
    pl_atomic_destroy(a);
    return pl_fail_sys(err, ENOMEM, "open_atomic", filename);
  }
  do
    a->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (a->dirfd < 0 && errno == EINTR);
  if (a->dirfd < 0) {
    portalock_status s = pl_fail_sys(err, errno, "open_atomic: cannot open the directory", dir);
    free(dir);
    pl_atomic_destroy(a);
    return s;
  }
  struct stat st;
  int exists;
  portalock_status refused = pl_atomic_check_target(a, "open_atomic", &st, &exists, err);
  if (refused != PORTALOCK_OK) {
    free(dir);
    close(a->dirfd);
    pl_atomic_destroy(a);
    return refused;
  }

  int errnum = EEXIST;
  for (int i = 0; i < PL_TMP_TRIES && a->fd < 0; i++) {
    unsigned char rnd[8];
    if (pl_platform_random_bytes(rnd, sizeof rnd) != 0) {
      errnum = errno;
      break;
    }
    char hex[17];
    for (int k = 0; k < 8; k++)
      snprintf(hex + 2 * k, 3, "%02x", rnd[k]);
    snprintf(a->temp_name, keep + PL_TMP_EXTRA + 1, ".%.*s%s%s.tmp", (int)keep, base, PL_TMP_PREFIX,
             hex);
    do
      a->fd = openat(a->dirfd, a->temp_name,
                     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    while (a->fd < 0 && errno == EINTR);
    if (a->fd < 0) {
      errnum = errno;
      if (errnum != EEXIST) break;
    }
  }
  if (a->fd < 0) {
    portalock_status s =
        errnum == EEXIST
            ? pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EEXIST, dir,
                      "open_atomic: no usable temporary file name in '%s' after %d tries", dir,
                      PL_TMP_TRIES)
            : pl_fail_sys(err, errnum, "open_atomic: cannot create a temporary file in", dir);
    free(dir);
    close(a->dirfd);
    pl_atomic_destroy(a);
    return s;
  }
  free(dir);
  a->state = PL_ATOMIC_OPEN;
  *out = a;
  return PORTALOCK_OK;
}

/* ---------------------------------------------------------------- accessors */

int portalock_atomic_fd(const portalock_atomic_t *atomic) {
  return atomic != NULL && atomic->state == PL_ATOMIC_OPEN ? atomic->fd : -1;
}

const char *portalock_atomic_filename(const portalock_atomic_t *atomic) {
  return atomic != NULL ? atomic->filename : NULL;
}

const char *portalock_atomic_temp_path(const portalock_atomic_t *atomic) {
  if (atomic == NULL || atomic->state == PL_ATOMIC_FINISHED || atomic->pid != pl_self())
    return NULL;
  return atomic->temp_path;
}

int portalock_atomic_is_open(const portalock_atomic_t *atomic) {
  return atomic != NULL && atomic->state == PL_ATOMIC_OPEN && atomic->pid == pl_self();
}

int portalock_atomic_is_poisoned(const portalock_atomic_t *atomic) {
  return atomic != NULL && atomic->poisoned != 0;
}

/* ---------------------------------------------------------------- write */

portalock_status portalock_atomic_write(portalock_atomic_t *atomic, const void *buf, size_t len,
                                        portalock_error *err) {
  pl_clear(err);
  portalock_status s = pl_atomic_usable(atomic, "write", err);
  if (s != PORTALOCK_OK) return s;
  if (atomic->poisoned)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, atomic->poisoned, atomic->temp_path,
                   "write to '%s': an earlier write failed; the handle can only be aborted",
                   atomic->temp_path);
  const char *p = buf;
  while (len > 0) {
    ssize_t r = write(atomic->fd, p, len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      atomic->poisoned = r < 0 ? errno : EIO;
      return pl_fail_sys(err, atomic->poisoned, "write to temporary", atomic->temp_path);
    }
    p += r;
    len -= (size_t)r;
  }
  return PORTALOCK_OK;
}

/* ---------------------------------------------------------------- commit */

/* Gives the temporary the final mode (and owner): that of the regular file `target` when
 * `exists`, else a new file's. 0, or -1 with errno and *what. */
static int pl_atomic_set_mode(portalock_atomic_t *a, const struct stat *target, int exists,
                              const char **what) {
  if (exists && S_ISREG(target->st_mode)) {
    /* owner first: fchown clears set-id bits, which fchmod then restores, but only for
     * the owner or group actually kept: never a set-id bit for the writer's own ids */
    mode_t mode = target->st_mode & 07777;
    if (fchown(a->fd, target->st_uid, target->st_gid) != 0) {
      if (errno != EPERM) {
        *what = "commit: fchown of the temporary";
        return -1;
      }
      mode &= ~(mode_t)S_ISUID;
      if (fchown(a->fd, (uid_t)-1, target->st_gid) != 0) {
        if (errno != EPERM) {
          *what = "commit: fchown of the temporary";
          return -1;
        }
        mode &= ~(mode_t)S_ISGID;
      }
    }
    if (fchmod(a->fd, mode) != 0) {
      *what = "commit: fchmod of the temporary";
      return -1;
    }
    return 0;
  }
  if (fchmod(a->fd, 0666 & ~pl_current_umask()) != 0) {
    *what = "commit: fchmod of the temporary";
    return -1;
  }
  return 0;
}

/* 1 when `errnum` says the filesystem or kernel lacks the operation (not a real failure). */
static int pl_unsupported(int errnum) {
  return errnum == EINVAL || errnum == ENOSYS || errnum == ENOTSUP || errnum == EOPNOTSUPP ||
         errnum == EPERM || errnum == EMLINK;
}

/* Publishes without replacing. 0, or -1 with errno (ENOTSUP: no way to do it here). */
static int pl_publish_noreplace(portalock_atomic_t *a, int *link_unlink_failed) {
  if (pl_platform_rename_noreplace(a->dirfd, a->temp_name, a->base) == 0) return 0;
  if (!pl_unsupported(errno) || errno == EPERM || errno == EMLINK) return -1;
  if (linkat(a->dirfd, a->temp_name, a->dirfd, a->base, 0) != 0) {
    if (pl_unsupported(errno)) errno = ENOTSUP;
    return -1;
  }
  if (unlinkat(a->dirfd, a->temp_name, 0) != 0 && errno != ENOENT) *link_unlink_failed = errno;
  return 0;
}

portalock_status portalock_atomic_commit(portalock_atomic_t *atomic, int *published,
                                         portalock_error *err) {
  pl_clear(err);
  if (published != NULL) *published = 0;
  portalock_status s = pl_atomic_usable(atomic, "commit", err);
  if (s != PORTALOCK_OK) return s;
  portalock_atomic_t *a = atomic;

  if (a->poisoned) {
    int e = a->poisoned;
    char why[128];
    pl_strerror(e, why, sizeof why);
    pl_atomic_drop(a, 0);
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                   "commit '%s': an earlier write failed (%s); aborted, nothing was published",
                   a->filename, why);
  }

  const char *what = "commit: fsync of the temporary";
  int r;
  do
    r = fsync(a->fd);
  while (r != 0 && errno == EINTR);
  if (r == 0) {
    /* Checked again, after the slow fsync: the target may have changed since open. What
     * remains is the race between this lstat and the rename below (replace = 0 never
     * replaces anything). */
    struct stat target;
    int exists;
    portalock_status refused = pl_atomic_check_target(a, "commit", &target, &exists, err);
    if (refused != PORTALOCK_OK) {
      pl_atomic_drop(a, 1); /* refused before publishing: the payload is kept, as for replace = 0 */
      return refused;
    }
    r = pl_atomic_set_mode(a, &target, exists, &what);
  }
  if (r != 0) {
    int e = errno;
    pl_atomic_drop(a, 0);
    return pl_fail_sys(err, e, what, a->temp_path);
  }

  if (a->replace) {
    if (renameat(a->dirfd, a->temp_name, a->dirfd, a->base) != 0) {
      int e = errno;
      char why[128];
      pl_strerror(e, why, sizeof why);
      pl_atomic_drop(a, 0);
      return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                     "commit: rename to '%s' failed: %s; nothing was published", a->filename, why);
    }
  } else {
    int unlink_failed = 0;
    if (pl_publish_noreplace(a, &unlink_failed) != 0) {
      int e = errno;
      char why[128];
      pl_strerror(e, why, sizeof why);
      pl_atomic_drop(a, 1);
      if (e == EEXIST)
        return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                       "commit: '%s' exists and replace = false; not replaced, the payload "
                       "was kept at '%s'",
                       a->filename, a->temp_path);
      if (e == ENOTSUP)
        return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                       "commit: cannot publish '%s' without replacing: this filesystem "
                       "supports neither RENAME_NOREPLACE nor link(); the payload was kept at "
                       "'%s'",
                       a->filename, a->temp_path);
      return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                     "commit: publishing '%s' failed: %s; the payload was kept at '%s'",
                     a->filename, why, a->temp_path);
    }
    if (unlink_failed) {
      /* published through link(); the temporary's second name could not be removed */
      if (published != NULL) *published = 1;
      pl_atomic_drop(a, 1);
      return pl_fail_sys(err, unlink_failed,
                         "commit: published, but could not remove the temporary", a->temp_path);
    }
  }

  /* Published: from here on the temporary's name is gone. */
  a->state = PL_ATOMIC_FINISHED;
  if (published != NULL) *published = 1;
  do
    r = fsync(a->dirfd);
  while (r != 0 && errno == EINTR);
  int e = errno;
  pl_atomic_drop(a, 0);
  if (r != 0) {
    char why[128];
    pl_strerror(e, why, sizeof why);
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, e, a->filename,
                   "commit: '%s' was published, but the fsync of its directory failed: %s",
                   a->filename, why);
  }
  return PORTALOCK_OK;
}

/* ---------------------------------------------------------------- abort and free */

portalock_status portalock_atomic_abort(portalock_atomic_t *atomic, portalock_error *err) {
  pl_clear(err);
  if (atomic == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "abort: no atomic handle");
  if (atomic->state != PL_ATOMIC_OPEN) return PORTALOCK_OK;
  if (pl_atomic_drop(atomic, 0) != 0)
    return pl_fail_sys(err, errno, "abort: cannot remove the temporary", atomic->temp_path);
  return PORTALOCK_OK;
}

void portalock_atomic_free(portalock_atomic_t *atomic) {
  if (atomic == NULL) return;
  if (atomic->state == PL_ATOMIC_OPEN) pl_atomic_drop(atomic, 0);
  if (atomic->fd >= 0) close(atomic->fd);
  if (atomic->dirfd >= 0) close(atomic->dirfd);
  pl_atomic_destroy(atomic);
}
