/* What wakes a waiter, the counters that say what did, and the choice among the mechanisms.
 *
 * An object describes what a wait on it can sleep on (a pl_wake_source); pl_wake_sleep alone
 * picks the mechanism. The mechanisms (their system calls are in platform/:
 * pl_platform_watch_* and pl_platform_event_open, pl_platform_sem_clockwait where
 * PL_HAVE_SEM_CLOCKWAIT says the system has one):
 *   - a watch (inotify, Linux) on the files waited for: the kernel reports a close of the
 *     file, which every release (unlock, then close) and every holder's death ends with;
 *   - the kernel queue: a helper thread blocks in the kernel's own lock call on the
 *     waiter's descriptor, so the kernel hands the lock over as it would to a blocking
 *     flock(2), waking one waiter rather than all. The caller waits for the thread in poll(2),
 *     which any signal ends; the thread is cancelled at the wait's end and always joined
 *     before the call that started it returns. A wait with no end where Ctrl-C interrupts a
 *     lock call needs no thread: it blocks in the caller's own, until a signal;
 *   - a counting semaphore's own sleep (sem_clockwait), which takes the count it wakes for;
 *   - the clock: everything else polls.
 * Without them (no watch but on Linux; no inotify instances left; network file systems) waits
 * poll on the clock, or, where the lock can queue, queue in the kernel. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "platform/platform.h"

/* ---------------------------------------------------------------- counters */

static atomic_ullong pl_counters[PL_COUNTERS];

void pl_count(pl_counter what) {
  atomic_fetch_add_explicit(&pl_counters[what], 1, memory_order_relaxed);
}

void portalock_wait_counters_get(portalock_wait_counters *out) {
  if (out == NULL) return;
  out->event = atomic_load(&pl_counters[PL_WOKE_EVENT]);
  out->kernel = atomic_load(&pl_counters[PL_WOKE_KERNEL]);
  out->timer = atomic_load(&pl_counters[PL_WOKE_TIMER]);
  out->deadline = atomic_load(&pl_counters[PL_WOKE_DEADLINE]);
  out->signal = atomic_load(&pl_counters[PL_WOKE_SIGNAL]);
  out->lost_race = atomic_load(&pl_counters[PL_LOST_RACE]);
  out->unwatched = atomic_load(&pl_counters[PL_UNWATCHED]);
}

/* ---------------------------------------------------------------- sleeping on the clock */

static pl_counter pl_timed_out(double until, double deadline) {
  return until < deadline ? PL_WOKE_TIMER : PL_WOKE_DEADLINE;
}

pl_counter pl_sleep(int fd, double next_attempt, double deadline) {
  double until = next_attempt < deadline ? next_attempt : deadline;
  double left = until - portalock_monotonic();
  if (isnan(left) || left < 0) left = 0;
  pl_counter woke;
  if (fd >= 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, pl_poll_ms(left));
    woke = r > 0 ? PL_WOKE_EVENT : r == 0 ? pl_timed_out(until, deadline) : PL_WOKE_SIGNAL;
  } else if (left == 0) {
    woke = pl_timed_out(until, deadline);
  } else {
    if (left > PL_MAX_SLEEP) left = PL_MAX_SLEEP;
    struct timespec ts;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    woke = nanosleep(&ts, NULL) == 0 ? pl_timed_out(until, deadline) : PL_WOKE_SIGNAL;
  }
  pl_count(woke);
  return woke;
}

/* ---------------------------------------------------------------- watches */

int pl_watch_open(void) {
  int fd = pl_platform_watch_open();
  if (fd < 0) pl_count(PL_UNWATCHED);
  return fd;
}

int pl_watch_add(int watch_fd, const char *path) {
  return pl_platform_watch_add(watch_fd, path);
}

void pl_watch_remove(int watch_fd, int watch) {
  pl_platform_watch_remove(watch_fd, watch);
}

void pl_watch_drain(int watch_fd) {
  if (watch_fd < 0) return;
  /* Aligned as inotify's records are; one read takes up to ~200 events, and any left over
   * only make the next wait return at once. */
  _Alignas(8) char buf[4096];
  while (read(watch_fd, buf, sizeof buf) == -1 && errno == EINTR) {
  }
}

/* ---------------------------------------------------------------- the kernel queue */

/* Posix locks are excluded: waiting for one keeps no descriptor open (see lock.c). */
static int pl_kernel_queue_available(portalock_backend backend) {
  return backend == PORTALOCK_BACKEND_FLOCK || backend == PORTALOCK_BACKEND_OFD;
}

