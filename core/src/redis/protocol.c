/*
 * What the Redis backend sends and what each reply means, with no sockets: the arguments of each
 * script call, formatted by hiredis, and the interpretation of its reply. The C transport
 * (connection.c, session.c) drives these; so can any other transport.
 */
#include "redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pl_rcommand_init(pl_rcommand *cmd) {
  *cmd = (pl_rcommand){0};
}

int pl_rcommand_add(pl_rcommand *cmd, const char *s, size_t len) {
  if (cmd->argc == cmd->cap) {
    int cap = cmd->cap == 0 ? 16 : cmd->cap * 2;
    char **argv = realloc(cmd->argv, (size_t)cap * sizeof *argv);
    if (argv == NULL) return -1;
    cmd->argv = argv;
    size_t *lens = realloc(cmd->lens, (size_t)cap * sizeof *lens);
    if (lens == NULL) return -1;
    cmd->lens = lens;
    cmd->cap = cap;
  }
  char *copy = malloc(len + 1);
  if (copy == NULL) return -1;
  memcpy(copy, s, len);
  copy[len] = '\0';
  cmd->argv[cmd->argc] = copy;
  cmd->lens[cmd->argc] = len;
  cmd->argc++;
  return 0;
}

int pl_rcommand_addf(pl_rcommand *cmd, const char *fmt, ...) {
  char buf[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf) return -1;
  return pl_rcommand_add(cmd, buf, (size_t)n);
}

static int pl_rcommand_adds(pl_rcommand *cmd, const char *s) {
  return pl_rcommand_add(cmd, s, strlen(s));
}

char *pl_rcommand_format(const pl_rcommand *cmd, size_t *len) {
  char *out = NULL;
  long long n =
      redisFormatCommandArgv(&out, cmd->argc, (const char **)cmd->argv, (const size_t *)cmd->lens);
  if (n < 0) return NULL;
  *len = (size_t)n;
  return out;
}

void pl_rcommand_free(pl_rcommand *cmd) {
  for (int i = 0; i < cmd->argc; i++)
    free(cmd->argv[i]);
  free(cmd->argv);
  free(cmd->lens);
  pl_rcommand_init(cmd);
}

static const char *const pl_key_suffixes[PL_KEYS] = {
    [PL_KEY_HOLDERS] = "holders",         [PL_KEY_QUEUE] = "queue",     [PL_KEY_FENCE] = "fence",
    [PL_KEY_SUBSCRIBERS] = "subscribers", [PL_KEY_MAXIMUM] = "maximum",
};

int pl_rkeys_make(const char *name, char *keys[PL_KEYS]) {
  size_t each = strlen("portalock:{}:") + strlen(name) + strlen("subscribers") + 1;
  char *block = malloc(each * PL_KEYS);
  if (block == NULL) return -1;
  for (int i = 0; i < PL_KEYS; i++) {
    keys[i] = block + each * (size_t)i;
    snprintf(keys[i], each, "portalock:{%s}:%s", name, pl_key_suffixes[i]);
  }
  return 0;
}

/* EVALSHA sha numkeys keys... : the start of every script call. */
static int pl_rproto_evalsha(pl_rcommand *cmd, const char *sha, size_t nkeys, char *const *keys) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, "EVALSHA") < 0 || pl_rcommand_adds(cmd, sha) < 0 ||
      pl_rcommand_addf(cmd, "%zu", nkeys) < 0)
    return -1;
  for (size_t i = 0; i < nkeys; i++)
    if (pl_rcommand_adds(cmd, keys[i]) < 0) return -1;
  return 0;
}

