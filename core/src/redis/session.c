/*
 * A session: the subscription that proves this process alive to the server, the command
 * connection, and the keep-alive thread that renews the session's grants and hands wake-ups
 * to its waiters. A session that fails is lost for good: nothing here reconnects.
 */
#include "redis.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../platform/platform.h"

/* A channel `name` that a session's RedisLock acquisitions keep subscribed. */
struct pl_interop {
  char *channel;
  unsigned users;
  struct pl_interop *next;
};

const char *const pl_losses[PL_LOSSES] = {
    [PL_LOST_COMMAND_TIMEOUT] = "a command timed out",
    [PL_LOST_COMMAND_FAILED] = "the command connection failed",
    [PL_LOST_SUBSCRIPTION_FAILED] = "the subscription failed",
    [PL_LOST_SUBSCRIPTION_REFUSED] =
        "the server refused a subscription: is its channel outside the ACL user's?",
    [PL_LOST_SUBSCRIPTION_ENDED] = "the subscription connection ended",
    [PL_LOST_SUBSCRIPTION_UNCONFIRMED] = "a subscription was not confirmed in time",
    [PL_LOST_SUBSCRIPTION_DROPPED] = "the server dropped the subscription",
    [PL_LOST_LEASE] = "the lease ran out",
    [PL_LOST_GRANT_GONE] = "the server no longer has the grant",
};

const char *const pl_loss_names[PL_LOSSES] = {
    [PL_LOST_COMMAND_TIMEOUT] = "command_timeout",
    [PL_LOST_COMMAND_FAILED] = "command_failed",
    [PL_LOST_SUBSCRIPTION_FAILED] = "subscription_failed",
    [PL_LOST_SUBSCRIPTION_REFUSED] = "subscription_refused",
    [PL_LOST_SUBSCRIPTION_ENDED] = "subscription_ended",
    [PL_LOST_SUBSCRIPTION_UNCONFIRMED] = "subscription_unconfirmed",
    [PL_LOST_SUBSCRIPTION_DROPPED] = "subscription_dropped",
    [PL_LOST_LEASE] = "lease",
    [PL_LOST_GRANT_GONE] = "grant_gone",
};

/* ---------------------------------------------------------------- the process's sessions */

static pthread_mutex_t pl_sessions_mutex = PTHREAD_MUTEX_INITIALIZER;
static portalock_redis_session_t *pl_sessions;
static pthread_once_t pl_sessions_once = PTHREAD_ONCE_INIT;

static void pl_sessions_prepare(void) {
  pthread_mutex_lock(&pl_sessions_mutex);
  for (portalock_redis_session_t *s = pl_sessions; s != NULL; s = s->next_session)
    pthread_mutex_lock(&s->mutex);
}

static void pl_sessions_parent(void) {
  for (portalock_redis_session_t *s = pl_sessions; s != NULL; s = s->next_session)
    pthread_mutex_unlock(&s->mutex);
  pthread_mutex_unlock(&pl_sessions_mutex);
}

/* The child gets no keep-alive thread, and its copies of the sockets are closed so that only
 * the parent's end keeps the session alive: a child can neither keep a grant alive after its
 * parent died nor release it. */
static void pl_sessions_child(void) {
  for (portalock_redis_session_t *s = pl_sessions; s != NULL; s = s->next_session) {
    if (s->command.fd >= 0) close(s->command.fd);
    if (s->sub.fd >= 0) close(s->sub.fd);
    s->command.fd = s->sub.fd = -1;
    s->thread_running = 0;
    pthread_mutex_unlock(&s->mutex);
  }
  pthread_mutex_unlock(&pl_sessions_mutex);
}

static void pl_sessions_init(void) {
  pthread_atfork(pl_sessions_prepare, pl_sessions_parent, pl_sessions_child);
}

/* ---------------------------------------------------------------- state */

const char *pl_rsession_unusable(const portalock_redis_session_t *session) {
  if (session->pid != getpid()) return "forked";
  return session->lost;
}

