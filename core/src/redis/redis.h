/*
 * The Redis backend's parts, apart from one another:
 *   scripts.c     what the server runs (every decision is one script);
 *   protocol.c    what is sent and what a reply means, without sockets (a second transport,
 *                 such as OpenResty's cosockets, drives the same functions);
 *   connection.c  the C transport: a socket with deadlines, RESP through hiredis;
 *   session.c     a session's two connections, its keep-alive thread, fork and loss;
 *   lock.c        RedisLock and RedisSemaphore: the step API over a session;
 *   status.c      who holds and waits for a name (portalock status);
 *   url.c         connection options and URLs.
 */
#ifndef PORTALOCK_REDIS_H
#define PORTALOCK_REDIS_H

#include "../private.h"

#include <pthread.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* ---------------------------------------------------------------- scripts.c */

typedef enum pl_script {
  PL_SCRIPT_GRANT,
  PL_SCRIPT_RELEASE,
  PL_SCRIPT_RENEW,
  PL_SCRIPT_FENCED_WRITE,
  PL_SCRIPT_STATUS,
  PL_SCRIPT_COUNT
} pl_script;

extern const char *const pl_redis_scripts[PL_SCRIPT_COUNT];

/* ---------------------------------------------------------------- protocol.c */

/* A command being built: its arguments (copied) and the RESP text hiredis formats from them. */
typedef struct pl_rcommand {
  int argc;
  char **argv;
  size_t *lens;
  int cap;
} pl_rcommand;

void pl_rcommand_init(pl_rcommand *cmd);
/* Appends an argument (a copy of s[0..len)); 0, or -1 when out of memory. */
int pl_rcommand_add(pl_rcommand *cmd, const char *s, size_t len);
int pl_rcommand_addf(pl_rcommand *cmd, const char *fmt, ...) PL_PRINTF(2, 3);
/* The command as RESP (free with redisFreeCommand), or NULL when out of memory. */
char *pl_rcommand_format(const pl_rcommand *cmd, size_t *len);
void pl_rcommand_free(pl_rcommand *cmd);

/* The keys of a name, in the order the scripts take them. */
enum { PL_KEY_HOLDERS, PL_KEY_QUEUE, PL_KEY_FENCE, PL_KEY_SUBSCRIBERS, PL_KEY_MAXIMUM, PL_KEYS };
/* "portalock:{name}:holders" and the others into keys[PL_KEYS] (one allocation, freed with
 * free(keys[0])); 0, or -1 when out of memory. */
int pl_rkeys_make(const char *name, char *keys[PL_KEYS]);

/* What a grant attempt's reply means. */
typedef enum pl_grant_outcome {
  PL_GRANTED,
  PL_CONTENDED,
  PL_NOT_SUBSCRIBED, /* the acquisition's subscription has not reached the server yet */
  PL_MAXIMUM_MISMATCH,
  PL_BAD_REPLY
} pl_grant_outcome;

typedef struct pl_grant_reply {
  pl_grant_outcome outcome;
  uint64_t token;      /* PL_GRANTED */
  long holders;        /* PL_CONTENDED: the live grants */
  long foreign;        /* PL_CONTENDED: portalocker holders of the channel */
  char score[32];      /* PL_CONTENDED: the place in the queue, kept for the next attempt */
  long stored_maximum; /* PL_MAXIMUM_MISMATCH */
} pl_grant_reply;

/* The arguments of one grant attempt (scripts.c, GRANT): `channel` is "" for a semaphore,
 * `score` "" the first time and "-" not to queue; `visible`: subscribed to `channel` too. */
int pl_rproto_grant(pl_rcommand *cmd, const char *sha, char *const keys[PL_KEYS], const char *grant,
                    const char *session, long maximum, long ttl_ms, const char *channel,
                    const char *score, int visible);
void pl_rproto_grant_reply(const redisReply *reply, pl_grant_reply *out);
int pl_rproto_release(pl_rcommand *cmd, const char *sha, char *const keys[PL_KEYS],
                      const char *grant);
/* 1 released, 0 the grant was gone, -1 a bad reply. */
int pl_rproto_release_reply(const redisReply *reply);
/* RENEW of n grants: grants[i], whose name's keys are keys[i][PL_KEYS]. */
int pl_rproto_renew(pl_rcommand *cmd, const char *sha, long ttl_ms, size_t n, char **const *keys,
                    char *const *grants);
/* The i-th grant of a RENEW command of n grants (the command's own copy). */
const char *pl_rproto_renew_grant(const pl_rcommand *cmd, size_t n, size_t i);
/* Fills alive[0..n) with 1 or 0; 0, or -1 for a bad reply. */
int pl_rproto_renew_reply(const redisReply *reply, size_t n, int *alive);
int pl_rproto_fenced_write(pl_rcommand *cmd, const char *sha, const char *key, uint64_t token,
                           const char *value, size_t len);
