/*
 * RedisLock and RedisSemaphore: one acquisition at a time of a name through a session, waited
 * out by the engine's step API (wait.c). A lock is a semaphore of one that is also subscribed
 * to the channel `name`, where Python portalocker's RedisLock looks for holders.
 */
#include "redis.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../platform/platform.h"

struct portalock_redis_lock {
  pl_rgrant grant;
};

struct portalock_redis_semaphore {
  pl_rgrant grant;
};

portalock_status pl_rname_check(const char *name, portalock_error *err) {
  if (name == NULL || name[0] == '\0' || strlen(name) > PORTALOCK_REDIS_NAME_MAX)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad argument 'name' (\"%.64s\"): must be 1 to %d bytes", name ? name : "(NULL)",
                   PORTALOCK_REDIS_NAME_MAX);
  return PORTALOCK_OK;
}

/* What a grant is of, apart from any session: its name (checked), keys and maximum. */
static portalock_status pl_rgrant_name(pl_rgrant *g, const char *name, long maximum, int lock,
                                       portalock_error *err) {
  *g = (pl_rgrant){
      .wake_read = -1, .wake_write = -1, .maximum = maximum, .lock = lock, .visible = lock};
  if (pl_rname_check(name, err) != PORTALOCK_OK) return err->status;
  if (maximum < 1)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'maximum' (%ld): must be >= 1",
                   maximum);
  if ((g->name = strdup(name)) == NULL || pl_rkeys_make(name, g->keys) < 0)
    return pl_fail_sys(err, ENOMEM, "creating a Redis lock", NULL);
  return PORTALOCK_OK;
}

static portalock_status pl_rgrant_init(pl_rgrant *g, portalock_redis_session_t *session,
                                       const char *name, long maximum, int lock,
                                       portalock_error *err) {
  portalock_status status = pl_rgrant_name(g, name, maximum, lock, err);
  if (status != PORTALOCK_OK) return status;
  if (session == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'session' (NULL)");
  if (pl_platform_event_open(&g->wake_read, &g->wake_write) < 0)
    return pl_fail_sys(err, errno, "creating a Redis lock", NULL);
  g->session = session;
  pl_rsession_ref(session);
  return PORTALOCK_OK;
}

static int pl_rgrant_forked(const pl_rgrant *g) {
  return g->session->pid != getpid();
}

/* Why the grant is not held (see portalock_redis_lock_check), or NULL. */
static const char *pl_rgrant_check(pl_rgrant *g) {
  if (pl_rgrant_forked(g)) return "forked";
  portalock_redis_session_t *s = g->session;
  pthread_mutex_lock(&s->mutex);
  /* A lease that has run out by this process's clock is lost: the server may have granted it
   * again already, and a renewal must not revive it. */
  if (portalock_monotonic() >= g->expires) pl_rgrant_lose_locked(s, g, pl_losses[PL_LOST_LEASE]);
  const char *why = g->lost != NULL ? g->lost : g->held ? NULL : "not held";
  pthread_mutex_unlock(&s->mutex);
  return why;
}

/* The end of an acquisition or of a grant: a visible RedisLock's subscriptions go with it
 * (the others keep theirs until the handle's end). */
static void pl_rgrant_stop_listening(pl_rgrant *g) {
  if (g->visible) pl_rsession_unlisten(g->session, g);
}

/* An acquisition given up leaves the queue of waiters, so that the next release wakes one who
 * still waits. When it is no longer in the queue, a release has popped it and its wake-up is on
 * its way here: it is passed on to the next waiter (the release script with a grant this
 * handle does not hold only wakes), else that waiter would sleep until its re-check. */
static void pl_rgrant_leave_queue(pl_rgrant *g) {
  if (!g->queued) return;
  g->queued = 0;
  pl_rcommand cmd;
  redisReply *reply = NULL;
  portalock_error ignored;
  int woken = 0;
  if (pl_rproto_leave_queue(&cmd, g->keys, g->id) == 0) {
    if (pl_rsession_call(g->session, PL_NO_SCRIPT, &cmd, &reply, &ignored) == PORTALOCK_OK) {
      woken = pl_rproto_leave_queue_reply(reply) == 0;
      freeReplyObject(reply);
    }
    pl_rcommand_free(&cmd);
  }
  if (woken && pl_rproto_release(&cmd, g->session->sha[PL_SCRIPT_RELEASE], g->keys, g->id) == 0) {
    if (pl_rsession_call(g->session, PL_SCRIPT_RELEASE, &cmd, &reply, &ignored) == PORTALOCK_OK)
      freeReplyObject(reply);
    pl_rcommand_free(&cmd);
  }
}

portalock_status pl_rgrant_mismatch(const pl_rgrant *g, long stored, portalock_error *err) {
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                 "bad argument 'maximum' (%ld): '%s' is in use with maximum %ld (every process "
                 "that holds or waits for it gives that; another maximum is taken once none does)",
                 g->maximum, g->name, stored);
}

