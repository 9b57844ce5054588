/* Tests portalock_lock/portalock_unlock on descriptors for each backend, and status names. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static const portalock_backend backends[] = {PORTALOCK_BACKEND_FLOCK, PORTALOCK_BACKEND_OFD,
                                             PORTALOCK_BACKEND_POSIX};
static const char *const backend_names[] = {"flock", "ofd", "posix"};

#define EX_NB (PORTALOCK_LOCK_EX | PORTALOCK_LOCK_NB)
#define SH_NB (PORTALOCK_LOCK_SH | PORTALOCK_LOCK_NB)

/* In a child: opens `path` afresh and tries `flags`; exit 0 = got it, 1 = already locked. */
static int child_try(const char *path, int flags, portalock_backend backend) {
  tu_proc p;
  if (tu_fork(&p) == 0) {
    int fd = tu_open(path, O_RDWR);
    portalock_error err;
    portalock_status s = portalock_lock(fd, flags, backend, &err);
    tu_child_exit(s == PORTALOCK_OK ? 0 : s == PORTALOCK_ALREADY_LOCKED ? 1 : 2);
  }
  return tu_reap(&p);
}

static void test_exclusion(int b) {
  portalock_backend be = backends[b];
  char name[64];
  snprintf(name, sizeof name, "exclusion-%s", backend_names[b]);
  const char *path = tu_path(name);
  portalock_error err;
  int fd = tu_open(path, O_RDWR | O_CREAT);

  CHECK_OK(portalock_lock(fd, EX_NB, be, &err), &err);
  CHECK_INT(child_try(path, EX_NB, be), 1);
  CHECK_INT(child_try(path, SH_NB, be), 1);
  if (be != PORTALOCK_BACKEND_POSIX) {
    /* flock and ofd locks belong to the open file description: a second open conflicts. */
    int fd2 = tu_open(path, O_RDWR);
    CHECK_STATUS(portalock_lock(fd2, EX_NB, be, &err), PORTALOCK_ALREADY_LOCKED, &err);
    CHECK(err.errnum == EAGAIN || err.errnum == EACCES);
    CHECK_STATUS(portalock_lock(fd2, SH_NB, be, &err), PORTALOCK_ALREADY_LOCKED, &err);
    close(fd2);
  }
  CHECK_OK(portalock_unlock(fd, be, &err), &err);
  CHECK_INT(child_try(path, EX_NB, be), 0);

  /* shared + shared coexist, shared excludes exclusive */
  CHECK_OK(portalock_lock(fd, SH_NB, be, &err), &err);
  CHECK_INT(child_try(path, SH_NB, be), 0);
  CHECK_INT(child_try(path, EX_NB, be), 1);
  if (be != PORTALOCK_BACKEND_POSIX) {
    int fd2 = tu_open(path, O_RDWR);
    CHECK_OK(portalock_lock(fd2, SH_NB, be, &err), &err);
    CHECK_OK(portalock_unlock(fd2, be, &err), &err);
    close(fd2);
  }
  /* a blocking lock on a free file returns at once */
  CHECK_OK(portalock_unlock(fd, be, &err), &err);
  CHECK_OK(portalock_lock(fd, PORTALOCK_LOCK_EX, be, &err), &err);
  CHECK_INT(child_try(path, EX_NB, be), 1);
  CHECK_OK(portalock_unlock(fd, be, &err), &err);
  close(fd);
}

static void test_bad_flags(void) {
  const char *path = tu_path("flags");
  int fd = tu_open(path, O_RDWR | O_CREAT);
  const int bad[] = {0,
                     PORTALOCK_LOCK_SH | PORTALOCK_LOCK_EX,
                     PORTALOCK_LOCK_UN,
                     PORTALOCK_LOCK_EX | PORTALOCK_LOCK_UN,
                     16,
                     -1,
                     PORTALOCK_LOCK_NB};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int b = 0; b < 3; b++) {
      portalock_error err;
      CHECK_STATUS(portalock_lock(fd, bad[i], backends[b], &err), PORTALOCK_INVALID, &err);
      CHECK_INT(err.status, PORTALOCK_INVALID);
      CHECK_CONTAINS(err.message, "flags");
    }
  }
  portalock_error err;
  CHECK_STATUS(portalock_lock(fd, EX_NB, (portalock_backend)3, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "backend");
  CHECK_STATUS(portalock_lock(fd, EX_NB, (portalock_backend)-1, &err), PORTALOCK_INVALID, &err);
  CHECK_STATUS(portalock_unlock(fd, (portalock_backend)9, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "backend");
  /* a NULL error pointer is allowed */
  CHECK_INT(portalock_lock(fd, 0, PORTALOCK_BACKEND_FLOCK, NULL), PORTALOCK_INVALID);
  CHECK_INT(portalock_lock(fd, EX_NB, PORTALOCK_BACKEND_FLOCK, NULL), PORTALOCK_OK);
  CHECK_INT(portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, NULL), PORTALOCK_OK);
  close(fd);
}

