/* Tests handing a held lock to a stream: portalock_lock_hand_over and portalock_lock_try_onto. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static portalock_lock_t *new_lock(const char *path, portalock_backend backend) {
  portalock_lock_options opts;
  portalock_lock_options_init(&opts);
  opts.backend = backend;
  opts.timeout = 0;
  portalock_error err;
  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(&lock, path, &opts, &err), &err);
  return lock;
}

/* After hand_over, release unlocks but leaves the descriptor to the stream that owns it. */
static void test_hand_over(void) {
  const char *path = tu_path("stream.lock");
  portalock_lock_t *lock = new_lock(path, PORTALOCK_BACKEND_FLOCK);
  portalock_error err;
  CHECK_STATUS(portalock_lock_hand_over(lock, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "not held");
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  FILE *stream = fdopen(portalock_lock_fd(lock), "a");
  CHECK(stream != NULL);
  CHECK_OK(portalock_lock_hand_over(lock, &err), &err);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
  CHECK(fprintf(stream, "still open\n") > 0);
  CHECK_INT(fclose(stream), 0); /* the descriptor was not closed behind the stream's back */
  portalock_lock_free(lock);
}

/* The stream's owner closes it instead of releasing: forget drops the state only. */
static void test_forget(void) {
  const char *path = tu_path("forget.lock");
  portalock_lock_t *lock = new_lock(path, PORTALOCK_BACKEND_FLOCK);
  portalock_error err;
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  FILE *stream = fdopen(portalock_lock_fd(lock), "a");
  CHECK(stream != NULL);
  CHECK_OK(portalock_lock_hand_over(lock, &err), &err);
  CHECK_INT(fclose(stream), 0);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
  portalock_lock_forget(lock);
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_OK(portalock_lock_acquire(lock, &err), &err);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  portalock_lock_free(lock);
}

/* try_onto locks on the target descriptor itself, which keeps posix locks intact. */
static void test_try_onto(portalock_backend backend) {
  const char *path =
      tu_path(backend == PORTALOCK_BACKEND_POSIX ? "onto-posix.lock" : "onto-flock.lock");
  portalock_lock_t *lock = new_lock(path, backend);
  portalock_error err;
  portalock_wait wait;
  int target = tu_open("/dev/null", O_WRONLY);
  CHECK_OK(portalock_lock_try_onto(lock, target, &wait, &err), &err);
  CHECK_INT(portalock_lock_fd(lock), target);
  CHECK_INT(fcntl(target, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  CHECK_INT(tu_probe_locked(path, backend), 1);
  CHECK(write(target, "x", 1) == 1);
  char buf[8];
  CHECK_INT(tu_read_file(path, buf, sizeof buf), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  CHECK_INT(tu_probe_locked(path, backend), 0);
  CHECK_INT(fcntl(target, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC); /* still open: the caller's */

  /* Contended: the target is left unlocked, for its owner to close. */
  tu_proc holder;
  tu_hold(&holder, path, backend);
  CHECK_STATUS(portalock_lock_try_onto(lock, target, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_INT(close(target), 0);
  tu_hold_end(&holder);
  portalock_lock_free(lock);
}

int main(void) {
  tu_init("handover");
  tu_group("hand_over: release unlocks, the stream closes");
  test_hand_over();
  tu_group("forget after the stream's owner closed it");
  test_forget();
  tu_group("try_onto with flock and posix");
  test_try_onto(PORTALOCK_BACKEND_FLOCK);
  test_try_onto(PORTALOCK_BACKEND_POSIX);
  return tu_done();
}
