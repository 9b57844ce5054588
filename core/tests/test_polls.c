/* Tests what a wait that cannot use a watch opens: an acquisition that gives up at its first
 * contention (fail_when_locked, timeout 0) never asks for an inotify instance, and a polling
 * acquisition (portalock_acquisition_polls) keeps no descriptor between its steps, for every
 * object that watches files. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---------------------------------------------------------------- one descriptor left */

/* Descriptors opened to leave exactly one number free below RLIMIT_NOFILE's soft limit. */
typedef struct scarce {
  int fillers[1024];
  int n;
  struct rlimit old;
} scarce;

/* From now on this process may open exactly one more descriptor: enough for an attempt's lock
 * file, not for an inotify instance beside it (which then fails with EMFILE and is counted as
 * an `unwatched` wait: the request for one is seen even though nothing is left open). */
static void scarce_begin(scarce *s) {
  int highest = -1;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) highest = fd;
  s->n = 0;
  for (;;) { /* fills every hole up to the highest descriptor, then one above it */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && s->n < 1024);
    if (fd > highest) {
      close(fd); /* the one left free: highest + 1 */
      break;
    }
    s->fillers[s->n++] = fd;
  }
  CHECK(getrlimit(RLIMIT_NOFILE, &s->old) == 0);
  struct rlimit lim = s->old;
  lim.rlim_cur = (rlim_t)highest + 2;
  CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
  int one = open("/dev/null", O_RDONLY | O_CLOEXEC), two = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(one >= 0 && two < 0 && errno == EMFILE); /* exactly one is left */
  close(one);
}

static void scarce_end(scarce *s) {
  CHECK(setrlimit(RLIMIT_NOFILE, &s->old) == 0);
  for (int i = 0; i < s->n; i++)
    close(s->fillers[i]);
}

static unsigned long long unwatched_waits(void) {
  portalock_wait_counters c;
  portalock_wait_counters_get(&c);
  return c.unwatched;
}

/* Runs `acq`'s first step with one descriptor left: it gives up, and never asked for an
 * inotify instance (one asked for fails with EMFILE there, which the counters count). It says
 * so beforehand: it does not wait (portalock_acquisition_waits). */
static void gives_up_unwatched(portalock_acquisition *acq, const char *why) {
  CHECK_INT(portalock_acquisition_waits(acq), 0);
  portalock_error err;
  unsigned long long before = unwatched_waits();
  int inotify = tu_count_inotify(getpid());
  scarce s;
  scarce_begin(&s);
  portalock_status status = portalock_step(acq, -1, NULL, &err);
  scarce_end(&s);
  CHECK_STATUS(status, PORTALOCK_ALREADY_LOCKED, &err);
  CHECK_CONTAINS(err.message, why);
  CHECK_INT(unwatched_waits(), before);
  CHECK_INT(tu_count_inotify(getpid()), inotify);
}

