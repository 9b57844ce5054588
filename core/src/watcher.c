/* A wait's watch and its wake-up bookkeeping, shared by every object that watches files
 * (a Lock's file, a bounded semaphore's slots): one inotify instance per wait, drained before
 * each attempt (after it, for an attempt a wake-up led to), and a record of whether the last
 * sleep ended on an event, so that an attempt that fails after one counts as a lost race. */
#include "private.h"

#include <sched.h>
#include <unistd.h>

int pl_watcher_add(pl_watcher *w, const char *path) {
  if (w->fd < 0) {
    w->fd = pl_watch_open(); /* counts PL_UNWATCHED when there is none */
    if (w->fd < 0) {
      w->unwatched = 1;
      return -1;
    }
  } else {
    pl_watch_drain(w->fd); /* what a watch removed earlier in this wait left */
    w->undrained = 0;
  }
  int watch = pl_watch_add(w->fd, path);
  if (watch < 0) {
    pl_count(PL_UNWATCHED);
    w->unwatched = 1;
  }
  return watch;
}

void pl_watcher_arm(pl_watcher *w) {
  w->attempt_woke = w->woke;
  w->woke = 0;
  /* Drained before the attempt, so that a release from here on wakes the next sleep. An
   * attempt a wake-up led to most likely gets the lock: its events are drained only if it
   * does not (pl_watcher_drain_late), which keeps the read off the path of the handoff. */
  w->undrained = w->fd >= 0 && w->attempt_woke;
  if (w->fd >= 0 && !w->undrained) pl_watch_drain(w->fd);
}

int pl_watcher_drain_late(pl_watcher *w) {
  if (!w->undrained) return 0;
  w->undrained = 0;
  pl_watch_drain(w->fd);
  return 1;
}

int pl_watcher_lost_race(pl_watcher *w) {
  if (!w->attempt_woke) return 0;
  w->attempt_woke = 0;
  pl_count(PL_LOST_RACE);
  return 1;
}

void pl_watcher_woke(pl_watcher *w, pl_counter woke) {
  w->woke = woke == PL_WOKE_EVENT;
}

void pl_watcher_close(pl_watcher *w) {
  if (w->fd >= 0) {
    /* Closing an instance makes the kernel retire its watches: tens of microseconds of work on
     * this CPU before it sleeps for an RCU grace period. A waiter just woken by the caller's
     * release is usually queued on this same CPU (the kernel places a wakee near its waker)
     * and would wait for that work: it runs first. */
    sched_yield();
    close(w->fd);
  }
  *w = (pl_watcher)PL_WATCHER_NONE;
}