static void test_bad_fds(void) {
  const char *path = tu_path("badfd");
  int closed = tu_open(path, O_RDWR | O_CREAT);
  int ro = tu_open(path, O_RDONLY); /* opened first, so that it cannot reuse `closed` */
  close(closed);
  for (int b = 0; b < 3; b++) {
    portalock_error err;
    CHECK_STATUS(portalock_lock(-1, EX_NB, backends[b], &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(err.errnum, EBADF);
    CHECK_STATUS(portalock_lock(closed, EX_NB, backends[b], &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(err.errnum, EBADF);
    CHECK_STATUS(portalock_unlock(-1, backends[b], &err), PORTALOCK_LOCK_EXCEPTION, &err);
    CHECK_INT(err.errnum, EBADF);
    /* a read-only descriptor allows a shared lock with every backend */
    CHECK_OK(portalock_lock(ro, SH_NB, backends[b], &err), &err);
    CHECK_OK(portalock_unlock(ro, backends[b], &err), &err);
  }
  portalock_error err;
  /* flock(2) does not care about the access mode; record locks do */
  CHECK_OK(portalock_lock(ro, EX_NB, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_OK(portalock_unlock(ro, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_STATUS(portalock_lock(ro, EX_NB, PORTALOCK_BACKEND_OFD, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, EBADF);
  CHECK_STATUS(portalock_lock(ro, EX_NB, PORTALOCK_BACKEND_POSIX, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, EBADF);
  close(ro);
  int wo = tu_open(path, O_WRONLY);
  CHECK_STATUS(portalock_lock(wo, SH_NB, PORTALOCK_BACKEND_OFD, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, EBADF);
  CHECK_STATUS(portalock_lock(wo, SH_NB, PORTALOCK_BACKEND_POSIX, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, EBADF);
  close(wo);
}

/* flock(1) holds the lock in a child; the flock backend must see it, and flock(1) ours. */
static void test_flock_tool(void) {
  const char *path = tu_path("flock-tool");
  tu_write_file(path, "");
  int fd = tu_open(path, O_RDWR);
  portalock_error err;

  tu_proc p;
  if (tu_fork(&p) == 0) {
    setpgid(0, 0); /* so that the shell and its sleep are killed with it */
    dup2(p.from, STDOUT_FILENO);
    /* -o: only flock(1) itself holds the lock, so reaping it means the lock is gone */
    execlp("flock", "flock", "-o", "-x", path, "-c", "echo R; exec sleep 30", (char *)NULL);
    tu_child_exit(127);
  }
  CHECK_INT(tu_recv(&p), 'R');
  CHECK_STATUS(portalock_lock(fd, EX_NB, PORTALOCK_BACKEND_FLOCK, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_STATUS(portalock_lock(fd, SH_NB, PORTALOCK_BACKEND_FLOCK, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  kill(-p.pid, SIGKILL);
  tu_reap(&p);
  CHECK_OK(portalock_lock(fd, EX_NB, PORTALOCK_BACKEND_FLOCK, &err), &err);

  /* and the other way round: flock -n exits with the -E code on conflict */
  char *try_ex[] = {"flock", "-n", "-E", "42", (char *)path, "true", NULL};
  char *try_sh[] = {"flock", "-n", "-s", "-E", "42", (char *)path, "true", NULL};
  CHECK_INT(tu_run(try_ex), 42);
  CHECK_INT(tu_run(try_sh), 42);
  CHECK_OK(portalock_lock(fd, SH_NB, PORTALOCK_BACKEND_FLOCK, &err), &err); /* convert */
  CHECK_INT(tu_run(try_sh), 0);
  CHECK_INT(tu_run(try_ex), 42);
  CHECK_OK(portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_INT(tu_run(try_ex), 0);
  close(fd);
}

static void test_posix_second_fd(void) {
  const char *path = tu_path("posix-twice");
  int fd = tu_open(path, O_RDWR | O_CREAT);
  int fd2 = tu_open(path, O_RDWR);
  portalock_error err;
  CHECK_OK(portalock_lock(fd, EX_NB, PORTALOCK_BACKEND_POSIX, &err), &err);
  CHECK_STATUS(portalock_lock(fd2, EX_NB, PORTALOCK_BACKEND_POSIX, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, EDEADLK);
  CHECK_STATUS(portalock_lock(fd2, SH_NB, PORTALOCK_BACKEND_POSIX, &err), PORTALOCK_LOCK_EXCEPTION,
               &err);
  CHECK_INT(err.errnum, EDEADLK);
  /* the same descriptor may convert its own lock */
  CHECK_OK(portalock_lock(fd, SH_NB, PORTALOCK_BACKEND_POSIX, &err), &err);
  CHECK_INT(child_try(path, SH_NB, PORTALOCK_BACKEND_POSIX), 0);
  CHECK_INT(child_try(path, EX_NB, PORTALOCK_BACKEND_POSIX), 1);
  CHECK_OK(portalock_unlock(fd, PORTALOCK_BACKEND_POSIX, &err), &err);
  /* once unlocked, the other descriptor may lock */
  CHECK_OK(portalock_lock(fd2, EX_NB, PORTALOCK_BACKEND_POSIX, &err), &err);
  CHECK_INT(child_try(path, EX_NB, PORTALOCK_BACKEND_POSIX), 1);
  CHECK_OK(portalock_unlock(fd2, PORTALOCK_BACKEND_POSIX, &err), &err);
  close(fd);
  close(fd2);
}

/* `fd` moved to a number >= `min` (0: left where it is). */
static int fd_at_least(int fd, int min) {
  if (min == 0) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
  CHECK(moved >= min);
  close(fd);
  return moved;
}

/* flock(2) drops the old lock before it tries the new one; an ofd lock converts in place (a
 * posix one too, but a second descriptor of its file is refused: test_posix_second_fd).
 * portalock_lock keeps no identity of a flock/ofd descriptor (no fstat), yet tells them apart:
 * below HIGH_FD in a slot per descriptor, above it in the held table. */
#define HIGH_FD 2000
static void test_failed_conversion(int b, int min_fd) {
  portalock_backend be = backends[b];
  char name[64];
  snprintf(name, sizeof name, "convert-%s-%d", backend_names[b], min_fd);
  const char *path = tu_path(name);
  int fd = fd_at_least(tu_open(path, O_RDWR | O_CREAT), min_fd);
  int other = fd_at_least(tu_open(path, O_RDWR), min_fd);
  portalock_error err;
  /* a contended first lock has nothing to lose */
  CHECK_OK(portalock_lock(other, SH_NB, be, &err), &err);
  int third = tu_open(path, O_RDWR);
  CHECK_STATUS(portalock_lock(third, EX_NB, be, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_INT(err.lost, 0);
  close(third);
  CHECK_OK(portalock_lock(fd, SH_NB, be, &err), &err);
  CHECK_OK(portalock_lock(fd, SH_NB, be, &err), &err); /* the same type again: no conversion */
  CHECK_STATUS(portalock_lock(fd, EX_NB, be, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_INT(err.lost, be == PORTALOCK_BACKEND_FLOCK);
  CHECK_OK(portalock_unlock(other, be, &err), &err);
  /* a flock descriptor kept nothing; an ofd one still holds its shared lock */
  CHECK_INT(child_try(path, EX_NB, be), be == PORTALOCK_BACKEND_FLOCK ? 0 : 1);
  CHECK_OK(portalock_lock(fd, EX_NB, be, &err), &err);
  CHECK_INT(child_try(path, SH_NB, be), 1);
  CHECK_OK(portalock_unlock(fd, be, &err), &err);
  CHECK_INT(child_try(path, EX_NB, be), 0);
  close(other);
  close(fd);
}

static void test_status_names(void) {
  CHECK_STR(portalock_status_name(PORTALOCK_OK), "OK");
  CHECK_STR(portalock_status_name(PORTALOCK_CONTENDED), "Contended");
  CHECK_STR(portalock_status_name(PORTALOCK_ALREADY_LOCKED), "AlreadyLocked");
  CHECK_STR(portalock_status_name(PORTALOCK_LOCK_EXCEPTION), "LockException");
  CHECK_STR(portalock_status_name(PORTALOCK_INVALID), "Invalid");
  CHECK(portalock_status_name((portalock_status)42) != NULL);
  CHECK_STR(portalock_version(), PORTALOCK_VERSION_STRING);
}

int main(void) {
  tu_init("lowlevel");
  for (int b = 0; b < 3; b++) {
    char group[64];
    snprintf(group, sizeof group, "exclusive/shared exclusion, %s backend", backend_names[b]);
    tu_group(group);
    test_exclusion(b);
  }
  tu_group("invalid flags and backends");
  test_bad_flags();
  tu_group("bad and read-only descriptors");
  test_bad_fds();
  tu_group("flock backend against flock(1)");
  test_flock_tool();
  tu_group("posix: a second descriptor of the same process is refused (EDEADLK)");
  test_posix_second_fd();
  struct rlimit lim;
  int high = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max > HIGH_FD + 10;
  if (high && lim.rlim_cur <= HIGH_FD + 10) {
    lim.rlim_cur = HIGH_FD + 10;
    high = setrlimit(RLIMIT_NOFILE, &lim) == 0;
  }
  if (!high) printf("lowlevel: SKIP conversions on descriptors >= %d (RLIMIT_NOFILE)\n", HIGH_FD);
  for (int b = 0; b < 2; b++) {
    for (int min_fd = 0; min_fd <= (high ? HIGH_FD : 0); min_fd += HIGH_FD) {
      char group[96];
      snprintf(group, sizeof group, "a failed conversion, %s backend, descriptors >= %d",
               backend_names[b], min_fd);
      tu_group(group);
      test_failed_conversion(b, min_fd);
    }
  }
  tu_group("status names");
  test_status_names();
  return tu_done();
}
