/* Tests the wait engine's step API for every kind of object: portalock_step's three outcomes
 * (acquired; contended, with a sleep that never passes the deadline; given up), and the
 * AlreadyLocked message, made in one place for all of them. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What every given-up acquisition's message ends with. */
static void check_gave_up(const portalock_error *err, const char *subject, const char *why) {
  CHECK_INT(err->status, PORTALOCK_ALREADY_LOCKED);
  CHECK_CONTAINS(err->message, subject);
  char tail[128];
  snprintf(tail, sizeof tail, ": gave up %s", why);
  size_t n = strlen(err->message), t = strlen(tail);
  CHECK(n >= t && strcmp(err->message + n - t, tail) == 0);
}

/* With the object held by someone else: timeout 0 gives up at the first step; a timed
 * acquisition is contended, sleeps (never past its deadline) and gives up at the deadline. */
static void expect_contended(portalock_acquisition *at_once, portalock_acquisition *timed,
                             const char *subject) {
  portalock_error err;
  portalock_wait wait;
  CHECK_STATUS(portalock_step(at_once, -1, &wait, &err), PORTALOCK_ALREADY_LOCKED, &err);
  check_gave_up(&err, subject, "at the first contention (timeout 0)");
  double t0 = tu_now();
  int steps = 0;
  portalock_status status;
  while ((status = portalock_step(timed, -1, &wait, &err)) == PORTALOCK_CONTENDED) {
    CHECK(wait.next_attempt <= timed->deadline);
    portalock_sleep(timed, &wait, INFINITY);
    steps++;
  }
  CHECK_STATUS(status, PORTALOCK_ALREADY_LOCKED, &err);
  CHECK(steps >= 1);
  CHECK(portalock_monotonic() >= timed->deadline); /* not a moment before */
  CHECK_BETWEEN(tu_now() - t0, 0.0, 2.0);
  check_gave_up(&err, subject, "after the timeout of 0.2 s");
}