portalock_status pl_rgrant_lost_before_release(const pl_rgrant *g, portalock_error *err) {
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL, "'%s' was lost before its release",
                 g->name);
}

portalock_status pl_rgrant_not_held(const pl_rgrant *g, const char *why, portalock_error *err) {
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL, "'%s' is %s", g->name, why);
}

portalock_status pl_rgrant_unconfirmed(const char *where, portalock_error *err) {
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, ETIMEDOUT, NULL,
                 "%s did not confirm a subscription in time (command_timeout)", where);
}

/* Waits for the server's confirmation of the acquisition's subscription, by `deadline`. */
static portalock_status pl_rgrant_await_subscription(pl_rgrant *g, double deadline,
                                                     portalock_error *err) {
  portalock_redis_session_t *s = g->session;
  for (;;) {
    pthread_mutex_lock(&s->mutex);
    int subscribed = g->subscribed;
    const char *unusable = pl_rsession_unusable(s);
    pthread_mutex_unlock(&s->mutex);
    if (unusable != NULL)
      return pl_rsession_lost_error(s, g->waited ? g->name : NULL, unusable, err);
    if (subscribed) return PORTALOCK_OK;
    if (portalock_monotonic() >= deadline) {
      pl_rsession_lose(s, pl_losses[PL_LOST_SUBSCRIPTION_UNCONFIRMED]);
      return pl_rgrant_unconfirmed(s->where, err);
    }
    struct pollfd p = {.fd = g->wake_read, .events = POLLIN};
    poll(&p, 1, pl_rms_until(deadline));
    pl_watch_drain(g->wake_read);
  }
}

/* The failure of an attempt (`status`, err) as the caller learns it: when the session is lost
 * and the acquisition had been waiting, that the connection was lost while it waited. */
static portalock_status pl_rgrant_failed(pl_rgrant *g, portalock_status status,
                                         portalock_error *err) {
  if (!g->waited || status != PORTALOCK_LOCK_EXCEPTION) return status;
  pthread_mutex_lock(&g->session->mutex);
  const char *why = pl_rsession_unusable(g->session);
  pthread_mutex_unlock(&g->session->mutex);
  return why != NULL ? pl_rsession_lost_error(g->session, g->name, why, err) : status;
}