static void pl_signal(int fd) {
  uint64_t one = 1;
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

/* A loss that on_lost is yet to be told of (the grant itself may be freed before). */
struct pl_loss {
  char *name;
  const char *reason;
  struct pl_loss *next;
};

void pl_rgrant_renewed_locked(portalock_redis_session_t *session, pl_rgrant *grant, int alive,
                              double sent, const char *reason) {
  if (alive && grant->lost == NULL)
    grant->expires = sent + session->opts.ttl;
  else
    pl_rgrant_lose_locked(session, grant, reason);
}

void pl_rgrant_lose_locked(portalock_redis_session_t *session, pl_rgrant *grant,
                           const char *reason) {
  if (!grant->held || grant->lost != NULL) return;
  grant->lost = "lost";
  struct pl_loss *loss = malloc(sizeof *loss), **tail = &session->losses;
  if (loss != NULL && (loss->name = strdup(grant->name)) != NULL) {
    loss->reason = reason;
    loss->next = NULL;
    while (*tail != NULL)
      tail = &(*tail)->next;
    *tail = loss;
  } else {
    free(loss); /* out of memory: the loss is still recorded, only not called back */
  }
  pl_signal(session->lost_write);
  pl_signal(session->nudge_write);
}

/* On the keep-alive thread only, with no mutex held: tells on_lost of each loss recorded. The
 * callback may take the application's own locks, which a caller may hold around a call into
 * the session (that call takes the session's mutex). */
static void pl_report_losses(portalock_redis_session_t *session) {
  for (;;) {
    pthread_mutex_lock(&session->mutex);
    struct pl_loss *loss = session->losses;
    if (loss != NULL) session->losses = loss->next;
    portalock_redis_lost_callback callback = session->on_lost;
    void *data = session->on_lost_data;
    pthread_mutex_unlock(&session->mutex);
    if (loss == NULL) return;
    if (callback != NULL) callback(data, loss->name, loss->reason);
    free(loss->name);
    free(loss);
  }
}

/* (m) held: records the loss of every grant held, wakes every waiter. */
static void pl_lose_locked(portalock_redis_session_t *session, const char *reason) {
  if (session->lost == NULL) session->lost = reason;
  pl_rconn_shut(&session->command);
  pl_rconn_shut(&session->sub);
  for (pl_rgrant *g = session->grants; g != NULL; g = g->next) {
    pl_rgrant_lose_locked(session, g, reason);
    pl_signal(g->wake_write);
  }
  pl_signal(session->lost_write);
}

void pl_rsession_lose(portalock_redis_session_t *session, const char *reason) {
  pthread_mutex_lock(&session->mutex);
  pl_lose_locked(session, reason);
  pthread_mutex_unlock(&session->mutex);
}

unsigned long pl_rsession_next_acquisition(portalock_redis_session_t *session) {
  pthread_mutex_lock(&session->mutex);
  unsigned long n = ++session->acquisitions;
  pthread_mutex_unlock(&session->mutex);
  return n;
}

/* ---------------------------------------------------------------- commands */

static portalock_status pl_roundtrip(portalock_redis_session_t *session, pl_rcommand *cmd,
                                     redisReply **reply, portalock_error *err) {
  double deadline = portalock_monotonic() + session->opts.command_timeout;
  portalock_status status = pl_rconn_send_command(&session->command, cmd, deadline, err);
  if (status == PORTALOCK_OK) status = pl_rconn_read(&session->command, reply, deadline, err);
  if (status == PORTALOCK_OK) return status;
  /* A late reply would answer the next command: the connection, and the session, end here. */
  pthread_mutex_lock(&session->mutex);
  const char *first = session->lost;
  pl_lose_locked(
      session,
      pl_losses[err->errnum == ETIMEDOUT ? PL_LOST_COMMAND_TIMEOUT : PL_LOST_COMMAND_FAILED]);
  pthread_mutex_unlock(&session->mutex);
  /* Lost meanwhile on the keep-alive thread, which shut this connection: that is why. */
  if (first != NULL) status = pl_rsession_lost_error(session, NULL, first, err);
  return status;
}

/* Loads a script into the server's cache; its SHA1 into sha (the same every time). */
static portalock_status pl_load_script(portalock_redis_session_t *session, pl_script script,
                                       char sha[41], portalock_error *err) {
  pl_rcommand cmd;
  if (pl_rproto_script_load(&cmd, script) < 0) return pl_fail_sys(err, ENOMEM, "SCRIPT LOAD", NULL);
  redisReply *reply = NULL;
  portalock_status status = pl_roundtrip(session, &cmd, &reply, err);
  pl_rcommand_free(&cmd);
  if (status != PORTALOCK_OK) return status;
  if (pl_rproto_script_load_reply(reply, sha) < 0)
    status = pl_rconn_refused(&session->command, "SCRIPT LOAD", reply, err);
  freeReplyObject(reply);
  return status;
}

portalock_status pl_rlost_error(const char *where, const char *waiting_for, const char *why,
                                portalock_error *err) {
  if (waiting_for != NULL)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL,
                   "the connection to %s was lost while waiting for '%.200s' (%s)", where,
                   waiting_for, why);
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL, "the connection to %s was lost (%s)",
                 where, why);
}