/* 1 written, 0 rejected, -1 a bad reply. */
int pl_rproto_fenced_write_reply(const redisReply *reply);
int pl_rproto_status(pl_rcommand *cmd, const char *sha, char *const keys[PL_KEYS],
                     const char *name);
/* Fills `out` (its holders allocated); 0, or -1 for a bad reply or out of memory (errno). */
int pl_rproto_status_reply(const redisReply *reply, portalock_redis_status *out);

/* A message on a subscription: kind "message", "subscribe", "unsubscribe"; NULL otherwise. */
typedef struct pl_push {
  const char *kind;
  const char *channel;
  size_t channel_len;
} pl_push;
int pl_rproto_push(const redisReply *reply, pl_push *out);

/* ZREM of the grant from the name's queue of waiters (an acquisition given up). */
int pl_rproto_leave_queue(pl_rcommand *cmd, char *const keys[PL_KEYS], const char *grant);
/* 1 it was still queued, 0 a release had popped it already (its wake-up is on its way, to be
 * passed on), -1 a bad reply. */
int pl_rproto_leave_queue_reply(const redisReply *reply);
/* `verb` ("SUBSCRIBE" or "UNSUBSCRIBE") of `channel`, and of `name` too when not NULL. */
int pl_rproto_subscription(pl_rcommand *cmd, const char *verb, const char *channel,
                           const char *name);
/* SCRIPT LOAD of a script; its reply's SHA1 into sha (0), or -1 for a bad reply. */
int pl_rproto_script_load(pl_rcommand *cmd, pl_script script);
int pl_rproto_script_load_reply(const redisReply *reply, char sha[41]);
/* The setup of a connection: AUTH [username] password; SELECT db; CLIENT SETNAME
 * "portalock-<16 hex of the session>-<role>". */
int pl_rproto_auth(pl_rcommand *cmd, const char *username, const char *password);
int pl_rproto_select(pl_rcommand *cmd, long db);
int pl_rproto_client_name(pl_rcommand *cmd, const char *session_hex, const char *role);

/* An error reply's text into err (LOCK_EXCEPTION, "<what>: <server's message>"). */
portalock_status pl_rproto_error(const redisReply *reply, const char *what, portalock_error *err);
/* 1 when the reply is the server's NOSCRIPT error (its script cache was flushed). */
int pl_rproto_noscript(const redisReply *reply);

/* Why a session or a grant is lost: the words every transport reports (check's "lost" comes
 * with one of these in on_lost, and "the Redis session is lost (<why>)" names one). */
typedef enum pl_loss_reason {
  PL_LOST_COMMAND_TIMEOUT,
  PL_LOST_COMMAND_FAILED,
  PL_LOST_SUBSCRIPTION_FAILED,
  PL_LOST_SUBSCRIPTION_REFUSED,
  PL_LOST_SUBSCRIPTION_ENDED,
  PL_LOST_SUBSCRIPTION_UNCONFIRMED,
  PL_LOST_SUBSCRIPTION_DROPPED,
  PL_LOST_LEASE,
  PL_LOST_GRANT_GONE,
  PL_LOSSES
} pl_loss_reason;

extern const char *const pl_losses[PL_LOSSES];
/* Their names, for a transport in another language: "command_timeout", ... */
extern const char *const pl_loss_names[PL_LOSSES];

/* ---------------------------------------------------------------- connection.c */

typedef struct pl_rconn {
  int fd;
  redisReader *reader;
  const char *where; /* the server, as every message names it (pl_rconn_where) */
} pl_rconn;

#define PL_RCONN_NONE                                                                              \
  { .fd = -1, .where = "Redis" }

/* The largest pl_rconn_where, with its NUL. */
#define PL_RWHERE_MAX (PORTALOCK_PATH_MAX + 32)
/* The server of `opts` as the messages name it: "Redis at host:port" or "Redis at unix:path". */
void pl_rconn_where(const portalock_redis_options *opts, char *buf, size_t cap);
/* LOCK_EXCEPTION "cannot connect to <where>: <reason>". */
portalock_status pl_rconn_unreachable(int errnum, const char *where, const char *reason,
                                      portalock_error *err);
/* LOCK_EXCEPTION for a connection to `where` that broke while `doing`: ETIMEDOUT "<where> did
 * not answer in time (command_timeout) while <doing>", else "the connection to <where> was lost
 * while <doing>: <reason>" (reason NULL: errnum's text, or for 0 "closed by the server"). */
portalock_status pl_rconn_broken(const char *where, int errnum, const char *doing,
                                 const char *reason, portalock_error *err);
