/* Opening a counting semaphore without trusting whatever file carries its name.
 *
 * Where a named semaphore is a file the C library maps (platform.h), anyone may have put a
 * file at that name first: another user's (whose counts they control), one others may write,
 * an empty one (mapping it faults with SIGBUS at the first access). Another user's is used
 * only when this object's `perm` asks to share the semaphore and the file grants no more. So the
 * file is opened here, without following a symlink, checked through that descriptor, and only then
 * mapped: what is mapped is the file that was checked. A missing semaphore is made by sem_open
 * under a temporary name, given exactly `perm` and only then linked to its own name (see
 * pl_semfile_create), so a file it creates is this user's, complete and of its final mode; it
 * is then opened and checked like any. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "platform/platform.h"

/* What makes `st` untrustworthy as the semaphore of an object made with `perm`, or NULL;
 * *errnum says how (EACCES: someone else may change its counts; EINVAL: it is no semaphore).
 * Another user's file is shared on purpose only when this object's `perm` opts into sharing
 * (grants group or others write) and the file grants nothing beyond `perm`. Ownership comes
 * before size: another user's empty file is theirs to fix, not a broken semaphore. */
static const char *pl_semfile_problem(const struct stat *st, int perm, char *buf, size_t cap,
                                      int *errnum) {
  *errnum = EINVAL;
  if (!S_ISREG(st->st_mode)) return "it is not a regular file";
  *errnum = EACCES;
  mode_t shared = (mode_t)perm & (S_IWGRP | S_IWOTH);
  if (st->st_uid != geteuid() && (shared == 0 || (st->st_mode & 0777 & ~(mode_t)perm) != 0)) {
    char me[300];
    pl_describe_user(geteuid(), me, sizeof me);
    int n = snprintf(
        buf, cap, "another user owns it (this process runs as %s; option 'perm' %04o %s)", me,
        (unsigned)perm, shared == 0 ? "does not share it" : "grants less than its mode");
    /* A file its creator shared: the perm that shares it from this side too. */
    if (st->st_mode & (S_IWGRP | S_IWOTH) && n >= 0 && (size_t)n < cap)
      snprintf(buf + n, cap - (size_t)n,
               "; give this object option perm %04o (%d in decimal) to share it",
               (unsigned)(st->st_mode & 0777), (int)(st->st_mode & 0777));
    return buf;
  }
  /* The permissions the creator asked for (option 'perm') may open it to others on purpose. */
  if (st->st_mode & (S_IWGRP | S_IWOTH) & ~(mode_t)perm) {
    snprintf(buf, cap, "group or others may write it, which option 'perm' (%04o) does not grant",
             (unsigned)perm);
    return buf;
  }
  *errnum = EINVAL;
  if (st->st_size != (off_t)sizeof(sem_t)) {
    snprintf(buf, cap, "a semaphore file must hold exactly %zu bytes", sizeof(sem_t));
    return buf;
  }
  return NULL;
}

static portalock_status pl_semfile_refuse(const char *label, const char *path,
                                          const struct stat *st, const char *problem, int errnum,
                                          portalock_error *err) {
  char owner[300];
  pl_describe_user(st->st_uid, owner, sizeof owner);
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                 "Semaphore '%s': refusing '%s' (owned by %s, mode %04o, %lld bytes): %s", label,
                 path, owner, (unsigned)(st->st_mode & 07777), (long long)st->st_size, problem);
}

/* The file could not be opened: says whose it is and its mode, when that can be seen (and
 * what to change, when this process may not open it). */
static portalock_status pl_semfile_unopenable(const char *label, const char *path, int errnum,
                                              portalock_error *err) {
  char why[128], owner[300];
  if (errnum == EACCES) {
    char what[sizeof "Semaphore '': open" + PORTALOCK_SEMAPHORE_NAME_MAX];
    snprintf(what, sizeof what, "Semaphore '%s': open", label);
    return pl_fail_access(err, errnum, what, path, PL_SHARED_BY_BOTH);
  }
  pl_strerror(errnum, why, sizeof why);
  struct stat st;
  if (lstat(path, &st) != 0)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                   "Semaphore '%s': cannot open '%s': %s", label, path, why);
  pl_describe_user(st.st_uid, owner, sizeof owner);
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path,
                 "Semaphore '%s': cannot open '%s' (%sowned by %s, mode %04o): %s", label, path,
                 S_ISLNK(st.st_mode) ? "a symbolic link, " : "", owner,
                 (unsigned)(st.st_mode & 07777), why);
}