portalock_status pl_rsession_lost_error(const portalock_redis_session_t *session,
                                        const char *waiting_for, const char *why,
                                        portalock_error *err) {
  if (session->pid != getpid())
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL,
                   "the Redis session belongs to process %ld (this is a forked child)",
                   (long)session->pid);
  return pl_rlost_error(session->where, waiting_for, why, err);
}

portalock_status pl_rsession_call(portalock_redis_session_t *session, pl_script script,
                                  pl_rcommand *cmd, redisReply **reply, portalock_error *err) {
  /* A forked child has nothing to send, and must not wait for the command mutex: a thread of
   * its parent may have held it at the fork, and nothing in the child would ever unlock it. */
  if (session->pid != getpid()) return pl_rsession_lost_error(session, NULL, "forked", err);
  pthread_mutex_lock(&session->command_mutex);
  pthread_mutex_lock(&session->mutex);
  const char *unusable = pl_rsession_unusable(session);
  pthread_mutex_unlock(&session->mutex);
  portalock_status status;
  if (unusable != NULL) {
    status = pl_rsession_lost_error(session, NULL, unusable, err);
  } else {
    status = pl_roundtrip(session, cmd, reply, err);
    /* The server's script cache was flushed (SCRIPT FLUSH): load it again, once. */
    if (status == PORTALOCK_OK && script != PL_NO_SCRIPT && pl_rproto_noscript(*reply)) {
      freeReplyObject(*reply);
      *reply = NULL;
      /* (Not into session->sha, which other threads read unlocked: the SHA1 is the same.) */
      char sha[41];
      status = pl_load_script(session, script, sha, err);
      if (status == PORTALOCK_OK) status = pl_roundtrip(session, cmd, reply, err);
    }
  }
  pthread_mutex_unlock(&session->command_mutex);
  return status;
}

/* ---------------------------------------------------------------- subscriptions */

static struct pl_interop **pl_interop_find(portalock_redis_session_t *session,
                                           const char *channel) {
  struct pl_interop **p = &session->interop;
  while (*p != NULL && strcmp((*p)->channel, channel) != 0)
    p = &(*p)->next;
  return p;
}

/* (m) held: sends [UN]SUBSCRIBE of the grant's channel, with `name` when `with_name`. */
static portalock_status pl_send_subscription(portalock_redis_session_t *session, const char *verb,
                                             pl_rgrant *grant, int with_name,
                                             portalock_error *err) {
  pl_rcommand cmd;
  int failed = pl_rproto_subscription(&cmd, verb, grant->id, with_name ? grant->name : NULL) < 0;
  portalock_status status =
      failed ? pl_fail_sys(err, ENOMEM, verb, NULL)
             : pl_rconn_send_command(&session->sub, &cmd,
                                     portalock_monotonic() + session->opts.command_timeout, err);
  if (!failed) pl_rcommand_free(&cmd);
  if (status != PORTALOCK_OK && !failed)
    pl_lose_locked(session, pl_losses[PL_LOST_SUBSCRIPTION_FAILED]);
  return status;
}

portalock_status pl_rsession_listen(portalock_redis_session_t *session, pl_rgrant *grant,
                                    portalock_error *err) {
  pthread_mutex_lock(&session->mutex);
  portalock_status status = PORTALOCK_OK;
  const char *unusable = pl_rsession_unusable(session);
  struct pl_interop *interop = NULL;
  if (unusable != NULL) {
    status = pl_rsession_lost_error(session, NULL, unusable, err);
  } else if (grant->visible && (interop = *pl_interop_find(session, grant->name)) == NULL) {
    interop = calloc(1, sizeof *interop);
    if (interop == NULL || (interop->channel = strdup(grant->name)) == NULL) {
      free(interop);
      interop = NULL;
      status = pl_fail_sys(err, ENOMEM, "SUBSCRIBE", NULL);
    } else {
      interop->next = session->interop;
      session->interop = interop;
    }
  }
  if (status == PORTALOCK_OK) {
    grant->subscribed = 0;
    status = pl_send_subscription(session, "SUBSCRIBE", grant,
                                  interop != NULL && interop->users == 0, err);
  }
  if (status == PORTALOCK_OK) {
    if (interop != NULL) interop->users++;
    grant->listed = 1;
    grant->next = session->grants;
    session->grants = grant;
  }
  pthread_mutex_unlock(&session->mutex);
  return status;
}