static atomic_int pl_unwinder_ready;

typedef struct pl_queued {
  int fd, type;
  portalock_backend backend;
  int done_fd; /* written when the lock call returns */
  int locked;
} pl_queued;

static void *pl_queued_main(void *arg) {
  pl_queued *q = arg;
  int old;
  /* Cancellation must reach the thread inside the blocking call, which flock(2) does not
   * offer as a cancellation point; nothing else runs with it enabled. */
  pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);
  int r = pl_backend_apply(q->fd, q->type, 1, q->backend);
  pthread_setcanceltype(old, &old);
  q->locked = r == 0;
  /* Not on the stack: a local whose address is taken has redzones under ASan, which a
   * thread cancelled in the lock call leaves poisoned for its own exit to trip on. */
  static const uint64_t done = 1;
  ssize_t written = write(q->done_fd, &done, sizeof done);
  (void)written; /* never full: it is written once */
  return NULL;
}

/* The helper thread runs on a stack its lock keeps from one wait to the next: a thread on a
 * stack glibc made gives the unused part back with madvise when it ends, a TLB shoot-down
 * on every CPU at each wait. The size leaves room for glibc's static TLS at its top. */
#define PL_QUEUE_STACK_SIZE (256 * 1024)

void pl_kernel_queue_stack_free(void *stack) {
  free(stack);
}

static int pl_queue_create(pthread_t *thread, pl_queued *q, void **stack) {
  if (*stack == NULL) *stack = aligned_alloc(4096, PL_QUEUE_STACK_SIZE);
  pthread_attr_t attr;
  int with_stack = *stack != NULL && pthread_attr_init(&attr) == 0;
  if (with_stack && pthread_attr_setstack(&attr, *stack, PL_QUEUE_STACK_SIZE) != 0) {
    pthread_attr_destroy(&attr);
    with_stack = 0;
  }
  int created = pthread_create(thread, with_stack ? &attr : NULL, pl_queued_main, q);
  if (with_stack) pthread_attr_destroy(&attr);
  return created;
}

/* The kernel queue for a wait with no deadline. */
static pl_counter pl_queue_in_caller(int fd, int type, portalock_backend backend,
                                     double next_attempt) {
  /* No deadline to keep, so no thread: the caller's own thread blocks in the kernel, which
   * wakes it once, as it would any blocking flock(2). A signal ends the sleep (so that the
   * caller's hooks run: lua's Ctrl-C), and the caller's next step queues again; should the
   * kernel refuse to queue (ENOLCK), this round waits on the clock. */
  if (pl_backend_apply(fd, type, PL_BLOCK_UNTIL_SIGNAL, backend) != 0) {
    if (errno != EINTR) return pl_sleep(-1, next_attempt, INFINITY);
    pl_count(PL_WOKE_SIGNAL);
    return PL_WOKE_SIGNAL;
  }
  pl_count(PL_WOKE_KERNEL);
  return PL_WOKE_KERNEL;
}

/* The kernel queue in a helper thread, waited for in poll(2) until `until` on the descriptor
 * the thread writes when its lock call returns. A signal ends the poll (it is never restarted,
 * whatever SA_RESTART says), so the wait may last as long as the caller likes: it queues again
 * only after a signal. Where the thread or its descriptor cannot be made, the wait polls on
 * the clock (next_attempt). */