/* Connects (TCP with keep-alive, TCP_NODELAY and TCP_USER_TIMEOUT, or a unix socket) by
 * `deadline`, and says AUTH when opts has a password. `where` (pl_rconn_where) must outlive
 * the connection. */
portalock_status pl_rconn_open(pl_rconn *conn, const portalock_redis_options *opts,
                               const char *where, double deadline, portalock_error *err);
/* LOCK_EXCEPTION "<where> refused <command>: <the server's error>" for the server's answer to
 * a command that sets the connection up (AUTH, SELECT, CLIENT SETNAME, SCRIPT LOAD, ...). */
portalock_status pl_rconn_refused(const pl_rconn *conn, const char *command,
                                  const redisReply *reply, portalock_error *err);
/* The same for a connection of another transport to `where`. */
portalock_status pl_rconn_refused_by(const char *where, const char *command,
                                     const redisReply *reply, portalock_error *err);
void pl_rconn_close(pl_rconn *conn);
/* Milliseconds until `deadline` for poll(2): at least 0, rounded up, at most a day (a longer
 * wait wakes and waits again). */
int pl_rms_until(double deadline);
/* Ends the connection for the server at once (the peer sees it closed), leaving the
 * descriptor to pl_rconn_close: another thread may still be polling it. */
void pl_rconn_shut(pl_rconn *conn);
/* Sends all of buf by `deadline` (never SIGPIPE). */
portalock_status pl_rconn_send(pl_rconn *conn, const char *buf, size_t len, double deadline,
                               portalock_error *err);
portalock_status pl_rconn_send_command(pl_rconn *conn, const pl_rcommand *cmd, double deadline,
                                       portalock_error *err);
/* The next reply, waiting for it until `deadline` (free with freeReplyObject). */
portalock_status pl_rconn_read(pl_rconn *conn, redisReply **reply, double deadline,
                               portalock_error *err);
/* Reads what has arrived without waiting: 0, or -1 when the connection failed or ended
 * (errno says why: 0 for an orderly close). Replies are then taken with pl_rconn_next. */
int pl_rconn_receive(pl_rconn *conn);
/* A complete reply read so far (1), none (0), or a protocol error (-1). */
int pl_rconn_next(pl_rconn *conn, redisReply **reply);

/* ---------------------------------------------------------------- lock.c */

/* OK when `name` can name a RedisLock or RedisSemaphore (1 to PORTALOCK_REDIS_NAME_MAX bytes),
 * else INVALID naming it. */
portalock_status pl_rname_check(const char *name, portalock_error *err);

/* ---------------------------------------------------------------- status.c */

/* The STATUS script's reply into `out` (holders oldest token first), for every transport. */
portalock_status pl_rstatus_read(const redisReply *reply, portalock_redis_status *out,
                                 portalock_error *err);

/* ---------------------------------------------------------------- session.c */

typedef struct pl_rgrant pl_rgrant;

/* One acquisition and grant of a name through a session (lock.c). The session's keep-alive
 * thread reads and writes the fields marked (s) under the session's mutex. */
struct pl_rgrant {
  portalock_redis_session_t *session;
  char *name;
  char *keys[PL_KEYS];
  long maximum;
  int lock;      /* a RedisLock: a subscriber of the channel `name` that is not a portalock
                    acquisition is a portalocker holder, and blocks the grant */
  int visible;   /* a RedisLock subscribed to `name` while it waits and holds, so that
                    portalocker sees it: its channel is made new, with that subscription, for
                    each acquisition (else it is made once and kept until the handle's end) */
  char id[96];   /* the handle's channel: the grant's id and where its wake-ups come */
  int acquiring; /* an acquisition has begun its attempts and not ended */
  int queued;    /* the last attempt put the handle in the queue of waiters */
  int waited;    /* an attempt of this acquisition was contended: a loss is one while waiting */
  int wake_read; /* readable after a wake-up or the subscription's confirmation (s) */
  int wake_write;
  int listed;     /* in the session's list: subscribed or subscribing (s) */
  int subscribed; /* the server confirmed the subscription (s) */
  int held;
  uint64_t token;
  char score[32];   /* the place in the queue while waiting */
  double expires;   /* monotonic: the lease's end as this process knows it (s) */
  const char *lost; /* why the grant is lost, or NULL (s) */
  pl_rgrant *next;  /* (s) */
};