void pl_rsession_unlisten(portalock_redis_session_t *session, pl_rgrant *grant) {
  pthread_mutex_lock(&session->mutex);
  if (grant->listed) {
    pl_rgrant **p = &session->grants;
    while (*p != grant)
      p = &(*p)->next;
    *p = grant->next;
    grant->listed = 0;
    int last_user = 0;
    if (grant->visible) {
      struct pl_interop **pi = pl_interop_find(session, grant->name), *interop = *pi;
      if (interop != NULL && --interop->users == 0) {
        *pi = interop->next;
        free(interop->channel);
        free(interop);
        last_user = 1;
      }
    }
    if (pl_rsession_unusable(session) == NULL) {
      portalock_error ignored;
      pl_send_subscription(session, "UNSUBSCRIBE", grant, last_user, &ignored);
    }
  }
  pthread_mutex_unlock(&session->mutex);
}

/* ---------------------------------------------------------------- the keep-alive thread */

/* (m) held: what a message or a confirmation on the subscription means. */
static void pl_dispatch(portalock_redis_session_t *session, const redisReply *reply) {
  /* An error answers a SUBSCRIBE, which names no channel: whoever waits for its confirmation
   * would wait until command_timeout, and the subscriptions can no longer be told apart. */
  if (reply->type == REDIS_REPLY_ERROR) {
    pl_lose_locked(session, pl_losses[PL_LOST_SUBSCRIPTION_REFUSED]);
    return;
  }
  pl_push push;
  if (pl_rproto_push(reply, &push) < 0 || push.kind[0] == 'u') return;
  for (pl_rgrant *g = session->grants; g != NULL; g = g->next) {
    if (strlen(g->id) != push.channel_len || memcmp(g->id, push.channel, push.channel_len) != 0)
      continue;
    if (push.kind[0] == 's') g->subscribed = 1;
    pl_signal(g->wake_write);
  }
}

/* Reads what the subscription brought; 0, or -1 when it has ended (the session is lost). */
static int pl_read_subscription(portalock_redis_session_t *session) {
  int rc = pl_rconn_receive(&session->sub);
  pthread_mutex_lock(&session->mutex);
  redisReply *reply;
  int got;
  while ((got = pl_rconn_next(&session->sub, &reply)) > 0) {
    pl_dispatch(session, reply);
    freeReplyObject(reply);
  }
  if (rc < 0 || got < 0) pl_lose_locked(session, pl_losses[PL_LOST_SUBSCRIPTION_ENDED]);
  pthread_mutex_unlock(&session->mutex);
  return rc < 0 || got < 0 ? -1 : 0;
}