static pl_counter pl_queue_in_thread(int fd, int type, portalock_backend backend,
                                     double next_attempt, double until, double deadline,
                                     void **stack) {
  double clock_until = next_attempt < until ? next_attempt : until;
  double left = until - portalock_monotonic();
  if (isnan(left) || left <= 0) {
    pl_counter woke = pl_timed_out(until, deadline);
    pl_count(woke);
    return woke;
  }
  pl_queued q = {.fd = fd, .type = type, .backend = backend, .done_fd = -1, .locked = 0};
  int done_read;
  if (pl_platform_event_open(&done_read, &q.done_fd) != 0)
    return pl_sleep(-1, clock_until, deadline);
  /* pthread_cancel loads the unwinder (libgcc_s) at its first use and aborts the process if
   * it cannot: until one cancel has worked, queue only while a descriptor is free for it. */
  int ready = atomic_load(&pl_unwinder_ready);
  int spare = ready ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (spare >= 0) close(spare);
  pthread_t thread;
  /* The caller is not cancellable until the thread is joined: cancelled in the join, it
   * would leave the thread running on `q` (in this frame) and on `*stack`. */
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  int created = -1;
  if (ready || spare >= 0) {
    /* The thread takes no signals: they belong to the caller's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    created = pl_queue_create(&thread, &q, stack);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  pl_counter woke = PL_COUNTERS;
  if (created == 0) {
    struct pollfd p = {.fd = done_read, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, pl_poll_ms(left));
    int interrupted = r < 0 && errno == EINTR;
    if (r > 0) {
      pthread_join(thread, NULL); /* its lock call has returned */
    } else {
      pthread_cancel(thread);
      pthread_join(thread, NULL);
      atomic_store(&pl_unwinder_ready, 1);
    }
    /* A thread cancelled just as the kernel granted the lock leaves it held on `fd` without
     * saying so: the caller's next attempt on `fd` finds it either way. */
    if (q.locked)
      woke = PL_WOKE_KERNEL;
    else if (r == 0)
      woke = pl_timed_out(until, deadline);
    else if (interrupted)
      woke = PL_WOKE_SIGNAL;
    /* else the kernel refused to queue (ENOLCK) or poll failed: wait on the clock */
  }
  pthread_setcancelstate(cancel_state, NULL);
  close(done_read);
  if (q.done_fd != done_read) close(q.done_fd);
  if (woke == PL_COUNTERS) return pl_sleep(-1, clock_until, deadline);
  pl_count(woke);
  return woke;
}

/* ---------------------------------------------------------------- a counting semaphore */

/* Sleeps in the semaphore itself until a count is posted (PL_WOKE_KERNEL: the count is now the
 * caller's) or until `until` (the deadline, or sooner). Signals end it (sem_clockwait is never
 * restarted). */
static pl_counter pl_sem_sleep(sem_t *sem, double next_attempt, double until, double deadline) {
#if PL_HAVE_SEM_CLOCKWAIT
  (void)next_attempt; /* a back-off for callers that can only poll */
  double longest = portalock_monotonic() + PL_MAX_SLEEP;
  if (longest < until) until = longest;
  struct timespec ts;
  pl_monotonic_timespec(until, &ts);
  pl_counter woke = PL_COUNTERS;
  if (pl_platform_sem_clockwait(sem, &ts) == 0)
    woke = PL_WOKE_KERNEL;
  else if (errno == EINTR)
    woke = PL_WOKE_SIGNAL;
  else if (errno == ETIMEDOUT)
    woke = pl_timed_out(until, deadline);
  if (woke == PL_COUNTERS) return pl_sleep(-1, next_attempt, deadline); /* EINVAL: poll */
  pl_count(woke);
  return woke;
#else
  (void)sem;
  (void)until;
  return pl_sleep(-1, next_attempt, deadline);
#endif
}

/* ---------------------------------------------------------------- the choice */

/* Whether Ctrl-C ends a lock call blocked in this thread, or needs nothing from it: SIGINT
 * kills the process or is ignored, or its handler does not ask for system calls to be
 * restarted (lua5.4's). A handler installed with signal(3), which restarts them (lua5.1's,
 * LuaJIT's), would only run its hook once the lock is granted. */
static int pl_sigint_interrupts(void) {
  struct sigaction sa;
  if (sigaction(SIGINT, NULL, &sa) != 0) return 0;
  if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
    return 1;
  return !(sa.sa_flags & SA_RESTART);
}

int pl_wake_queues(portalock_backend backend, int remote, int crowded, int forever) {
  return !remote && (forever || crowded) && pl_kernel_queue_available(backend);
}

pl_counter pl_wake_sleep(const pl_wake_source *src, double next_attempt, double deadline,
                         double return_by) {
  /* The kernel queue and the semaphore miss nothing: their sleep lasts up to the deadline
   * (or return_by), not next_attempt. */
  double until = return_by < deadline ? return_by : deadline;
  if (src->queue_fd >= 0 && pl_kernel_queue_available(src->queue_backend)) {
    /* Without an end, the caller's own thread blocks in the kernel where Ctrl-C gets it out;
     * elsewhere the helper thread queues for it, waited for in poll, which every signal
     * ends. */
    if (isinf(until) && until > 0 && pl_sigint_interrupts())
      return pl_queue_in_caller(src->queue_fd, src->queue_type, src->queue_backend, next_attempt);
    return pl_queue_in_thread(src->queue_fd, src->queue_type, src->queue_backend, next_attempt,
                              until, deadline, src->queue_stack);
  }
  if (src->sem != NULL) return pl_sem_sleep(src->sem, next_attempt, until, deadline);
  return pl_sleep(src->watch_fd, next_attempt, deadline);
}