static void test_lock(void) {
  tu_group("Lock: acquired, contended, given up");
  const char *path = tu_path("lock");
  portalock_lock_t *holder, *waiter;
  portalock_error err;
  CHECK_OK(portalock_lock_new(&holder, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_new(&waiter, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(holder, &err), &err);
  portalock_acquisition at_once, timed, fail;
  CHECK_OK(portalock_lock_begin(&at_once, waiter, 0, 0.05, 0, &err), &err);
  CHECK_OK(portalock_lock_begin(&timed, waiter, 0.2, 0.05, 0, &err), &err);
  char subject[PORTALOCK_PATH_MAX + 32];
  snprintf(subject, sizeof subject, "'%s' is locked", path);
  expect_contended(&at_once, &timed, subject);
  CHECK_OK(portalock_lock_begin(&fail, waiter, 5, 0.05, 1, &err), &err);
  CHECK_STATUS(portalock_step(&fail, -1, NULL, &err), PORTALOCK_ALREADY_LOCKED, &err);
  check_gave_up(&err, subject, "at the first contention (fail_when_locked)");
  /* bad timing is refused by begin, naming the option */
  CHECK_STATUS(portalock_lock_begin(&fail, waiter, -1, 0.05, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "'timeout' (-1)");
  CHECK_OK(portalock_lock_release(holder, &err), &err);
  CHECK_OK(portalock_lock_begin(&timed, waiter, 5, 0.05, 0, &err), &err);
  CHECK_OK(portalock_step(&timed, -1, NULL, &err), &err);
  CHECK(portalock_lock_locked(waiter));
  portalock_lock_free(waiter);
  portalock_lock_free(holder);
}

static void test_rlock(void) {
  tu_group("RLock: acquired, contended (another owner, another handle), given up");
  const char *path = tu_path("rlock");
  portalock_rlock_t *r;
  portalock_lock_t *other;
  portalock_error err;
  CHECK_OK(portalock_rlock_new(&r, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_new(&other, path, NULL, &err), &err);
  CHECK_OK(portalock_rlock_acquire(r, 1, &err), &err);
  portalock_acquisition at_once, timed;
  char subject[PORTALOCK_PATH_MAX + 32];
  snprintf(subject, sizeof subject, "'%s' is locked", path);
  /* another owner of this RLock */
  CHECK_OK(portalock_rlock_begin(&at_once, r, 2, 0, 0.05, 0, &err), &err);
  CHECK_OK(portalock_rlock_begin(&timed, r, 2, 0.2, 0.05, 0, &err), &err);
  expect_contended(&at_once, &timed, subject);
  /* the owner that holds it re-acquires at once */
  CHECK_OK(portalock_rlock_begin(&at_once, r, 1, 0, 0.05, 0, &err), &err);
  CHECK_OK(portalock_step(&at_once, -1, NULL, &err), &err);
  CHECK_INT(portalock_rlock_count(r), 2);
  CHECK_OK(portalock_rlock_release_all(r, 1, &err), &err);
  /* another handle holds the file */
  CHECK_OK(portalock_lock_acquire(other, &err), &err);
  CHECK_OK(portalock_rlock_begin(&at_once, r, 2, 0, 0.05, 0, &err), &err);
  CHECK_OK(portalock_rlock_begin(&timed, r, 2, 0.2, 0.05, 0, &err), &err);
  expect_contended(&at_once, &timed, subject);
  CHECK_STATUS(portalock_rlock_begin(&timed, r, 0, 1, 0.05, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_OK(portalock_lock_release(other, &err), &err);
  CHECK_OK(portalock_rlock_begin(&timed, r, 2, 5, 0.05, 0, &err), &err);
  CHECK_OK(portalock_step(&timed, -1, NULL, &err), &err);
  CHECK_INT(portalock_rlock_owner(r), 2);
  portalock_rlock_free(r);
  portalock_lock_free(other);
}

static void test_bounded(void) {
  tu_group("bounded semaphore: acquired, contended, given up");
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.name = "steps";
  o.directory = tu_scratch();
  portalock_bounded_semaphore_t *holder, *waiter;
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_new(&holder, 1, &o, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_new(&waiter, 1, &o, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_acquire(holder, &err), &err);
  portalock_acquisition at_once, timed;
  CHECK_OK(portalock_bounded_semaphore_begin(&at_once, waiter, 0, 0.05, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_begin(&timed, waiter, 0.2, 0.05, &err), &err);
  char subject[PORTALOCK_PATH_MAX + 64];
  snprintf(subject, sizeof subject, "bounded semaphore 'steps' in '%s' has all 1 slots held",
           tu_scratch());
  expect_contended(&at_once, &timed, subject);
  CHECK_OK(portalock_bounded_semaphore_release(holder, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_begin(&timed, waiter, 5, 0.05, &err), &err);
  CHECK_OK(portalock_step(&timed, -1, NULL, &err), &err);
  CHECK_INT(portalock_bounded_semaphore_slot(waiter), 0);
  portalock_bounded_semaphore_free(waiter);
  portalock_bounded_semaphore_free(holder);
}

static void test_counting(void) {
  tu_group("counting semaphore: acquired, contended, given up");
  char name[64];
  snprintf(name, sizeof name, "portalock-step-%ld", (long)getpid());
  portalock_semaphore_t *sem;
  portalock_error err;
  CHECK_OK(portalock_semaphore_new(&sem, name, 0, NULL, &err), &err);
  portalock_acquisition at_once, timed;
  CHECK_OK(portalock_semaphore_begin(&at_once, sem, 0, 0.05, &err), &err);
  CHECK_OK(portalock_semaphore_begin(&timed, sem, 0.2, 0.05, &err), &err);
  char subject[128];
  snprintf(subject, sizeof subject, "Semaphore '%s' has no count available", name);
  expect_contended(&at_once, &timed, subject);
  CHECK_OK(portalock_semaphore_release(sem, 1, &err), &err);
  CHECK_OK(portalock_semaphore_begin(&timed, sem, 5, 0.05, &err), &err);
  CHECK_OK(portalock_step(&timed, -1, NULL, &err), &err);
  CHECK_INT(portalock_semaphore_held(sem), 1);
  CHECK_OK(portalock_semaphore_unlink(name, &err), &err);
  portalock_semaphore_free(sem);
}

int main(void) {
  tu_init("step");
  test_lock();
  test_rlock();
  test_bounded();
  test_counting();
  return tu_done();
}