/* One attempt; `queue`: a contended attempt waits in the queue for its wake-up. */
static portalock_status pl_rgrant_attempt(pl_rgrant *g, int queue, portalock_wait *wait,
                                          portalock_error *err) {
  portalock_redis_session_t *s = g->session;
  if (pl_rgrant_forked(g)) return pl_rsession_lost_error(s, NULL, "forked", err);
  if (g->held)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "'%s' is already held by this handle", g->name);
  pl_watch_drain(g->wake_read);
  if (!g->acquiring) { /* the acquisition's first attempt */
    g->score[0] = '\0';
    g->queued = 0;
    g->waited = 0;
    pthread_mutex_lock(&s->mutex);
    g->lost = NULL;
    pthread_mutex_unlock(&s->mutex);
    if (!g->listed) {
      /* A visible lock's subscription to `name` is proven by its new channel's (made in the
       * same command): the grant script waits for that channel to be there. */
      if (g->visible || g->id[0] == '\0')
        snprintf(g->id, sizeof g->id, "%s:%lu", s->channel, pl_rsession_next_acquisition(s));
      portalock_status status = pl_rsession_listen(s, g, err);
      if (status != PORTALOCK_OK) return status;
    }
    g->acquiring = 1;
  }
  double deadline = portalock_monotonic() + s->opts.command_timeout;
  for (;;) {
    pthread_mutex_lock(&s->mutex);
    int confirmed = g->subscribed; /* before the script runs */
    pthread_mutex_unlock(&s->mutex);
    pl_rcommand cmd;
    if (pl_rproto_grant(&cmd, s->sha[PL_SCRIPT_GRANT], g->keys, g->id, s->channel, g->maximum,
                        (long)(s->opts.ttl * 1000), g->lock ? g->name : "", queue ? g->score : "-",
                        g->visible) < 0)
      return pl_fail_sys(err, ENOMEM, "acquiring a Redis lock", NULL);
    double sent = portalock_monotonic();
    redisReply *reply = NULL;
    portalock_status status = pl_rsession_call(s, PL_SCRIPT_GRANT, &cmd, &reply, err);
    pl_rcommand_free(&cmd);
    if (status != PORTALOCK_OK) return pl_rgrant_failed(g, status, err);
    pl_grant_reply r;
    pl_rproto_grant_reply(reply, &r);
    if (r.outcome == PL_BAD_REPLY) status = pl_rproto_error(reply, "acquiring a Redis lock", err);
    freeReplyObject(reply);
    switch (r.outcome) {
    case PL_GRANTED:
      pthread_mutex_lock(&s->mutex);
      g->held = 1;
      g->token = r.token;
      g->expires = sent + s->opts.ttl;
      pthread_mutex_unlock(&s->mutex);
      g->acquiring = 0;
      g->queued = 0;
      return PORTALOCK_OK;
    case PL_CONTENDED:
      memcpy(g->score, r.score, sizeof g->score);
      g->queued = queue;
      g->waited = 1;
      wait->fd = g->wake_read;
      wait->next_attempt = portalock_monotonic() + PORTALOCK_REDIS_RECHECK_INTERVAL;
      return PORTALOCK_CONTENDED;
    case PL_NOT_SUBSCRIBED:
      if (confirmed) {
        /* The server confirmed the subscription, and has it no more: its connection ended
         * there, and this end has not seen it end (a half-open connection). */
        const char *dropped = pl_losses[PL_LOST_SUBSCRIPTION_DROPPED];
        pl_rsession_lose(s, dropped);
        return pl_rsession_lost_error(s, g->waited ? g->name : NULL, dropped, err);
      }
      status = pl_rgrant_await_subscription(g, deadline, err);
      if (status != PORTALOCK_OK) return status;
      continue;
    case PL_MAXIMUM_MISMATCH:
      return pl_rgrant_mismatch(g, r.stored_maximum, err);
    case PL_BAD_REPLY:
      return status;
    }
  }
}

static portalock_status pl_rgrant_attempt_cb(const portalock_acquisition *acq, int target_fd,
                                             pl_wait_how how, portalock_wait *wait,
                                             portalock_error *err) {
  (void)target_fd;
  /* An acquisition that gives up at its first contention never waits for a wake-up. */
  return pl_rgrant_attempt(acq->object_, how != PL_WAIT_NONE, wait, err);
}

static void pl_rgrant_source_cb(void *object, pl_wake_source *src) {
  src->watch_fd = ((pl_rgrant *)object)->wake_read;
}

static void pl_rgrant_give_up_cb(void *object) {
  pl_rgrant *g = object;
  if (g->held || !g->acquiring) return;
  g->acquiring = 0;
  pl_rgrant_leave_queue(g);
  pl_rgrant_stop_listening(g);
}

static const char *pl_rgrant_describe_cb(void *object, char *buf, size_t cap) {
  pl_rgrant *g = object;
  if (g->lock)
    snprintf(buf, cap, "RedisLock '%s' is locked", g->name);
  else
    snprintf(buf, cap, "RedisSemaphore '%s' has all its %ld permits taken", g->name, g->maximum);
  return NULL;
}