/* A Lock on `path`, and another one that holds it. */
static portalock_lock_t *held_lock(const char *path, portalock_lock_t **holder) {
  portalock_error err;
  portalock_lock_t *lock;
  CHECK_OK(portalock_lock_new(holder, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(*holder, &err), &err);
  CHECK_OK(portalock_lock_new(&lock, path, NULL, &err), &err);
  return lock;
}

static portalock_bounded_semaphore_t *bounded(const char *name, long maximum) {
  portalock_bounded_semaphore_options o;
  portalock_bounded_semaphore_options_init(&o);
  o.name = name;
  o.directory = tu_scratch();
  portalock_bounded_semaphore_t *sem;
  portalock_error err;
  CHECK_OK(portalock_bounded_semaphore_new(&sem, maximum, &o, &err), &err);
  return sem;
}

static void give_up_at_once(void) {
  tu_group("giving up at the first contention makes no watch");
  portalock_error err;
  portalock_acquisition acq;
  portalock_lock_t *holder, *lock = held_lock(tu_path("at-once.lock"), &holder);
  CHECK_OK(portalock_lock_begin(&acq, lock, 5, 0.05, 0, &err), &err);
  CHECK_INT(portalock_acquisition_waits(&acq), 1);
  portalock_give_up(&acq);
  CHECK_OK(portalock_lock_begin(&acq, lock, 5, 0.05, 1, &err), &err);
  gives_up_unwatched(&acq, "(fail_when_locked)");
  CHECK_OK(portalock_lock_begin(&acq, lock, 0, 0.05, 0, &err), &err);
  gives_up_unwatched(&acq, "(timeout 0)");

  portalock_rlock_t *rlock;
  CHECK_OK(portalock_rlock_new(&rlock, tu_path("at-once.lock"), NULL, &err), &err);
  CHECK_OK(portalock_rlock_begin(&acq, rlock, 1, 5, 0.05, 1, &err), &err);
  gives_up_unwatched(&acq, "(fail_when_locked)");
  portalock_rlock_free(rlock);
  portalock_lock_free(lock);
  portalock_lock_free(holder);

  /* TemporaryFileLock and PidFileLock give up at once by default */
  portalock_lock_t *temporary, *other;
  CHECK_OK(portalock_temporary_file_lock_new(&other, tu_path("at-once.tmp"), NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(other, &err), &err);
  CHECK_OK(portalock_temporary_file_lock_new(&temporary, tu_path("at-once.tmp"), NULL, &err), &err);
  const portalock_lock_options *o = portalock_lock_options_of(temporary);
  CHECK_OK(portalock_lock_begin(&acq, temporary, o->timeout, o->check_interval, o->fail_when_locked,
                                &err),
           &err);
  gives_up_unwatched(&acq, "(fail_when_locked)");
  portalock_lock_free(temporary);
  portalock_lock_free(other);

  portalock_bounded_semaphore_t *full = bounded("at-once", 1), *sem = bounded("at-once", 1);
  CHECK_OK(portalock_bounded_semaphore_acquire(full, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_begin(&acq, sem, 0, 0.05, &err), &err);
  gives_up_unwatched(&acq, "(timeout 0)");
  portalock_bounded_semaphore_free(sem);
  portalock_bounded_semaphore_free(full);
}

/* ---------------------------------------------------------------- polling */

/* Steps the polling acquisition `acq` a few times on its object, held by someone else: every
 * contended step leaves `fds` descriptors open, `inotify` of them inotify instances (as many as
 * before the acquisition began, so that a caller may abandon it between two steps without
 * giving it up), and asks only for the clock. */
static void polls_keeping_nothing(portalock_acquisition *acq, int fds, int inotify) {
  portalock_acquisition_polls(acq);
  for (int i = 0; i < 3; i++) {
    portalock_error err;
    portalock_wait wait = {.fd = -42, .next_attempt = 0};
    double before = portalock_monotonic();
    CHECK_STATUS(portalock_step(acq, -1, &wait, &err), PORTALOCK_CONTENDED, &err);
    CHECK_INT(wait.fd, -1);
    CHECK(wait.next_attempt > before && wait.next_attempt <= acq->deadline);
    CHECK_INT(tu_count_fds(), fds);
    CHECK_INT(tu_count_inotify(getpid()), inotify);
    portalock_wait_step(&wait, acq->deadline);
  }
}

/* A polling step takes the lock once its holder lets go. */
static void polls_then_acquires(portalock_acquisition *acq) {
  portalock_error err;
  portalock_wait wait;
  CHECK_OK(portalock_step(acq, -1, &wait, &err), &err);
}

static void polling_lock(void) {
  tu_group("a polling Lock keeps nothing between steps");
  portalock_error err;
  portalock_acquisition acq;
  portalock_lock_t *holder, *lock = held_lock(tu_path("polls.lock"), &holder);
  int fds = tu_count_fds(), inotify = tu_count_inotify(getpid());
  CHECK_OK(portalock_lock_begin(&acq, lock, 5, 0.01, 0, &err), &err);
  polls_keeping_nothing(&acq, fds, inotify);
  /* with no timeout too (which would queue in the kernel) */
  CHECK_OK(portalock_lock_begin(&acq, lock, INFINITY, 0.01, 0, &err), &err);
  polls_keeping_nothing(&acq, fds, inotify);

  /* a wait that watched until then closes its watch and lock file at its first polling step */
  CHECK_OK(portalock_lock_begin(&acq, lock, 5, 0.01, 0, &err), &err);
  portalock_wait wait;
  CHECK_STATUS(portalock_step(&acq, -1, &wait, &err), PORTALOCK_CONTENDED, &err);
#ifdef __linux__
  CHECK(wait.fd >= 0);
  CHECK_INT(tu_count_fds(), fds + 2); /* the lock file and the inotify instance */
  CHECK_INT(tu_count_inotify(getpid()), inotify + 1);
#endif
  polls_keeping_nothing(&acq, fds, inotify);

  CHECK_OK(portalock_lock_release(holder, &err), &err);
  polls_then_acquires(&acq);
  CHECK_INT(portalock_lock_locked(lock), 1);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  portalock_lock_free(lock);
  portalock_lock_free(holder);
}

static void polling_rlock(void) {
  tu_group("a polling RLock keeps nothing between steps");
  portalock_error err;
  portalock_acquisition acq;
  portalock_lock_t *holder;
  portalock_lock_free(held_lock(tu_path("polls.rlock"), &holder));
  portalock_rlock_t *rlock;
  CHECK_OK(portalock_rlock_new(&rlock, tu_path("polls.rlock"), NULL, &err), &err);
  CHECK_OK(portalock_rlock_begin(&acq, rlock, 1, 5, 0.01, 0, &err), &err);
  polls_keeping_nothing(&acq, tu_count_fds(), tu_count_inotify(getpid()));
  CHECK_OK(portalock_lock_release(holder, &err), &err);
  polls_then_acquires(&acq);
  CHECK_INT(portalock_rlock_owner(rlock), 1);
  portalock_rlock_free(rlock);
  portalock_lock_free(holder);
}

static void polling_pidfile(void) {
  tu_group("a polling PidFileLock keeps nothing between steps");
  portalock_error err;
  portalock_acquisition acq;
  portalock_lock_t *holder, *lock;
  const char *path = tu_path("polls.pid");
  CHECK_OK(portalock_pid_file_lock_new(&holder, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_acquire(holder, &err), &err);
  CHECK_OK(portalock_pid_file_lock_new(&lock, path, NULL, &err), &err);
  CHECK_OK(portalock_lock_begin(&acq, lock, 5, 0.01, 0, &err), &err);
  polls_keeping_nothing(&acq, tu_count_fds(), tu_count_inotify(getpid()));
  CHECK_OK(portalock_lock_release(holder, &err), &err);
  polls_then_acquires(&acq);
  CHECK_OK(portalock_lock_release(lock, &err), &err);
  portalock_lock_free(lock);
  portalock_lock_free(holder);
}

static void polling_bounded(void) {
  tu_group("a polling bounded semaphore keeps nothing between sweeps");
  portalock_error err;
  portalock_acquisition acq;
  portalock_bounded_semaphore_t *a = bounded("polls", 2), *b = bounded("polls", 2);
  portalock_bounded_semaphore_t *sem = bounded("polls", 2);
  CHECK_OK(portalock_bounded_semaphore_acquire(a, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_acquire(b, &err), &err);
  CHECK_OK(portalock_bounded_semaphore_begin(&acq, sem, 5, 0.01, &err), &err);
  polls_keeping_nothing(&acq, tu_count_fds(), tu_count_inotify(getpid()));
  CHECK_OK(portalock_bounded_semaphore_release(b, &err), &err);
  polls_then_acquires(&acq);
  CHECK_INT(portalock_bounded_semaphore_locked(sem), 1);
  portalock_bounded_semaphore_free(sem);
  portalock_bounded_semaphore_free(b);
  portalock_bounded_semaphore_free(a);
}

int main(void) {
  tu_init("polls");
  tu_scratch();
  give_up_at_once();
  polling_lock();
  polling_rlock();
  polling_pidfile();
  polling_bounded();
  return tu_done();
}
