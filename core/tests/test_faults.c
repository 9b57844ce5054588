/* Tests what this machine cannot produce on demand, injected into flock(2) by fault_shim.c:
 * ENOLCK fails at once as a LockException, EINTR never ends a lock call or a wait with an
 * error, and a TemporaryFileLock whose file is replaced between open and lock starts over. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void inject(const char *fault) {
  if (fault == NULL)
    unsetenv("PORTALOCK_FAULT_FLOCK");
  else
    setenv("PORTALOCK_FAULT_FLOCK", fault, 1);
}

/* Without the shim every check below would pass for the wrong reason: make sure it is there. */
static void test_shim_loaded(void) {
  int fd = tu_open(tu_path("shim.lock"), O_RDWR | O_CREAT);
  inject("ENOLCK");
  int r = flock(fd, LOCK_EX | LOCK_NB);
  int errnum = errno;
  inject(NULL);
  CHECK_INT(r, -1);
  CHECK_INT(errnum, ENOLCK);
  CHECK_INT(close(fd), 0);
}

static void test_enolck(void) {
  portalock_error err;
  int fd = tu_open(tu_path("enolck.lock"), O_RDWR | O_CREAT);
  inject("ENOLCK");
  CHECK_STATUS(portalock_lock(fd, PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_FLOCK, &err),
               PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_INT(err.errnum, ENOLCK);

  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  opts.timeout = 5;
  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, tu_path("enolck.lock"), &opts, &err), &err);
  int fds = tu_count_fds();
  double start = tu_now();
  CHECK_STATUS(portalock_lock_acquire(lock, &err), PORTALOCK_LOCK_EXCEPTION, &err);
  CHECK_BETWEEN(tu_now() - start, 0.0, 1.0); /* at once, not after the 5 s timeout */
  CHECK_INT(err.errnum, ENOLCK);
  CHECK_CONTAINS(err.path, "enolck.lock");
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_INT(tu_count_fds(), fds); /* the failed attempt closed what it opened */
  inject(NULL);
  portalock_lock_free(lock);
  CHECK_INT(close(fd), 0);
}

static void test_eintr(void) {
  portalock_error err;
  int fd = tu_open(tu_path("eintr.lock"), O_RDWR | O_CREAT);
  inject("EINTR");
  CHECK_OK(portalock_lock(fd, PORTALOCK_LOCK_EX, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_OK(portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, &err), &err);
  CHECK_OK(portalock_lock(fd, PORTALOCK_LOCK_SH | PORTALOCK_LOCK_NB, PORTALOCK_BACKEND_FLOCK, &err),
           &err);
  CHECK_OK(portalock_unlock(fd, PORTALOCK_BACKEND_FLOCK, &err), &err);

  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, tu_path("eintr.lock"), NULL, &err), &err);
  for (int i = 0; i < 10; i++) {
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    CHECK_OK(portalock_lock_release(lock, &err), &err);
  }
  inject(NULL);
  portalock_lock_free(lock);
  CHECK_INT(close(fd), 0);
}

/* Without the inode re-check the lock would end up on the unlinked old file while another
 * process could lock the new one. */
static void test_replaced_temporary_file(void) {
  const char *path = tu_path("temporary.lock");
  const char *replacement = tu_path("temporary.lock.new");
  tu_write_file(path, "");
  tu_write_file(replacement, "");
  struct stat old_st;
  CHECK(stat(path, &old_st) == 0);
  setenv("PORTALOCK_FAULT_RENAME_FROM", replacement, 1);
  setenv("PORTALOCK_FAULT_RENAME_TO", path, 1);
  inject("RENAME");
  portalock_error err;
  portalock_lock_t *lock;
  CHECK_OK(portalock_temporary_file_lock_new(&lock, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK(getenv("PORTALOCK_FAULT_FLOCK") == NULL); /* the replacement happened */
  struct stat by_fd, by_path;
  CHECK(fstat(portalock_lock_fd(lock), &by_fd) == 0);
  CHECK(stat(path, &by_path) == 0);
  CHECK(by_fd.st_ino == by_path.st_ino);
  CHECK(by_fd.st_ino != old_st.st_ino);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_exists(path), 0);
  portalock_lock_free(lock);
}

int main(void) {
  tu_init("faults");
  tu_group("the fault shim is preloaded");
  test_shim_loaded();
  tu_group("ENOLCK: LockException at once, nothing left open");
  test_enolck();
  tu_group("EINTR: lock, unlock and acquire carry on");
  test_eintr();
  tu_group("TemporaryFileLock: a file replaced between open and lock");
  test_replaced_temporary_file();
  return tu_done();
}
