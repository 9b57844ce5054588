/* Why this process may not open or create a file, in the one wording every kind of object
 * uses (lock files and their kinds, bounded-semaphore slot files, counting semaphores): for
 * EACCES, whose the file is and its mode (or its directory's, when the file is missing), which
 * user this process runs as, and what would let it in (the typical case: a file first created
 * by a root master process, nginx's init_by_lua, that its workers, running as another user,
 * cannot open); for ENOENT, which directory is missing. */
#include "private.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The permissions the advice suggests: read and write for everyone, as open(2) callers
 * usually ask before the umask. */
#define PL_SHARED_PERM 0666

/* The user's name, or "" when it has none; 1 when it has one. */
static int pl_user_name(uid_t uid, char *buf, size_t cap) {
  struct passwd pw, *found = NULL;
  char names[1024];
  int named = getpwuid_r(uid, &pw, names, sizeof names, &found) == 0 && found != NULL;
  snprintf(buf, cap, "%s", named ? found->pw_name : "");
  return named;
}

void pl_describe_user(uid_t uid, char *buf, size_t cap) {
  char name[256];
  if (pl_user_name(uid, name, sizeof name))
    snprintf(buf, cap, "%s (uid %ld)", name, (long)uid);
  else
    snprintf(buf, cap, "uid %ld", (long)uid);
}

/* "root (uid 0), mode 0644" */
static void pl_describe_file(const struct stat *st, char *buf, size_t cap) {
  char owner[300];
  pl_describe_user(st->st_uid, owner, sizeof owner);
  snprintf(buf, cap, "%s, mode %04o", owner, (unsigned)(st->st_mode & 07777));
}

/* The directory part of `path` ("." for a bare name, "/" for a name in the root). */
static void pl_parent_dir(const char *path, char *buf, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    snprintf(buf, cap, ".");
  else if (slash == path)
    snprintf(buf, cap, "/");
  else
    snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

portalock_status pl_fail_access(portalock_error *err, int errnum, const char *what,
                                const char *path, pl_sharing sharing) {
  char why[128], me[300], user[256], file[360], dir[PORTALOCK_PATH_MAX];
  pl_strerror(errnum, why, sizeof why);
  if (errnum == ENOENT) { /* the file would have been created: its directory is missing */
    pl_parent_dir(path, dir, sizeof dir);
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                   "%s '%s': %s: the directory '%s' does not exist", what, path, why, dir);
  }
  pl_describe_user(geteuid(), me, sizeof me);
  if (!pl_user_name(geteuid(), user, sizeof user))
    snprintf(user, sizeof user, "uid %ld", (long)geteuid());
  const char *also = sharing == PL_SHARED_BY_BOTH ? ", and the same perm here" : "";
  struct stat st;
  int seen = lstat(path, &st) == 0;
  int missing = !seen && errno == ENOENT;
  if (seen) {
    pl_describe_file(&st, file, sizeof file);
    /* A perm applies to a file the call creates: this one stays as it is until changed. */
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                   "%s '%s': %s: owned by %s, and this process runs as %s; an existing file "
                   "keeps its mode: chown it to %s or chmod it 0%o, or remove it so that it is "
                   "created again with option perm 0%o (%d in decimal)%s",
                   what, path, why, file, me, user, PL_SHARED_PERM, PL_SHARED_PERM, PL_SHARED_PERM,
                   also);
  }
  pl_parent_dir(path, dir, sizeof dir);
  if (missing && stat(dir, &st) == 0) {
    pl_describe_file(&st, file, sizeof file);
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                   "%s '%s': %s: it cannot be created in '%s' (owned by %s) by this process, "
                   "which runs as %s; let %s write that directory, or create the file beforehand "
                   "with option perm 0%o (%d in decimal)%s",
                   what, path, why, dir, file, me, user, PL_SHARED_PERM, PL_SHARED_PERM, also);
  }
  /* Neither the file nor its directory can be seen (a directory on the way denies a
   * search): whom this process runs as is all there is to add. */
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                 "%s '%s': %s (this process runs as %s)", what, path, why, me);
}
