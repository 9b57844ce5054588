/* Tests TemporaryFileLock: default name, file removed on release, contention, a foreign file
 * kept. (A file replaced between open and lock: test_faults.c, which can time it exactly.) */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_basics(void) {
  char old_cwd[PORTALOCK_PATH_MAX], cwd[PORTALOCK_PATH_MAX];
  CHECK(getcwd(old_cwd, sizeof old_cwd) != NULL);
  CHECK(chdir(tu_scratch()) == 0);
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_temporary_file_lock_new(&lock, NULL, NULL, &err), &err);
  char expected[PORTALOCK_PATH_MAX + 8];
  snprintf(expected, sizeof expected, "%s/.lock", cwd);
  CHECK_STR(portalock_lock_filename(lock), expected);
  CHECK_STR(portalock_lock_lock_filename(lock), expected);
  CHECK(chdir(old_cwd) == 0);

  CHECK_INT(tu_exists(expected), 0);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK(tu_exists(expected));
  CHECK_INT(tu_probe_locked(expected, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_exists(expected), 0);
  /* again, and freeing a held one removes the file too */
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK(tu_exists(expected));
  portalock_lock_free(lock);
  CHECK_INT(tu_exists(expected), 0);
}

static void test_other_process(void) {
  const char *path = tu_path("temp-contended");
  tu_proc p;
  if (tu_fork(&p) == 0) {
    portalock_lock_t *lock;
    portalock_error err;
    CHECK_OK(portalock_temporary_file_lock_new(&lock, path, NULL, &err), &err);
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    tu_send(&p, 'R');
    tu_recv(&p);
    portalock_lock_free(lock);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&p), 'R');
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_temporary_file_lock_new(&lock, path, NULL, &err), &err);
  double t0 = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3); /* fail_when_locked by default */
  CHECK(tu_exists(path));                 /* the loser leaves the holder's file alone */
  portalock_wait wait;
  CHECK_STATUS(portalock_lock_try(lock, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK(tu_exists(path));

  /* a waiter with a timeout gets it once the holder has let go (and removed the file) */
  tu_send(&p, 'x');
  CHECK_OK(portalock_lock_acquire_with(lock, 5, 0.02, 0, &err), &err);
  CHECK_INT(tu_reap(&p), 0);
  struct stat by_fd, by_path;
  CHECK(fstat(portalock_lock_fd(lock), &by_fd) == 0);
  CHECK(stat(path, &by_path) == 0);
  CHECK(by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev);
  CHECK(by_fd.st_nlink == 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_exists(path), 0);
  portalock_lock_free(lock);
}

/* A file replaced by someone else while held is not removed by release. */
static void test_foreign_file_kept(void) {
  const char *path = tu_path("temp-foreign");
  const char *other = tu_path("temp-foreign.other");
  portalock_lock_t *lock;
  portalock_error err;
  CHECK_OK(portalock_temporary_file_lock_new(&lock, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  tu_write_file(other, "someone else's");
  CHECK(rename(other, path) == 0);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  char buf[32];
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 14);
  portalock_lock_free(lock);
}

int main(void) {
  tu_init("temporary");
  tu_group("default .lock in the working directory, exists while held, removed after");
  test_basics();
  tu_group("a holder in another process: fail_when_locked, then a waiter");
  test_other_process();
  tu_group("release leaves a file that is no longer ours");
  test_foreign_file_kept();
  return tu_done();
}