/* Checks the open semaphore file `fd` and maps it; closes `fd` either way. */
static portalock_status pl_semfile_map(const char *label, const char *path, int fd, int perm,
                                       sem_t **out, portalock_error *err) {
  struct stat st;
  portalock_status status = PORTALOCK_OK;
  char buf[640];
  int errnum;
  const char *problem;
  void *mapped = MAP_FAILED;
  if (fstat(fd, &st) != 0)
    status = pl_fail_sys(err, errno, "fstat semaphore", path);
  else if ((problem = pl_semfile_problem(&st, perm, buf, sizeof buf, &errnum)) != NULL)
    status = pl_semfile_refuse(label, path, &st, problem, errnum, err);
  else if ((mapped = mmap(NULL, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
           MAP_FAILED)
    status = pl_fail_sys(err, errno, "map semaphore", path);
  close(fd);
  if (status == PORTALOCK_OK) *out = mapped;
  return status;
}

/* Makes the semaphore `label` at `path` with `value` and exactly `perm`, unless another process
 * makes it first (then OK too: the caller opens whichever is there). sem_open's mode is masked
 * by the umask, and the semaphore would be usable the moment its name appears: so sem_open
 * makes it under a temporary name ("/portalock-new.<16 hex digits>", never a
 * "/portalock.<name>"), mode 0600, its file is given `perm` through a descriptor, and only
 * then linked to `path`. No process ever meets the semaphore at its name with another mode
 * (another user's worker would fail where its creator's `perm` lets it in). */
static portalock_status pl_semfile_create(const char *label, const char *path, int perm,
                                          unsigned value, portalock_error *err) {
  unsigned char bytes[8];
  char tmp_name[40], tmp_path[PORTALOCK_PATH_MAX];
  if (pl_platform_random_bytes(bytes, sizeof bytes) != 0)
    return pl_fail_sys(err, errno, "read the OS random source to create semaphore", path);
  int n = snprintf(tmp_name, sizeof tmp_name, "/portalock-new.");
  for (size_t i = 0; i < sizeof bytes; i++)
    n += snprintf(tmp_name + n, sizeof tmp_name - (size_t)n, "%02x", bytes[i]);
  if (pl_platform_sem_path(tmp_name, tmp_path, sizeof tmp_path) != 0)
    return pl_fail_sys(err, errno, "create semaphore", path);
  sem_t *made = sem_open(tmp_name, O_CREAT | O_EXCL, (mode_t)(S_IRUSR | S_IWUSR), value);
  if (made == SEM_FAILED) return pl_fail_sys(err, errno, "create semaphore", path);
  sem_close(made);
  portalock_status status = PORTALOCK_OK;
  int fd = open(tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    /* Made, yet not at `tmp_path`: glibc before 2.34 keeps named semaphores on another
     * tmpfs mount when /dev/shm is none. Nothing there can be checked: say so (the
     * semaphore just made is taken back below), rather than retry in vain. */
    status = pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ENOTSUP, path,
                     "Semaphore '%s': sem_open keeps named semaphores elsewhere than '%s' on "
                     "this system (glibc before 2.34 without a tmpfs at /dev/shm), where they "
                     "cannot be checked",
                     label, path);
  else if (fd < 0)
    status = pl_fail_sys(err, errno, "open the new semaphore", tmp_path);
  else if (fchmod(fd, (mode_t)perm) != 0)
    status = pl_fail_sys(err, errno, "set the mode of the new semaphore", tmp_path);
  else if (link(tmp_path, path) != 0 && errno != EEXIST) /* EEXIST: someone else's came first */
    status = pl_fail_sys(err, errno, "create semaphore", path);
  if (fd >= 0) close(fd);
  sem_unlink(tmp_name);
  return status;
}

portalock_status pl_semfile_open(const char *name, const char *label, int perm, unsigned value,
                                 pl_semfile *out, portalock_error *err) {
  char path[PORTALOCK_PATH_MAX];
  if (pl_platform_sem_path(name, path, sizeof path) != 0) {
    /* No file to check: the system's own sem_open, and its permission checks. */
    out->mapped = 0;
    out->sem = sem_open(name, O_CREAT, (mode_t)perm, value);
    if (out->sem == SEM_FAILED) return pl_fail_sys(err, errno, "open semaphore", name);
    return PORTALOCK_OK;
  }
  out->mapped = 1;
  for (int round = 0; round < PL_ROUNDS; round++) {
    /* O_NONBLOCK: a FIFO planted there must not hang the open. */
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) return pl_semfile_map(label, path, fd, perm, &out->sem, err);
    if (errno != ENOENT) return pl_semfile_unopenable(label, path, errno, err);
    portalock_status status = pl_semfile_create(label, path, perm, value, err);
    if (status != PORTALOCK_OK) return status;
    /* Made (by us, or by someone just before us): open it as any other. */
  }
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ENOENT, path,
                 "Semaphore '%s': '%s' kept disappearing between its creation and its opening",
                 label, path);
}

void pl_semfile_close(pl_semfile *file) {
  if (file->sem == SEM_FAILED) return;
  if (file->mapped)
    munmap(file->sem, sizeof(sem_t));
  else
    sem_close(file->sem);
  file->sem = SEM_FAILED;
}