/* Renews every grant held, in one script; a grant the server no longer has is lost. */
static void pl_renew(portalock_redis_session_t *session) {
  pthread_mutex_lock(&session->mutex);
  size_t n = 0;
  for (pl_rgrant *g = session->grants; g != NULL; g = g->next)
    n += g->held && g->lost == NULL;
  char ***keys = NULL, **ids = NULL;
  int *alive = NULL;
  uint64_t *tokens = NULL;
  if (n > 0) {
    keys = calloc(n, sizeof *keys);
    ids = calloc(n, sizeof *ids);
    alive = calloc(n, sizeof *alive);
    tokens = calloc(n, sizeof *tokens);
  }
  size_t i = 0;
  int oom = n > 0 && (keys == NULL || ids == NULL || alive == NULL || tokens == NULL);
  for (pl_rgrant *g = session->grants; g != NULL && !oom; g = g->next) {
    if (!g->held || g->lost != NULL) continue;
    keys[i] = g->keys;
    tokens[i] = g->token;
    ids[i++] = g->id;
  }
  pl_rcommand cmd;
  long ttl_ms = (long)(session->opts.ttl * 1000);
  /* The arguments are copied: a grant may be released and freed while the script runs. */
  int built = n > 0 && !oom &&
              pl_rproto_renew(&cmd, session->sha[PL_SCRIPT_RENEW], ttl_ms, n, keys, ids) == 0;
  pthread_mutex_unlock(&session->mutex);
  if (built) {
    double sent = portalock_monotonic();
    redisReply *reply = NULL;
    portalock_error err;
    if (pl_rsession_call(session, PL_SCRIPT_RENEW, &cmd, &reply, &err) == PORTALOCK_OK) {
      int bad = pl_rproto_renew_reply(reply, n, alive) < 0;
      pthread_mutex_lock(&session->mutex);
      for (i = 0; i < n; i++) {
        const char *id = pl_rproto_renew_grant(&cmd, n, i);
        /* The grant renewed, not a later one of the same handle: a semaphore and an invisible
         * lock keep their id, and may have released and been granted again meanwhile. */
        for (pl_rgrant *g = session->grants; g != NULL; g = g->next) {
          if (!g->held || g->lost != NULL || g->token != tokens[i] || strcmp(g->id, id) != 0)
            continue;
          pl_rgrant_renewed_locked(session, g, !bad && alive[i], sent, pl_losses[PL_LOST_LEASE]);
        }
      }
      pthread_mutex_unlock(&session->mutex);
      freeReplyObject(reply);
    }
    pl_rcommand_free(&cmd);
  }
  free(keys);
  free(ids);
  free(alive);
  free(tokens);
}

