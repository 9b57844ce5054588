/* Tests RLock: per-owner counting, contention between owners and processes, release errors. */
#include "testutil.h"

#include <errno.h>

#define A ((uintptr_t)1)
#define B ((uintptr_t)0xB0B)

static portalock_rlock_t *new_rlock(const char *path) {
  portalock_lock_options o;
  portalock_lock_options_init(&o);
  o.check_interval = 0.05;
  portalock_rlock_t *r = NULL;
  portalock_error err;
  CHECK_OK(portalock_rlock_new(&r, path, &o, &err), &err);
  CHECK(r != NULL);
  return r;
}

static void test_owners(void) {
  const char *path = tu_path("owners");
  portalock_rlock_t *r = new_rlock(path);
  portalock_lock_t *lock = portalock_rlock_lock(r);
  portalock_error err;
  portalock_wait wait;

  CHECK_INT(portalock_rlock_owner(r), 0);
  CHECK_INT(portalock_rlock_count(r), 0);
  CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  CHECK_INT(portalock_rlock_owner(r), A);
  CHECK_INT(portalock_rlock_count(r), 1);
  int fd = portalock_lock_fd(lock);
  CHECK(fd >= 0);
  CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  CHECK_OK(portalock_rlock_try(r, A, &wait, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 3);
  CHECK_INT(portalock_lock_fd(lock), fd); /* one kernel lock for every hold */
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);

  /* another owner, in this process */
  double before = tu_now();
  wait.fd = -42;
  CHECK_STATUS(portalock_rlock_try(r, B, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK(wait.fd >= -1);
  CHECK(wait.next_attempt > before);
  double t0 = tu_now();
  CHECK_STATUS(portalock_rlock_acquire_with(r, B, 0, 0.05, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_BETWEEN(tu_now() - t0, 0.0, 0.3);
  t0 = tu_now();
  CHECK_STATUS(portalock_rlock_acquire_with(r, B, 0.3, 0.05, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_BETWEEN(tu_now() - t0, 0.25, 3.0);
  CHECK_INT(portalock_rlock_owner(r), A);
  CHECK_INT(portalock_rlock_count(r), 3);

  /* release errors */
  CHECK_STATUS(portalock_rlock_release(r, B, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "owner");
  CHECK_INT(portalock_rlock_count(r), 3);
  CHECK_OK(portalock_rlock_release(r, A, &err), &err);
  CHECK_OK(portalock_rlock_release(r, A, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 1);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 1);
  CHECK_OK(portalock_rlock_release(r, A, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 0);
  CHECK_INT(portalock_rlock_owner(r), 0);
  CHECK_INT(portalock_lock_locked(lock), 0);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
  CHECK_STATUS(portalock_rlock_release(r, A, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "more times than acquired");

  /* now B can have it */
  CHECK_OK(portalock_rlock_acquire_with(r, B, 0, 0.05, 0, &err), &err);
  CHECK_INT(portalock_rlock_owner(r), B);
  CHECK_STATUS(portalock_rlock_try(r, A, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_OK(portalock_rlock_release(r, B, &err), &err);
  portalock_rlock_free(r);
}

static void test_release_all_and_zero(void) {
  const char *path = tu_path("release-all");
  portalock_rlock_t *r = new_rlock(path);
  portalock_error err;
  portalock_wait wait;
  for (int i = 0; i < 5; i++)
    CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 5);
  CHECK_OK(portalock_rlock_release_all(r, B, &err), &err); /* not the holder: no-op */
  CHECK_INT(portalock_rlock_count(r), 5);
  CHECK_OK(portalock_rlock_release_all(r, A, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 0);
  CHECK_INT(portalock_rlock_owner(r), 0);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
  CHECK_OK(portalock_rlock_release_all(r, A, &err), &err); /* nothing held: no-op */

  CHECK_STATUS(portalock_rlock_acquire(r, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'owner'");
  CHECK_STATUS(portalock_rlock_try(r, 0, &wait, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'owner'");
  CHECK_STATUS(portalock_rlock_release(r, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'owner'");
  CHECK_STATUS(portalock_rlock_release_all(r, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'owner'");
  CHECK_INT(portalock_rlock_count(r), 0);

  /* freeing a held RLock releases it */
  CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  portalock_rlock_free(r);
  CHECK_INT(tu_probe_locked(path, PORTALOCK_BACKEND_FLOCK), 0);
  portalock_rlock_free(NULL);
}

/* Any owner of an RLock in another process is contended too. */
static void test_other_process(void) {
  const char *path = tu_path("rlock-process");
  tu_proc p;
  if (tu_fork(&p) == 0) {
    portalock_rlock_t *r = new_rlock(path);
    portalock_error err;
    CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
    CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
    tu_send(&p, 'R');
    tu_recv(&p);
    CHECK_OK(portalock_rlock_release(r, A, &err), &err);
    tu_send(&p, '1'); /* still held once */
    tu_recv(&p);
    CHECK_OK(portalock_rlock_release(r, A, &err), &err);
    portalock_rlock_free(r);
    tu_child_exit(0);
  }
  CHECK_INT(tu_recv(&p), 'R');
  portalock_rlock_t *r = new_rlock(path);
  portalock_error err;
  portalock_wait wait;
  CHECK_STATUS(portalock_rlock_try(r, A, &wait, &err), PORTALOCK_CONTENDED, &err);
  CHECK_STATUS(portalock_rlock_acquire_with(r, A, 0.2, 0.05, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  CHECK_INT(portalock_rlock_count(r), 0);
  tu_send(&p, 'g');
  CHECK_INT(tu_recv(&p), '1');
  CHECK_STATUS(portalock_rlock_acquire_with(r, B, 0, 0.05, 0, &err), PORTALOCK_ALREADY_LOCKED,
               &err);
  tu_send(&p, 'g');
  CHECK_INT(tu_reap(&p), 0);
  CHECK_OK(portalock_rlock_acquire_with(r, B, 2, 0.05, 0, &err), &err);
  CHECK_INT(portalock_rlock_owner(r), B);
  CHECK_OK(portalock_rlock_release(r, B, &err), &err);
  portalock_rlock_free(r);
}

/* Releasing the underlying Lock directly leaves the RLock's count at 0. */
static void test_direct_release(void) {
  portalock_rlock_t *r = new_rlock(tu_path("direct"));
  portalock_error err;
  CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  CHECK_OK(portalock_rlock_acquire(r, A, &err), &err);
  CHECK_OK(portalock_lock_release(portalock_rlock_lock(r), &err), &err);
  CHECK_INT(portalock_rlock_count(r), 0);
  CHECK_INT(portalock_rlock_owner(r), 0);
  CHECK_STATUS(portalock_rlock_release(r, A, &err), PORTALOCK_INVALID, &err);
  CHECK_OK(portalock_rlock_acquire(r, B, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 1);
  portalock_rlock_free(r);
}

int main(void) {
  tu_init("rlock");
  tu_group("owners: re-acquire counts, other owners contended, release errors");
  test_owners();
  tu_group("release_all and owner 0");
  test_release_all_and_zero();
  tu_group("an RLock held in another process");
  test_other_process();
  tu_group("the underlying Lock released directly");
  test_direct_release();
  return tu_done();
}