static const pl_waitable pl_rgrant_waitable = {pl_rgrant_attempt_cb, pl_rgrant_source_cb,   NULL,
                                               pl_rgrant_give_up_cb, pl_rgrant_describe_cb, NULL};

/* ---------------------------------------------------------------- remote acquisitions */

static portalock_status pl_rremote_attempt_cb(const portalock_acquisition *acq, int target_fd,
                                              pl_wait_how how, portalock_wait *wait,
                                              portalock_error *err) {
  (void)target_fd;
  (void)how;
  (void)wait;
  pl_rgrant *g = acq->object_;
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                 "'%s': a remote acquisition's attempts are its caller's (portalock_step_held)",
                 g->name);
}

static void pl_rremote_source_cb(void *object, pl_wake_source *src) {
  (void)object;
  (void)src; /* nothing to wait on here: the caller's transport brings the wake-ups */
}

/* The caller's transport leaves the queue (protocol.c: pl_rproto_leave_queue), as
 * pl_rgrant_leave_queue does: nothing is kept here. */
static void pl_rremote_give_up_cb(void *object) {
  (void)object;
}

static const pl_waitable pl_rremote_waitable = {pl_rremote_attempt_cb, pl_rremote_source_cb,  NULL,
                                                pl_rremote_give_up_cb, pl_rgrant_describe_cb, NULL};

static portalock_status pl_rgrant_begin(portalock_acquisition *acq, pl_rgrant *g, double timeout,
                                        double check_interval, int fail_when_locked,
                                        portalock_error *err) {
  return pl_begin(acq, &pl_rgrant_waitable, g, 0, timeout, check_interval, fail_when_locked, err);
}

static portalock_status pl_rgrant_acquire_with(pl_rgrant *g, double timeout, double check_interval,
                                               int fail_when_locked, portalock_error *err) {
  portalock_acquisition acq;
  portalock_status status =
      pl_rgrant_begin(&acq, g, timeout, check_interval, fail_when_locked, err);
  return status == PORTALOCK_OK ? pl_acquire(&acq, err) : status;
}

static portalock_status pl_rgrant_release(pl_rgrant *g, portalock_error *err) {
  pl_clear(err);
  if (!g->held) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "'%s' is not held", g->name);
  portalock_redis_session_t *s = g->session;
  portalock_status status = PORTALOCK_OK;
  const char *lost = pl_rgrant_check(g);
  if (pl_rgrant_forked(g)) {
    /* The parent's grant: the child neither releases it nor keeps it. */
  } else if (lost != NULL) {
    status = pl_rgrant_lost_before_release(g, err);
  } else {
    pl_rcommand cmd;
    redisReply *reply = NULL;
    if (pl_rproto_release(&cmd, s->sha[PL_SCRIPT_RELEASE], g->keys, g->id) < 0)
      return pl_fail_sys(err, ENOMEM, "releasing a Redis lock", NULL);
    status = pl_rsession_call(s, PL_SCRIPT_RELEASE, &cmd, &reply, err);
    pl_rcommand_free(&cmd);
    if (status == PORTALOCK_OK) {
      int released = pl_rproto_release_reply(reply);
      if (released < 0)
        status = pl_rproto_error(reply, "releasing a Redis lock", err);
      else if (released == 0)
        status = pl_rgrant_lost_before_release(g, err);
      freeReplyObject(reply);
    }
  }
  pthread_mutex_lock(&s->mutex);
  if (status == PORTALOCK_LOCK_EXCEPTION && g->lost == NULL) g->lost = "lost";
  g->held = 0;
  g->token = 0;
  pthread_mutex_unlock(&s->mutex);
  pl_rgrant_stop_listening(g);
  return status;
}