static void *pl_keep_alive(void *arg) {
  portalock_redis_session_t *session = arg;
  double period = session->opts.ttl / 3, next_renewal = portalock_monotonic() + period;
  for (;;) {
    pl_report_losses(session);
    pthread_mutex_lock(&session->mutex);
    int end = session->lost != NULL || session->stopping;
    pthread_mutex_unlock(&session->mutex);
    if (end) break;
    struct pollfd fds[2] = {{.fd = session->sub.fd, .events = POLLIN},
                            {.fd = session->nudge_read, .events = POLLIN}};
    int n = poll(fds, 2, pl_rms_until(next_renewal));
    if (n < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) pl_watch_drain(session->nudge_read);
    if (fds[0].revents != 0 && pl_read_subscription(session) < 0) continue; /* reports, ends */
    if (portalock_monotonic() >= next_renewal) {
      next_renewal = portalock_monotonic() + period;
      pl_renew(session);
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- opening and closing */

/* Copies the options' strings into one block the session owns. */
static portalock_status pl_copy_options(portalock_redis_session_t *s,
                                        const portalock_redis_options *opts, portalock_error *err) {
  s->opts = *opts;
  const char **fields[] = {&s->opts.host, &s->opts.path, &s->opts.username, &s->opts.password};
  size_t total = 0;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (*fields[i] != NULL) total += strlen(*fields[i]) + 1;
  s->strings = malloc(total + 1);
  if (s->strings == NULL) return pl_fail_sys(err, ENOMEM, "opening a Redis session", NULL);
  char *p = s->strings;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (*fields[i] == NULL) continue;
    size_t len = strlen(*fields[i]) + 1;
    memcpy(p, *fields[i], len);
    *fields[i] = p;
    p += len;
  }
  return PORTALOCK_OK;
}

/* Sends the commands of `cmds` (called names[i] in messages) in one write and checks that no
 * reply is an error. */
static portalock_status pl_setup(pl_rconn *conn, pl_rcommand *cmds, const char *const *names,
                                 size_t n, double deadline, portalock_error *err) {
  portalock_status status = PORTALOCK_OK;
  for (size_t i = 0; i < n && status == PORTALOCK_OK; i++)
    status = pl_rconn_send_command(conn, &cmds[i], deadline, err);
  for (size_t i = 0; i < n && status == PORTALOCK_OK; i++) {
    redisReply *reply;
    status = pl_rconn_read(conn, &reply, deadline, err);
    if (status != PORTALOCK_OK) break;
    if (reply->type == REDIS_REPLY_ERROR) status = pl_rconn_refused(conn, names[i], reply, err);
    freeReplyObject(reply);
  }
  return status;
}

static portalock_status pl_connect_session(portalock_redis_session_t *s, portalock_error *err) {
  double deadline = portalock_monotonic() + s->opts.connect_timeout;
  portalock_status status = pl_rconn_open(&s->command, &s->opts, s->where, deadline, err);
  if (status == PORTALOCK_OK) status = pl_rconn_open(&s->sub, &s->opts, s->where, deadline, err);
  if (status != PORTALOCK_OK) return status;
  const char *hex = s->channel + strlen("portalock:session:");
  static const char *const setup_names[] = {"CLIENT SETNAME", "SELECT"};
  pl_rcommand setup[3];
  size_t n = 0;
  for (size_t i = 0; i < 3; i++)
    pl_rcommand_init(&setup[i]);
  int failed = pl_rproto_client_name(&setup[n++], hex, "command") < 0 ||
               (s->opts.db != 0 && pl_rproto_select(&setup[n++], s->opts.db) < 0);
  deadline = portalock_monotonic() + s->opts.command_timeout;
  status = failed ? pl_fail_sys(err, ENOMEM, "opening a Redis session", NULL)
                  : pl_setup(&s->command, setup, setup_names, n, deadline, err);
  for (size_t i = 0; i < 3; i++)
    pl_rcommand_free(&setup[i]);
  for (int i = 0; i < PL_SCRIPT_COUNT && status == PORTALOCK_OK; i++)
    status = pl_load_script(s, (pl_script)i, s->sha[i], err);
  if (status != PORTALOCK_OK) return status;
  /* The session's own channel: once the server confirms it, the session is alive to it. */
  static const char *const sub_names[] = {"CLIENT SETNAME", "SUBSCRIBE"};
  pl_rcommand sub[2];
  pl_rcommand_init(&sub[0]);
  pl_rcommand_init(&sub[1]);
  failed = pl_rproto_client_name(&sub[0], hex, "subscription") < 0 ||
           pl_rproto_subscription(&sub[1], "SUBSCRIBE", s->channel, NULL) < 0;
  status = failed ? pl_fail_sys(err, ENOMEM, "opening a Redis session", NULL)
                  : pl_setup(&s->sub, sub, sub_names, 2, deadline, err);
  pl_rcommand_free(&sub[0]);
  pl_rcommand_free(&sub[1]);
  return status;
}

static void pl_session_destroy(portalock_redis_session_t *s) {
  if (s->thread_running) {
    pthread_mutex_lock(&s->mutex);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mutex);
    pl_signal(s->nudge_write);
    pthread_join(s->thread, NULL);
  }
  pthread_mutex_lock(&pl_sessions_mutex);
  portalock_redis_session_t **p = &pl_sessions;
  while (*p != NULL && *p != s)
    p = &(*p)->next_session;
  if (*p == s) *p = s->next_session;
  pthread_mutex_unlock(&pl_sessions_mutex);
  pl_rconn_close(&s->command);
  pl_rconn_close(&s->sub);
  int fds[] = {s->lost_read, s->lost_write, s->nudge_read, s->nudge_write};
  for (size_t i = 0; i < 4; i++)
    if (fds[i] >= 0 && (i % 2 == 0 || fds[i] != fds[i - 1])) close(fds[i]);
  while (s->losses != NULL) { /* a child's, or those of a session that never started */
    struct pl_loss *next = s->losses->next;
    free(s->losses->name);
    free(s->losses);
    s->losses = next;
  }
  while (s->interop != NULL) {
    struct pl_interop *next = s->interop->next;
    free(s->interop->channel);
    free(s->interop);
    s->interop = next;
  }
  if (s->pid == getpid()) {
    pthread_mutex_destroy(&s->mutex);
    pthread_mutex_destroy(&s->command_mutex);
  }
  free(s->strings);
  free(s);
}

portalock_status portalock_redis_session_open(portalock_redis_session_t **out,
                                              const portalock_redis_options *opts,
                                              portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = NULL;
  if (opts == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'opts' (NULL)");
  portalock_status status = portalock_redis_options_check(opts, err);
  if (status != PORTALOCK_OK) return status;
  pthread_once(&pl_sessions_once, pl_sessions_init);
  portalock_redis_session_t *s = calloc(1, sizeof *s);
  if (s == NULL) return pl_fail_sys(err, ENOMEM, "opening a Redis session", NULL);
  s->command = s->sub = (pl_rconn)PL_RCONN_NONE;
  pl_rconn_where(opts, s->where, sizeof s->where);
  s->lost_read = s->lost_write = s->nudge_read = s->nudge_write = -1;
  s->pid = getpid();
  s->refs = 1;
  pthread_mutex_init(&s->mutex, NULL);
  pthread_mutex_init(&s->command_mutex, NULL);
  unsigned char random[16];
  status = pl_copy_options(s, opts, err);
  if (status == PORTALOCK_OK && (pl_platform_random_bytes(random, sizeof random) < 0 ||
                                 pl_platform_event_open(&s->lost_read, &s->lost_write) < 0 ||
                                 pl_platform_event_open(&s->nudge_read, &s->nudge_write) < 0))
    status = pl_fail_sys(err, errno, "opening a Redis session", NULL);
  if (status == PORTALOCK_OK) {
    int len = snprintf(s->channel, sizeof s->channel, "portalock:session:");
    for (size_t i = 0; i < sizeof random; i++)
      len += snprintf(s->channel + len, sizeof s->channel - (size_t)len, "%02x", random[i]);
    status = pl_connect_session(s, err);
  }
  if (status == PORTALOCK_OK) {
    /* The thread takes no signals: they belong to the caller's threads (a process-directed
     * SIGTERM that portalock_command_run blocks to forward would otherwise kill the process
     * through this thread's default action). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, pl_keep_alive, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
      status = pl_fail_sys(err, rc, "starting the Redis keep-alive thread", NULL);
    else
      s->thread_running = 1;
  }
  pthread_mutex_lock(&pl_sessions_mutex);
  s->next_session = pl_sessions;
  pl_sessions = s;
  pthread_mutex_unlock(&pl_sessions_mutex);
  if (status != PORTALOCK_OK) {
    pl_session_destroy(s);
    return status;
  }
  *out = s;
  return PORTALOCK_OK;
}

void pl_rsession_ref(portalock_redis_session_t *session) {
  pthread_mutex_lock(&session->mutex);
  session->refs++;
  pthread_mutex_unlock(&session->mutex);
}

void portalock_redis_session_free(portalock_redis_session_t *session) {
  if (session == NULL) return;
  pthread_mutex_lock(&session->mutex);
  unsigned refs = --session->refs;
  pthread_mutex_unlock(&session->mutex);
  if (refs == 0) pl_session_destroy(session);
}

const char *portalock_redis_session_lost(const portalock_redis_session_t *session) {
  portalock_redis_session_t *s = (portalock_redis_session_t *)session;
  pthread_mutex_lock(&s->mutex);
  const char *reason = pl_rsession_unusable(s);
  pthread_mutex_unlock(&s->mutex);
  return reason;
}

int portalock_redis_session_fd(const portalock_redis_session_t *session) {
  return session->lost_read;
}

void portalock_redis_session_on_lost(portalock_redis_session_t *session,
                                     portalock_redis_lost_callback callback, void *data) {
  pthread_mutex_lock(&session->mutex);
  session->on_lost = callback;
  session->on_lost_data = data;
  pthread_mutex_unlock(&session->mutex);
}

portalock_status portalock_redis_fenced_write(portalock_redis_session_t *session, const char *key,
                                              uint64_t token, const char *value, size_t len,
                                              int *written, portalock_error *err) {
  pl_clear(err);
  const char *missing = session == NULL   ? "session"
                        : key == NULL     ? "key"
                        : value == NULL   ? "value"
                        : written == NULL ? "written"
                                          : NULL;
  if (missing != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument '%s' (NULL)", missing);
  *written = 0;
  pl_rcommand cmd;
  if (pl_rproto_fenced_write(&cmd, session->sha[PL_SCRIPT_FENCED_WRITE], key, token, value, len) <
      0)
    return pl_fail_sys(err, ENOMEM, "fenced write", NULL);
  redisReply *reply = NULL;
  portalock_status status = pl_rsession_call(session, PL_SCRIPT_FENCED_WRITE, &cmd, &reply, err);
  pl_rcommand_free(&cmd);
  if (status != PORTALOCK_OK) return status;
  int result = pl_rproto_fenced_write_reply(reply);
  if (result < 0)
    status = pl_rproto_error(reply, "fenced write", err);
  else
    *written = result;
  freeReplyObject(reply);
  return status;
}
