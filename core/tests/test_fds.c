/* Tests that 10,000 acquire/release cycles, failed ones included, leak no descriptors. */
#include "testutil.h"

#include <errno.h>
#include <unistd.h>

#define LOCK_CYCLES 6000
#define RLOCK_CYCLES 1500
#define TEMP_CYCLES 1500
#define FAILED_CYCLES 1000 /* contended, ELOOP and ENOENT in turn */

static void lock_cycles(int base) {
  const char *path = tu_path("fds-lock");
  portalock_lock_t *kept;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&kept, path, NULL, &err), &err);
  for (int i = 0; i < LOCK_CYCLES; i++) {
    portalock_lock_t *lock = kept;
    if (i % 3 == 0) /* also new/free handles */
      CHECK_OK(portalock_lock_new(&lock, path, NULL, &err), &err);
    CHECK_OK(portalock_lock_acquire(lock, &err), &err);
    if (i == 0)
      CHECK_INT(tu_count_fds(), base + 1); /* the counter does see the lock's descriptor */
    if (i % 3 == 0)
      portalock_lock_free(lock); /* releases */
    else
      CHECK_OK(portalock_lock_release(lock, &err), &err);
  }
  portalock_lock_free(kept);
}

static void rlock_cycles(void) {
  portalock_rlock_t *r;
  portalock_error err;
  CHECK_OK(portalock_rlock_new(&r, tu_path("fds-rlock"), NULL, &err), &err);
  for (int i = 0; i < RLOCK_CYCLES; i++) {
    CHECK_OK(portalock_rlock_acquire(r, 1, &err), &err);
    CHECK_OK(portalock_rlock_acquire(r, 1, &err), &err);
    if (i % 2)
      CHECK_OK(portalock_rlock_release_all(r, 1, &err), &err);
    else {
      CHECK_OK(portalock_rlock_release(r, 1, &err), &err);
      CHECK_OK(portalock_rlock_release(r, 1, &err), &err);
    }
  }
  portalock_rlock_free(r);
}

static void temporary_cycles(void) {
  const char *path = tu_path("fds-temp");
  portalock_lock_t *t;
  portalock_error err;
  CHECK_OK(portalock_temporary_file_lock_new(&t, path, NULL, &err), &err);
  for (int i = 0; i < TEMP_CYCLES; i++) {
    CHECK_OK(portalock_lock_acquire(t, &err), &err);
    CHECK_OK(portalock_lock_release(t, &err), &err);
  }
  CHECK_INT(tu_exists(path), 0);
  portalock_lock_free(t);
}

static void failed_cycles(void) {
  const char *held = tu_path("fds-held");
  tu_proc holder;
  tu_hold(&holder, held, PORTALOCK_BACKEND_FLOCK);
  const char *link = tu_path("fds-link");
  CHECK(symlink(tu_path("fds-link-target"), link) == 0);
  portalock_lock_t *contended, *loop, *missing;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&contended, held, NULL, &err), &err);
  CHECK_OK(portalock_lock_new(&loop, link, NULL, &err), &err);
  CHECK_OK(portalock_lock_new(&missing, tu_path("no-dir/x"), NULL, &err), &err);
  portalock_wait wait;
  for (int i = 0; i < FAILED_CYCLES; i++) {
    switch (i % 4) {
    case 0:
      CHECK_STATUS(portalock_lock_acquire_with(contended, 0, 0.01, 0, &err),
                   PORTALOCK_ALREADY_LOCKED, &err);
      break;
    case 1:
      CHECK_STATUS(portalock_lock_try(contended, &wait, &err), PORTALOCK_CONTENDED, &err);
      break;
    case 2:
      CHECK_STATUS(portalock_lock_acquire(loop, &err), PORTALOCK_LOCK_EXCEPTION, &err);
      CHECK_INT(err.errnum, ELOOP);
      break;
    default:
      CHECK_STATUS(portalock_lock_acquire(missing, &err), PORTALOCK_LOCK_EXCEPTION, &err);
      CHECK_INT(err.errnum, ENOENT);
    }
  }
  portalock_lock_free(contended);
  portalock_lock_free(loop);
  portalock_lock_free(missing);
  tu_hold_end(&holder);
}

int main(void) {
  tu_init("fds");
  tu_scratch();
  int base = tu_count_fds();
  CHECK(base >= 3);

  tu_group("Lock cycles (with new/free)");
  lock_cycles(base);
  CHECK_INT(tu_count_fds(), base);
  tu_group("RLock cycles (nested, release and release_all)");
  rlock_cycles();
  CHECK_INT(tu_count_fds(), base);
  tu_group("TemporaryFileLock cycles");
  temporary_cycles();
  CHECK_INT(tu_count_fds(), base);
  tu_group("failed acquires: contended, ELOOP, ENOENT");
  failed_cycles();
  CHECK_INT(tu_count_fds(), base);
  printf("fds: %d cycles, %d descriptors before and after\n",
         LOCK_CYCLES + RLOCK_CYCLES + TEMP_CYCLES + FAILED_CYCLES, base);
  return tu_done();
}