static portalock_status pl_rgrant_ensure(pl_rgrant *g, portalock_error *err) {
  pl_clear(err);
  const char *why = pl_rgrant_check(g);
  if (why != NULL) return pl_rgrant_not_held(g, why, err);
  portalock_redis_session_t *s = g->session;
  pl_rcommand cmd;
  char **keys = g->keys, *id = g->id;
  if (pl_rproto_renew(&cmd, s->sha[PL_SCRIPT_RENEW], (long)(s->opts.ttl * 1000), 1, &keys, &id) < 0)
    return pl_fail_sys(err, ENOMEM, "checking a Redis lock", NULL);
  double sent = portalock_monotonic();
  redisReply *reply = NULL;
  portalock_status status = pl_rsession_call(s, PL_SCRIPT_RENEW, &cmd, &reply, err);
  pl_rcommand_free(&cmd);
  if (status != PORTALOCK_OK) return status;
  int alive = 0;
  if (pl_rproto_renew_reply(reply, 1, &alive) < 0)
    status = pl_rproto_error(reply, "checking a Redis lock", err);
  freeReplyObject(reply);
  if (status != PORTALOCK_OK) return status;
  pthread_mutex_lock(&s->mutex);
  pl_rgrant_renewed_locked(s, g, alive, sent, pl_losses[PL_LOST_GRANT_GONE]);
  why = g->lost;
  pthread_mutex_unlock(&s->mutex);
  if (why != NULL) return pl_rgrant_not_held(g, why, err);
  return PORTALOCK_OK;
}

static void pl_rgrant_destroy(pl_rgrant *g) {
  if (g->session != NULL) {
    if (g->held) {
      portalock_error ignored;
      pl_rgrant_release(g, &ignored);
    }
    pl_rsession_unlisten(g->session, g);
    portalock_redis_session_free(g->session);
  }
  if (g->wake_read >= 0) close(g->wake_read);
  if (g->wake_write >= 0 && g->wake_write != g->wake_read) close(g->wake_write);
  free(g->keys[0]);
  free(g->name);
}

/* ---------------------------------------------------------------- the public names */

portalock_status portalock_redis_lock_new(portalock_redis_lock_t **out,
                                          portalock_redis_session_t *session, const char *name,
                                          portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_redis_lock_t *lock = malloc(sizeof *lock);
  if (lock == NULL) return pl_fail_sys(err, ENOMEM, "creating a Redis lock", NULL);
  portalock_status status = pl_rgrant_init(&lock->grant, session, name, 1, 1, err);
  if (status != PORTALOCK_OK) {
    pl_rgrant_destroy(&lock->grant);
    free(lock);
    return status;
  }
  *out = lock;
  return PORTALOCK_OK;
}

void portalock_redis_lock_free(portalock_redis_lock_t *lock) {
  if (lock == NULL) return;
  pl_rgrant_destroy(&lock->grant);
  free(lock);
}

portalock_status portalock_redis_lock_begin(portalock_acquisition *acq,
                                            portalock_redis_lock_t *lock, double timeout,
                                            double check_interval, int fail_when_locked,
                                            portalock_error *err) {
  return pl_rgrant_begin(acq, &lock->grant, timeout, check_interval, fail_when_locked, err);
}

portalock_status portalock_redis_lock_acquire_with(portalock_redis_lock_t *lock, double timeout,
                                                   double check_interval, int fail_when_locked,
                                                   portalock_error *err) {
  return pl_rgrant_acquire_with(&lock->grant, timeout, check_interval, fail_when_locked, err);
}

portalock_status portalock_redis_lock_release(portalock_redis_lock_t *lock, portalock_error *err) {
  return pl_rgrant_release(&lock->grant, err);
}

const char *portalock_redis_lock_check(const portalock_redis_lock_t *lock) {
  return pl_rgrant_check((pl_rgrant *)&lock->grant);
}

portalock_status portalock_redis_lock_ensure(portalock_redis_lock_t *lock, portalock_error *err) {
  return pl_rgrant_ensure(&lock->grant, err);
}

portalock_status portalock_redis_lock_set_visible(portalock_redis_lock_t *lock, int visible,
                                                  portalock_error *err) {
  pl_clear(err);
  if (lock->grant.held || lock->grant.acquiring || lock->grant.listed)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "RedisLock '%s': set_visible before its first acquisition", lock->grant.name);
  lock->grant.visible = visible != 0;
  return PORTALOCK_OK;
}