int pl_rproto_grant(pl_rcommand *cmd, const char *sha, char *const keys[PL_KEYS], const char *grant,
                    const char *session, long maximum, long ttl_ms, const char *channel,
                    const char *score, int visible) {
  if (pl_rproto_evalsha(cmd, sha, PL_KEYS, keys) < 0 || pl_rcommand_adds(cmd, grant) < 0 ||
      pl_rcommand_adds(cmd, session) < 0 || pl_rcommand_addf(cmd, "%ld", maximum) < 0 ||
      pl_rcommand_addf(cmd, "%ld", ttl_ms) < 0 || pl_rcommand_adds(cmd, channel) < 0 ||
      pl_rcommand_adds(cmd, score) < 0 || pl_rcommand_adds(cmd, visible ? "1" : "0") < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

/* An integer element, or a bulk string holding one. */
static int pl_reply_number(const redisReply *r, long long *out) {
  if (r->type == REDIS_REPLY_INTEGER) {
    *out = r->integer;
    return 0;
  }
  if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return -1;
  char buf[24];
  memcpy(buf, r->str, r->len);
  buf[r->len] = '\0';
  char *end;
  errno = 0;
  long long v = strtoll(buf, &end, 10);
  if (errno != 0 || *end != '\0') return -1;
  *out = v;
  return 0;
}

void pl_rproto_grant_reply(const redisReply *reply, pl_grant_reply *out) {
  *out = (pl_grant_reply){.outcome = PL_BAD_REPLY};
  long long kind, a, b;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
      pl_reply_number(reply->element[0], &kind) < 0)
    return;
  if (kind == 1 && reply->elements == 2 && pl_reply_number(reply->element[1], &a) == 0 && a > 0) {
    out->token = (uint64_t)a;
    out->outcome = PL_GRANTED;
  } else if (kind == 0 && reply->elements == 4 && pl_reply_number(reply->element[1], &a) == 0 &&
             pl_reply_number(reply->element[2], &b) == 0 &&
             reply->element[3]->type == REDIS_REPLY_STRING &&
             reply->element[3]->len < sizeof out->score) {
    out->holders = (long)a;
    out->foreign = (long)b;
    memcpy(out->score, reply->element[3]->str, reply->element[3]->len);
    out->score[reply->element[3]->len] = '\0';
    out->outcome = PL_CONTENDED;
  } else if (kind == -1 && reply->elements == 1) {
    out->outcome = PL_NOT_SUBSCRIBED;
  } else if (kind == -2 && reply->elements == 2 && pl_reply_number(reply->element[1], &a) == 0) {
    out->stored_maximum = (long)a;
    out->outcome = PL_MAXIMUM_MISMATCH;
  }
}

int pl_rproto_release(pl_rcommand *cmd, const char *sha, char *const keys[PL_KEYS],
                      const char *grant) {
  char *const release_keys[2] = {keys[PL_KEY_HOLDERS], keys[PL_KEY_QUEUE]};
  if (pl_rproto_evalsha(cmd, sha, 2, release_keys) < 0 || pl_rcommand_adds(cmd, grant) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_release_reply(const redisReply *reply) {
  if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0 || reply->integer > 1) return -1;
  return (int)reply->integer;
}

int pl_rproto_renew(pl_rcommand *cmd, const char *sha, long ttl_ms, size_t n, char **const *keys,
                    char *const *grants) {
  pl_rcommand_init(cmd);
  int failed = pl_rcommand_adds(cmd, "EVALSHA") < 0 || pl_rcommand_adds(cmd, sha) < 0 ||
               pl_rcommand_addf(cmd, "%zu", 3 * n) < 0;
  for (size_t i = 0; i < n && !failed; i++)
    failed = pl_rcommand_adds(cmd, keys[i][PL_KEY_HOLDERS]) < 0 ||
             pl_rcommand_adds(cmd, keys[i][PL_KEY_MAXIMUM]) < 0 ||
             pl_rcommand_adds(cmd, keys[i][PL_KEY_SUBSCRIBERS]) < 0;
  failed = failed || pl_rcommand_addf(cmd, "%ld", ttl_ms) < 0;
  for (size_t i = 0; i < n && !failed; i++)
    failed = pl_rcommand_adds(cmd, grants[i]) < 0;
  if (failed) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

const char *pl_rproto_renew_grant(const pl_rcommand *cmd, size_t n, size_t i) {
  return cmd->argv[3 + 3 * n + 1 + i]; /* EVALSHA sha numkeys keys... ttl grants... */
}

int pl_rproto_renew_reply(const redisReply *reply, size_t n, int *alive) {
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) return -1;
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = reply->element[i];
    if (e->type != REDIS_REPLY_INTEGER || e->integer < 0 || e->integer > 1) return -1;
    alive[i] = (int)e->integer;
  }
  return 0;
}

int pl_rproto_fenced_write(pl_rcommand *cmd, const char *sha, const char *key, uint64_t token,
                           const char *value, size_t len) {
  char *const keys[1] = {(char *)key};
  if (pl_rproto_evalsha(cmd, sha, 1, keys) < 0 || pl_rcommand_addf(cmd, "%" PRIu64, token) < 0 ||
      pl_rcommand_add(cmd, value, len) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_status(pl_rcommand *cmd, const char *sha, char *const keys[PL_KEYS],
                     const char *name) {
  char *const status_keys[4] = {keys[PL_KEY_HOLDERS], keys[PL_KEY_QUEUE], keys[PL_KEY_SUBSCRIBERS],
                                keys[PL_KEY_MAXIMUM]};
  if (pl_rproto_evalsha(cmd, sha, 4, status_keys) < 0 || pl_rcommand_adds(cmd, name) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_status_reply(const redisReply *reply, portalock_redis_status *out) {
  *out = (portalock_redis_status){0};
  long long maximum = 0, waiting, foreign;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      (reply->element[0]->len > 0 && pl_reply_number(reply->element[0], &maximum) < 0) ||
      pl_reply_number(reply->element[1], &waiting) < 0 ||
      pl_reply_number(reply->element[2], &foreign) < 0 ||
      reply->element[3]->type != REDIS_REPLY_ARRAY || reply->element[3]->elements % 3 != 0) {
    errno = EPROTO;
    return -1;
  }
  const redisReply *grants = reply->element[3];
  size_t count = grants->elements / 3;
  portalock_redis_holder *holders = count > 0 ? calloc(count, sizeof *holders) : NULL;
  if (count > 0 && holders == NULL) return -1;
  for (size_t i = 0; i < count; i++) {
    const redisReply *session = grants->element[3 * i];
    long long token, left;
    if (session->type != REDIS_REPLY_STRING ||
        pl_reply_number(grants->element[3 * i + 1], &token) < 0 || token <= 0 ||
        pl_reply_number(grants->element[3 * i + 2], &left) < 0) {
      free(holders);
      errno = EPROTO;
      return -1;
    }
    /* "portalock:session:<32 hex>": its first 16 digits name its connections (CLIENT LIST) */
    const char *hex = memchr(session->str, ':', session->len) != NULL
                          ? strrchr(session->str, ':') + 1
                          : session->str;
    snprintf(holders[i].session, sizeof holders[i].session, "%s", hex);
    holders[i].token = (uint64_t)token;
    holders[i].lease = (double)left / 1000;
  }
  out->maximum = (long)maximum;
  out->waiting = (long)waiting;
  out->foreign = (long)foreign;
  out->count = count;
  out->holders = holders;
  return 0;
}

int pl_rproto_fenced_write_reply(const redisReply *reply) {
  return pl_rproto_release_reply(reply); /* the same shape: 1 or 0 */
}

int pl_rproto_push(const redisReply *reply, pl_push *out) {
  *out = (pl_push){0};
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return -1;
  const redisReply *kind = reply->element[0], *channel = reply->element[1];
  if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return -1;
  static const char *const kinds[] = {"message", "subscribe", "unsubscribe"};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (kind->len == strlen(kinds[i]) && memcmp(kind->str, kinds[i], kind->len) == 0)
      out->kind = kinds[i];
  if (out->kind == NULL) return -1;
  out->channel = channel->str;
  out->channel_len = channel->len;
  return 0;
}

int pl_rproto_leave_queue(pl_rcommand *cmd, char *const keys[PL_KEYS], const char *grant) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, "ZREM") < 0 || pl_rcommand_adds(cmd, keys[PL_KEY_QUEUE]) < 0 ||
      pl_rcommand_adds(cmd, grant) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_leave_queue_reply(const redisReply *reply) {
  return pl_rproto_release_reply(reply); /* the same shape: 1 or 0 */
}

int pl_rproto_subscription(pl_rcommand *cmd, const char *verb, const char *channel,
                           const char *name) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, verb) < 0 || pl_rcommand_adds(cmd, channel) < 0 ||
      (name != NULL && pl_rcommand_adds(cmd, name) < 0)) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_script_load(pl_rcommand *cmd, pl_script script) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, "SCRIPT") < 0 || pl_rcommand_adds(cmd, "LOAD") < 0 ||
      pl_rcommand_adds(cmd, pl_redis_scripts[script]) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_script_load_reply(const redisReply *reply, char sha[41]) {
  if (reply->type != REDIS_REPLY_STRING || reply->len != 40) return -1;
  memcpy(sha, reply->str, 40);
  sha[40] = '\0';
  return 0;
}