struct portalock_redis_session {
  portalock_redis_options opts; /* strings point into `strings` */
  char *strings;
  pthread_mutex_t mutex;         /* the state below marked (m), and writes to `sub` */
  pthread_mutex_t command_mutex; /* one command at a time on `command` */
  pl_rconn command;
  pl_rconn sub;
  char channel[64];          /* "portalock:session:<32 hex>" */
  char where[PL_RWHERE_MAX]; /* the server, as messages name it (pl_rconn_where) */
  char sha[PL_SCRIPT_COUNT][41];
  unsigned long acquisitions;  /* (m) */
  pl_rgrant *grants;           /* (m): every listed acquisition */
  struct pl_interop *interop;  /* (m): channels `name` subscribed, with their users */
  const char *lost;            /* (m) */
  struct pl_loss *losses;      /* (m): the losses on_lost has yet to be told of, oldest first */
  int lost_read, lost_write;   /* readable once a grant is lost */
  int nudge_read, nudge_write; /* wakes the keep-alive thread: to end, or to report a loss */
  int stopping;                /* (m): the keep-alive thread is to end */
  pthread_t thread;
  int thread_running;
  pid_t pid;
  unsigned refs; /* (m): the caller's and each lock's */
  portalock_redis_lost_callback on_lost;
  void *on_lost_data;
  portalock_redis_session_t *next_session; /* the process's sessions (fork) */
};

void pl_rsession_ref(portalock_redis_session_t *session);
/* Why the session cannot be used by this process (lost, or forked), or NULL; (m) held. */
const char *pl_rsession_unusable(const portalock_redis_session_t *session);
/* Runs one script command on the command connection: the reply, or a failure that has lost the
 * session (a timeout, a closed connection), or LOCK_EXCEPTION for the server's error reply. A
 * NOSCRIPT reply loads the script again and retries once. */
portalock_status pl_rsession_call(portalock_redis_session_t *session, pl_script script,
                                  pl_rcommand *cmd, redisReply **reply, portalock_error *err);
/* pl_rsession_call's `script` for a command that is not a script (nothing to load again). */
#define PL_NO_SCRIPT PL_SCRIPT_COUNT
/* Sends SUBSCRIBE or UNSUBSCRIBE of the handle's channel (and of `name` for a visible
 * RedisLock, when no other acquisition of this session keeps it) without waiting for the
 * reply, and lists or unlists the grant. */
portalock_status pl_rsession_listen(portalock_redis_session_t *session, pl_rgrant *grant,
                                    portalock_error *err);
void pl_rsession_unlisten(portalock_redis_session_t *session, pl_rgrant *grant);
/* (m) held: a renewal sent at `sent` came back: the lease runs ttl from then, or, when the
 * grant was not `alive` (or is lost already), the grant is lost for `reason`. */
void pl_rgrant_renewed_locked(portalock_redis_session_t *session, pl_rgrant *grant, int alive,
                              double sent, const char *reason);
/* (m) held: records that a held grant is lost (check and the session's descriptor say so at
 * once; on_lost is called on the keep-alive thread, which this wakes). */
void pl_rgrant_lose_locked(portalock_redis_session_t *session, pl_rgrant *grant,
                           const char *reason);
/* LOCK_EXCEPTION "the connection to <where> was lost (<why>)", or "... was lost while waiting
 * for '<waiting_for>' (<why>)" (`where` as pl_rconn_where names the server). */
portalock_status pl_rlost_error(const char *where, const char *waiting_for, const char *why,
                                portalock_error *err);
/* The same for the session's server; for a forked child, that the session is its parent's. */
portalock_status pl_rsession_lost_error(const portalock_redis_session_t *session,
                                        const char *waiting_for, const char *why,
                                        portalock_error *err);
/* Marks the session lost (the first reason stays) and shuts its connections. */
void pl_rsession_lose(portalock_redis_session_t *session, const char *reason);
/* The next acquisition number of the session (for its channel). */
unsigned long pl_rsession_next_acquisition(portalock_redis_session_t *session);

/* ---------------------------------------------------------------- lock.c */

/* What a remote acquisition is of (portalock_redis_remote_new): the grant's name, keys,
 * maximum and kind, for a transport that builds the commands itself (protocol.c). */
struct portalock_redis_remote {
  pl_rgrant grant;
};

/* The messages of a grant, the same for every transport: INVALID for a maximum that is not
 * the one stored with the name; LOCK_EXCEPTION "'name' was lost before its release" and
 * "'name' is <why>" (check's reason). */
portalock_status pl_rgrant_mismatch(const pl_rgrant *g, long stored, portalock_error *err);
portalock_status pl_rgrant_lost_before_release(const pl_rgrant *g, portalock_error *err);
portalock_status pl_rgrant_not_held(const pl_rgrant *g, const char *why, portalock_error *err);
/* LOCK_EXCEPTION (ETIMEDOUT): the server (`where`, pl_rconn_where) did not confirm an
 * acquisition's subscription within command_timeout. */
portalock_status pl_rgrant_unconfirmed(const char *where, portalock_error *err);

#endif /* PORTALOCK_REDIS_H */