uint64_t portalock_redis_lock_token(const portalock_redis_lock_t *lock) {
  return lock->grant.held ? lock->grant.token : 0;
}

const char *portalock_redis_lock_name(const portalock_redis_lock_t *lock) {
  return lock->grant.name;
}

portalock_status portalock_redis_semaphore_new(portalock_redis_semaphore_t **out,
                                               portalock_redis_session_t *session, const char *name,
                                               long maximum, portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_redis_semaphore_t *sem = malloc(sizeof *sem);
  if (sem == NULL) return pl_fail_sys(err, ENOMEM, "creating a Redis semaphore", NULL);
  portalock_status status = pl_rgrant_init(&sem->grant, session, name, maximum, 0, err);
  if (status != PORTALOCK_OK) {
    pl_rgrant_destroy(&sem->grant);
    free(sem);
    return status;
  }
  *out = sem;
  return PORTALOCK_OK;
}

void portalock_redis_semaphore_free(portalock_redis_semaphore_t *sem) {
  if (sem == NULL) return;
  pl_rgrant_destroy(&sem->grant);
  free(sem);
}

portalock_status portalock_redis_semaphore_begin(portalock_acquisition *acq,
                                                 portalock_redis_semaphore_t *sem, double timeout,
                                                 double check_interval, int fail_when_locked,
                                                 portalock_error *err) {
  return pl_rgrant_begin(acq, &sem->grant, timeout, check_interval, fail_when_locked, err);
}

portalock_status portalock_redis_semaphore_acquire_with(portalock_redis_semaphore_t *sem,
                                                        double timeout, double check_interval,
                                                        int fail_when_locked,
                                                        portalock_error *err) {
  return pl_rgrant_acquire_with(&sem->grant, timeout, check_interval, fail_when_locked, err);
}

portalock_status portalock_redis_semaphore_release(portalock_redis_semaphore_t *sem,
                                                   portalock_error *err) {
  return pl_rgrant_release(&sem->grant, err);
}

const char *portalock_redis_semaphore_check(const portalock_redis_semaphore_t *sem) {
  return pl_rgrant_check((pl_rgrant *)&sem->grant);
}

portalock_status portalock_redis_semaphore_ensure(portalock_redis_semaphore_t *sem,
                                                  portalock_error *err) {
  return pl_rgrant_ensure(&sem->grant, err);
}

uint64_t portalock_redis_semaphore_token(const portalock_redis_semaphore_t *sem) {
  return sem->grant.held ? sem->grant.token : 0;
}

const char *portalock_redis_semaphore_name(const portalock_redis_semaphore_t *sem) {
  return sem->grant.name;
}

long portalock_redis_semaphore_maximum(const portalock_redis_semaphore_t *sem) {
  return sem->grant.maximum;
}

portalock_status portalock_redis_remote_new(portalock_redis_remote_t **out, const char *name,
                                            long maximum, int is_lock, portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  portalock_redis_remote_t *remote = malloc(sizeof *remote);
  if (remote == NULL) return pl_fail_sys(err, ENOMEM, "creating a Redis lock", NULL);
  portalock_status status =
      pl_rgrant_name(&remote->grant, name, is_lock ? 1 : maximum, is_lock != 0, err);
  if (status != PORTALOCK_OK) {
    portalock_redis_remote_free(remote);
    return status;
  }
  *out = remote;
  return PORTALOCK_OK;
}

void portalock_redis_remote_free(portalock_redis_remote_t *remote) {
  if (remote == NULL) return;
  free(remote->grant.keys[0]);
  free(remote->grant.name);
  free(remote);
}

portalock_status portalock_redis_remote_begin(portalock_acquisition *acq,
                                              portalock_redis_remote_t *remote, double timeout,
                                              double check_interval, int fail_when_locked,
                                              portalock_error *err) {
  if (remote == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'remote' (NULL)");
  return pl_begin(acq, &pl_rremote_waitable, &remote->grant, 0, timeout, check_interval,
                  fail_when_locked, err);
}