int pl_rproto_auth(pl_rcommand *cmd, const char *username, const char *password) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, "AUTH") < 0 ||
      (username != NULL && pl_rcommand_adds(cmd, username) < 0) ||
      pl_rcommand_adds(cmd, password) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_select(pl_rcommand *cmd, long db) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, "SELECT") < 0 || pl_rcommand_addf(cmd, "%ld", db) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

int pl_rproto_client_name(pl_rcommand *cmd, const char *session_hex, const char *role) {
  pl_rcommand_init(cmd);
  if (pl_rcommand_adds(cmd, "CLIENT") < 0 || pl_rcommand_adds(cmd, "SETNAME") < 0 ||
      pl_rcommand_addf(cmd, "portalock-%.16s-%s", session_hex, role) < 0) {
    pl_rcommand_free(cmd);
    return -1;
  }
  return 0;
}

portalock_status pl_rproto_error(const redisReply *reply, const char *what, portalock_error *err) {
  if (reply->type == REDIS_REPLY_ERROR)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL, "%s: the server answered: %.*s", what,
                   (int)(reply->len > 300 ? 300 : reply->len), reply->str);
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EPROTO, NULL,
                 "%s: unexpected reply from the server (type %d)", what, reply->type);
}

int pl_rproto_noscript(const redisReply *reply) {
  return reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
         memcmp(reply->str, "NOSCRIPT", 8) == 0;
}
