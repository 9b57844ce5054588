/*
 * The Redis backend's protocol for a transport written in Lua (OpenResty's cosockets:
 * lua/portalock/redis_cosocket.lua): the RESP bytes of every command the backend sends, a
 * reader of replies, and what each reply means, all from the core's protocol.c, so that the
 * scripts, the command shapes and the meaning of the replies keep one owner. The transport
 * moves the bytes and keeps the session; the wait's timing and messages stay the engine's
 * (portalock_redis_remote_begin).
 *
 * This file includes the core's private "redis/redis.h" (protocol.c's functions, the scripts'
 * numbering, pl_rgrant's fields): the module links the static core, which has them, and a
 * public copy of the protocol would be a second owner of it.
 *
 *   core.redis_remote(name, maximum, is_lock) -> remote
 *     remote:begin(timeout, check_interval, fail_when_locked) -> an acquisition (step_held only)
 *     remote:grant(sha, grant, session, ttl_ms, score, visible) -> bytes  (EVALSHA GRANT)
 *     remote:release(sha, grant)   remote:renew(sha, ttl_ms, grant)   remote:leave_queue(grant)
 *     remote:subscription(verb, grant, with_name) -> bytes   remote:status(sha) -> bytes
 *     remote:mismatch(stored) -> message   remote:lost_before_release() -> errtab
 *     remote:not_held(why) -> errtab
 *   core.redis_renew(sha, ttl_ms, remotes, grants)  core.redis_fenced_write(sha, key, token, value)
 *   core.redis_script_load(script)  core.redis_auth(username|nil, password)  core.redis_select(db)
 *   core.redis_client_name(session_hex, role)  core.redis_subscription(verb, channel) -> bytes
 *   core.REDIS_SCRIPTS = {"grant", "release", "renew", "fenced_write", "status"}
 *   core.REDIS_LOSSES = {command_failed = "the command connection failed", ...}: why a session
 *     or a grant is lost, in the core's words
 *   core.redis_where(settings) -> "Redis at host:port" | "Redis at unix:path": the server as
 *     the core's messages name it (settings: path, host, port; 0 or nil the default)
 *   core.redis_lost_error(where, why[, waiting_for]), core.redis_unconfirmed_error(where),
 *   core.redis_unreachable_error(where, reason), core.redis_broken_error(where, doing, err)
 *     -> errtab (the core's messages; err a cosocket's: "timeout", "closed", ...)
 *   core.REDIS_RECHECK_INTERVAL
 *   core.redis_reader() -> reader: feed(bytes); next() -> reply | nil (incomplete) |
 *     false, message (a protocol error: the connection is unusable)
 *   reply:grant() -> "granted", token (a decimal string, as handle:token() gives it) | "contended",
 * holders, foreign, score | "not_subscribed" | "maximum_mismatch", stored | nil, errtab
 *   reply:release() / reply:fenced_write() / reply:leave_queue() -> true | false | nil, errtab
 *   reply:renew(n) -> {true|false, ...} | nil, errtab
 *   reply:script_load(where) -> sha | nil, errtab ("<where> refused SCRIPT LOAD: ...")
 *   reply:status(what, where) -> true | nil, errtab ("<where> refused <what>: ..." for an error)
 *   reply:name_status() -> the table of session:status(name) (l_redis.c) | nil, errtab
 *   reply:push() -> kind, channel | nil     reply:noscript() -> boolean
 *   reply:error(what) -> errtab
 */
#include "l_private.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"

#define PL_REMOTE_MT "portalock.core.redis_remote"
#define PL_READER_MT "portalock.core.redis_reader"
#define PL_REPLY_MT "portalock.core.redis_reply"

static const char *const script_names[] = {
    [PL_SCRIPT_GRANT] = "grant",   [PL_SCRIPT_RELEASE] = "release",
    [PL_SCRIPT_RENEW] = "renew",   [PL_SCRIPT_FENCED_WRITE] = "fenced_write",
    [PL_SCRIPT_STATUS] = "status",
};
/* A script added to the core needs its name here (a missing one would be a NULL name). */
_Static_assert(sizeof script_names / sizeof *script_names == PL_SCRIPT_COUNT,
               "every script of the Redis backend has a name");

typedef struct l_remote {
  portalock_redis_remote_t *remote; /* first: the box l_acquisition.c checks; NULL once freed */
} l_remote;

typedef struct l_reader {
  redisReader *reader;
} l_reader;

typedef struct l_reply {
  redisReply *reply;
} l_reply;

/* ---------------------------------------------------------------- commands */

static void push_error(lua_State *L, portalock_status status, const portalock_error *err) {
  portalock_error copy = *err;
  copy.status = status;
  pl_push_failure(L, &copy);
  lua_remove(L, -2); /* the nil: leaves the error table */
}

/* Pushes the command as RESP and frees it; raises when it could not be built (memory). */
static int push_command(lua_State *L, int built, pl_rcommand *cmd) {
  if (built < 0) return luaL_error(L, "not enough memory to build a Redis command");
  size_t len;
  char *resp = pl_rcommand_format(cmd, &len);
  pl_rcommand_free(cmd);
  if (resp == NULL) return luaL_error(L, "not enough memory to build a Redis command");
  lua_pushlstring(L, resp, len);
  redisFreeCommand(resp);
  return 1;
}

/* A string argument without NUL bytes (names, channels and keys are C strings in the core). */
static const char *check_cstring(lua_State *L, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(s) == len, idx, "must not contain NUL bytes");
  return s;
}

static long check_long(lua_State *L, int idx, long low) {
  lua_Number n = luaL_checknumber(L, idx);
  /* LONG_MAX rounds up to 2^63 as a double: the bound is 2^63 itself, excluded, checked before
   * the conversion (converting an out-of-range double is undefined). */
  int in_range = n >= (lua_Number)low && n < -(lua_Number)LONG_MIN && n == (lua_Number)(long)n;
  if (!in_range)
    luaL_argerror(L, idx, lua_pushfstring(L, "must be an integer in range (got %f)", n));
  return (long)n;
}

static pl_script check_script(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  for (int i = 0; i < PL_SCRIPT_COUNT; i++)
    if (strcmp(name, script_names[i]) == 0) return (pl_script)i;
  return (pl_script)luaL_argerror(L, idx, "not a script of the Redis backend");
}

static l_remote *check_remote(lua_State *L) {
  l_remote *r = (l_remote *)luaL_checkudata(L, 1, PL_REMOTE_MT);
  luaL_argcheck(L, r->remote != NULL, 1, "redis remote already freed");
  return r;
}

static pl_rgrant *remote_grant(lua_State *L) {
  return &check_remote(L)->remote->grant;
}

/* core.redis_remote(name, maximum, is_lock) */
static int r_remote(lua_State *L) {
  const char *name = check_cstring(L, 1);
  long maximum = check_long(L, 2, 1);
  int is_lock = lua_toboolean(L, 3);
  l_remote *r = (l_remote *)lua_newuserdatauv(L, sizeof(l_remote), 0);
  r->remote = NULL;
  luaL_setmetatable(L, PL_REMOTE_MT);
  portalock_error err;
  if (portalock_redis_remote_new(&r->remote, name, maximum, is_lock, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  return 1;
}

static int remote_gc(lua_State *L) {
  l_remote *r = (l_remote *)luaL_checkudata(L, 1, PL_REMOTE_MT);
  portalock_redis_remote_free(r->remote);
  r->remote = NULL;
  return 0;
}

/* remote:begin(timeout, check_interval, fail_when_locked) */
static int remote_begin(lua_State *L) {
  l_remote *r = check_remote(L);
  double timeout = luaL_checknumber(L, 2), check_interval = luaL_checknumber(L, 3);
  portalock_acquisition acq;
  portalock_error err;
  portalock_status st = portalock_redis_remote_begin(&acq, r->remote, timeout, check_interval,
                                                     lua_toboolean(L, 4), &err);
  return pl_push_acquisition(L, st, &acq, &err);
}

/* remote:grant(sha, grant, session, ttl_ms, score, visible) */
static int remote_grant_command(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  const char *sha = check_cstring(L, 2), *grant = check_cstring(L, 3);
  const char *session = check_cstring(L, 4);
  long ttl_ms = check_long(L, 5, 1);
  const char *score = check_cstring(L, 6);
  pl_rcommand cmd;
  return push_command(L,
                      pl_rproto_grant(&cmd, sha, g->keys, grant, session, g->maximum, ttl_ms,
                                      g->lock ? g->name : "", score, lua_toboolean(L, 7)),
                      &cmd);
}

static int remote_release_command(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  pl_rcommand cmd;
  return push_command(L, pl_rproto_release(&cmd, check_cstring(L, 2), g->keys, check_cstring(L, 3)),
                      &cmd);
}

static int remote_leave_queue_command(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  pl_rcommand cmd;
  return push_command(L, pl_rproto_leave_queue(&cmd, g->keys, check_cstring(L, 2)), &cmd);
}

/* remote:renew(sha, ttl_ms, grant): the RENEW of this one grant (ensure). */
static int remote_renew_command(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  const char *sha = check_cstring(L, 2);
  long ttl_ms = check_long(L, 3, 1);
  char *grant = (char *)check_cstring(L, 4);
  char **keys = g->keys;
  pl_rcommand cmd;
  return push_command(L, pl_rproto_renew(&cmd, sha, ttl_ms, 1, &keys, &grant), &cmd);
}

/* remote:status(sha): the STATUS script of the name (who holds and waits). */
static int remote_status_command(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  pl_rcommand cmd;
  return push_command(L, pl_rproto_status(&cmd, check_cstring(L, 2), g->keys, g->name), &cmd);
}

/* remote:subscription(verb, grant, with_name) */
static int remote_subscription_command(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  static const char *const verbs[] = {"SUBSCRIBE", "UNSUBSCRIBE", NULL};
  const char *verb = verbs[luaL_checkoption(L, 2, NULL, verbs)];
  pl_rcommand cmd;
  return push_command(
      L,
      pl_rproto_subscription(&cmd, verb, check_cstring(L, 3), lua_toboolean(L, 4) ? g->name : NULL),
      &cmd);
}

/* remote:mismatch(stored): the core's INVALID message, for the caller to raise at its caller's
 * level (an acquire's bad argument). */
static int remote_mismatch(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  long stored = check_long(L, 2, LONG_MIN);
  portalock_error err;
  pl_rgrant_mismatch(g, stored, &err);
  lua_pushstring(L, err.message);
  return 1;
}

static int remote_lost_before_release(lua_State *L) {
  portalock_error err;
  portalock_status st = pl_rgrant_lost_before_release(remote_grant(L), &err);
  push_error(L, st, &err);
  return 1;
}

static int remote_not_held(lua_State *L) {
  pl_rgrant *g = remote_grant(L);
  portalock_error err;
  portalock_status st = pl_rgrant_not_held(g, check_cstring(L, 2), &err);
  push_error(L, st, &err);
  return 1;
}

/* core.redis_where(settings) */
static int r_where(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  portalock_redis_options opts = {0};
  lua_getfield(L, 1, "path"); /* each left on the stack: the strings stay alive */
  opts.path = lua_isnil(L, -1) ? NULL : check_cstring(L, -1);
  lua_getfield(L, 1, "host");
  opts.host = lua_isnil(L, -1) ? NULL : check_cstring(L, -1);
  lua_getfield(L, 1, "port");
  opts.port = lua_isnil(L, -1) ? 0 : (int)check_long(L, -1, 0);
  char where[PL_RWHERE_MAX];
  pl_rconn_where(&opts, where, sizeof where);
  lua_pushstring(L, where);
  return 1;
}

/* core.redis_lost_error(where, why[, waiting_for]) */
static int r_lost_error(lua_State *L) {
  const char *where = check_cstring(L, 1), *why = check_cstring(L, 2);
  const char *waiting_for = lua_isnoneornil(L, 3) ? NULL : check_cstring(L, 3);
  portalock_error err;
  portalock_status st = pl_rlost_error(where, waiting_for, why, &err);
  push_error(L, st, &err);
  return 1;
}

/* core.redis_unconfirmed_error(where) */
static int r_unconfirmed_error(lua_State *L) {
  portalock_error err;
  portalock_status st = pl_rgrant_unconfirmed(check_cstring(L, 1), &err);
  push_error(L, st, &err);
  return 1;
}

/* core.redis_unreachable_error(where, reason) */
static int r_unreachable_error(lua_State *L) {
  portalock_error err;
  portalock_status st = pl_rconn_unreachable(0, check_cstring(L, 1), check_cstring(L, 2), &err);
  push_error(L, st, &err);
  return 1;
}

/* core.redis_broken_error(where, doing, err): a cosocket's error as connection.c words a broken
 * connection ("timeout" is command_timeout's, "closed" the server's end). */
static int r_broken_error(lua_State *L) {
  const char *where = check_cstring(L, 1), *doing = check_cstring(L, 2);
  const char *problem = luaL_checkstring(L, 3);
  int errnum = strcmp(problem, "timeout") == 0  ? ETIMEDOUT
               : strcmp(problem, "closed") == 0 ? 0
                                                : EIO;
  portalock_error err;
  portalock_status st = pl_rconn_broken(where, errnum, doing, errnum == EIO ? problem : NULL, &err);
  push_error(L, st, &err);
  return 1;
}

/* core.redis_renew(sha, ttl_ms, remotes, grants): one RENEW of every grant (the session's
 * keep-alive); remotes[i] is the remote whose grant grants[i] is. */
static int r_renew(lua_State *L) {
  const char *sha = check_cstring(L, 1);
  long ttl_ms = check_long(L, 2, 1);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, 3);
  luaL_argcheck(L, n > 0 && n == (size_t)lua_rawlen(L, 4), 4,
                "must name one grant per remote, and at least one");
  /* Scratch arrays in userdata: collected with the call's stack, also when a check raises. */
  char ***keys = (char ***)lua_newuserdatauv(L, n * sizeof *keys, 0);
  char **grants = (char **)lua_newuserdatauv(L, n * sizeof *grants, 0);
  int top = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 3, (int)i + 1);
    l_remote *r = (l_remote *)luaL_testudata(L, -1, PL_REMOTE_MT);
    if (r == NULL || r->remote == NULL) return luaL_argerror(L, 3, "must hold live remotes");
    keys[i] = r->remote->grant.keys;
    lua_rawgeti(L, 4, (int)i + 1); /* left on the stack: the string stays alive */
    grants[i] = (char *)lua_tostring(L, -1);
    if (grants[i] == NULL) return luaL_argerror(L, 4, "must hold strings");
  }
  pl_rcommand cmd;
  int built = pl_rproto_renew(&cmd, sha, ttl_ms, n, keys, grants);
  lua_settop(L, top);
  return push_command(L, built, &cmd);
}

static int r_fenced_write(lua_State *L) {
  const char *sha = check_cstring(L, 1), *key = check_cstring(L, 2);
  uint64_t token = pl_check_redis_token(L, 3);
  size_t len;
  const char *value = luaL_checklstring(L, 4, &len);
  pl_rcommand cmd;
  return push_command(L, pl_rproto_fenced_write(&cmd, sha, key, token, value, len), &cmd);
}

static int r_script_load(lua_State *L) {
  pl_rcommand cmd;
  return push_command(L, pl_rproto_script_load(&cmd, check_script(L, 1)), &cmd);
}

static int r_auth(lua_State *L) {
  const char *username = lua_isnoneornil(L, 1) ? NULL : check_cstring(L, 1);
  pl_rcommand cmd;
  return push_command(L, pl_rproto_auth(&cmd, username, check_cstring(L, 2)), &cmd);
}

static int r_select(lua_State *L) {
  pl_rcommand cmd;
  return push_command(L, pl_rproto_select(&cmd, check_long(L, 1, 0)), &cmd);
}

static int r_client_name(lua_State *L) {
  pl_rcommand cmd;
  return push_command(L, pl_rproto_client_name(&cmd, check_cstring(L, 1), check_cstring(L, 2)),
                      &cmd);
}

/* core.redis_subscription(verb, channel): the session's own channel. */
static int r_subscription(lua_State *L) {
  static const char *const verbs[] = {"SUBSCRIBE", "UNSUBSCRIBE", NULL};
  const char *verb = verbs[luaL_checkoption(L, 1, NULL, verbs)];
  pl_rcommand cmd;
  return push_command(L, pl_rproto_subscription(&cmd, verb, check_cstring(L, 2), NULL), &cmd);
}

/* ---------------------------------------------------------------- the reader */

static int r_reader(lua_State *L) {
  l_reader *r = (l_reader *)lua_newuserdatauv(L, sizeof(l_reader), 0);
  r->reader = NULL;
  luaL_setmetatable(L, PL_READER_MT);
  r->reader = redisReaderCreate();
  if (r->reader == NULL) return luaL_error(L, "not enough memory for a Redis reply reader");
  return 1;
}

static l_reader *check_reader(lua_State *L) {
  l_reader *r = (l_reader *)luaL_checkudata(L, 1, PL_READER_MT);
  luaL_argcheck(L, r->reader != NULL, 1, "redis reader already freed");
  return r;
}

static int reader_gc(lua_State *L) {
  l_reader *r = (l_reader *)luaL_checkudata(L, 1, PL_READER_MT);
  if (r->reader != NULL) redisReaderFree(r->reader);
  r->reader = NULL;
  return 0;
}

/* reader:feed(bytes): hiredis copies them. */
static int reader_feed(lua_State *L) {
  l_reader *r = check_reader(L);
  size_t len;
  const char *bytes = luaL_checklstring(L, 2, &len);
  if (redisReaderFeed(r->reader, bytes, len) != REDIS_OK)
    return luaL_error(L, "Redis reply reader: %s", r->reader->errstr);
  return 0;
}

static int reader_next(lua_State *L) {
  l_reader *r = check_reader(L);
  /* The userdata first: a reply taken from the reader is never left unowned by a raise. */
  l_reply *box = (l_reply *)lua_newuserdatauv(L, sizeof(l_reply), 0);
  box->reply = NULL;
  luaL_setmetatable(L, PL_REPLY_MT);
  void *reply = NULL;
  if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "Redis protocol error: %s", r->reader->errstr);
    return 2;
  }
  if (reply == NULL) {
    lua_pushnil(L);
    return 1;
  }
  box->reply = (redisReply *)reply;
  return 1;
}

/* ---------------------------------------------------------------- replies */

static const redisReply *check_reply(lua_State *L) {
  l_reply *r = (l_reply *)luaL_checkudata(L, 1, PL_REPLY_MT);
  luaL_argcheck(L, r->reply != NULL, 1, "redis reply already freed");
  return r->reply;
}

static int reply_gc(lua_State *L) {
  l_reply *r = (l_reply *)luaL_checkudata(L, 1, PL_REPLY_MT);
  if (r->reply != NULL) freeReplyObject(r->reply);
  r->reply = NULL;
  return 0;
}

/* nil, the error table of a reply that is not what `what` expects. */
static int push_bad_reply(lua_State *L, const redisReply *reply, const char *what) {
  portalock_error err;
  pl_rproto_error(reply, what, &err);
  return pl_push_failure(L, &err);
}

static int reply_grant(lua_State *L) {
  const redisReply *reply = check_reply(L);
  pl_grant_reply r;
  pl_rproto_grant_reply(reply, &r);
  switch (r.outcome) {
  case PL_GRANTED:
    lua_pushliteral(L, "granted");
    pl_push_redis_token(L, r.token);
    return 2;
  case PL_CONTENDED:
    lua_pushliteral(L, "contended");
    lua_pushinteger(L, (lua_Integer)r.holders);
    lua_pushinteger(L, (lua_Integer)r.foreign);
    lua_pushstring(L, r.score);
    return 4;
  case PL_NOT_SUBSCRIBED:
    lua_pushliteral(L, "not_subscribed");
    return 1;
  case PL_MAXIMUM_MISMATCH:
    lua_pushliteral(L, "maximum_mismatch");
    lua_pushinteger(L, (lua_Integer)r.stored_maximum);
    return 2;
  case PL_BAD_REPLY:
    break;
  }
  return push_bad_reply(L, reply, "acquiring a Redis lock");
}

/* A reply of 1 or 0 (RELEASE, FENCED_WRITE, ZREM) as true or false. */
static int push_flag(lua_State *L, int flag, const redisReply *reply, const char *what) {
  if (flag < 0) return push_bad_reply(L, reply, what);
  lua_pushboolean(L, flag);
  return 1;
}

static int reply_release(lua_State *L) {
  const redisReply *reply = check_reply(L);
  return push_flag(L, pl_rproto_release_reply(reply), reply, "releasing a Redis lock");
}

static int reply_fenced_write(lua_State *L) {
  const redisReply *reply = check_reply(L);
  return push_flag(L, pl_rproto_fenced_write_reply(reply), reply, "fenced write");
}

static int reply_leave_queue(lua_State *L) {
  const redisReply *reply = check_reply(L);
  return push_flag(L, pl_rproto_leave_queue_reply(reply), reply, "leaving a Redis queue");
}

/* reply:renew(n) -> {alive...} */
static int reply_renew(lua_State *L) {
  const redisReply *reply = check_reply(L);
  long n = check_long(L, 2, 1);
  luaL_argcheck(L, n <= INT_MAX, 2, "too many grants");
  int *alive = (int *)lua_newuserdatauv(L, (size_t)n * sizeof *alive, 0);
  if (pl_rproto_renew_reply(reply, (size_t)n, alive) < 0)
    return push_bad_reply(L, reply, "renewing a Redis lock");
  lua_createtable(L, (int)n, 0);
  for (long i = 0; i < n; i++) {
    lua_pushboolean(L, alive[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* nil, the error table of `where` refusing `what` (connection.c's words). */
static int push_refused(lua_State *L, const redisReply *reply, const char *what,
                        const char *where) {
  portalock_error err;
  pl_rconn_refused_by(where, what, reply, &err);
  return pl_push_failure(L, &err);
}

static int reply_script_load(lua_State *L) {
  const redisReply *reply = check_reply(L);
  const char *where = check_cstring(L, 2);
  char sha[41];
  if (pl_rproto_script_load_reply(reply, sha) < 0)
    return push_refused(L, reply, "SCRIPT LOAD", where);
  lua_pushstring(L, sha);
  return 1;
}

/* reply:status(what, where): true unless the server answered with an error. */
static int reply_status(lua_State *L) {
  const redisReply *reply = check_reply(L);
  const char *what = check_cstring(L, 2), *where = check_cstring(L, 3);
  if (reply->type == REDIS_REPLY_ERROR) return push_refused(L, reply, what, where);
  lua_pushboolean(L, 1);
  return 1;
}

static int reply_name_status(lua_State *L) {
  const redisReply *reply = check_reply(L);
  portalock_redis_status status;
  portalock_error err;
  if (pl_rstatus_read(reply, &status, &err) != PORTALOCK_OK) return pl_push_failure(L, &err);
  pl_push_redis_status(L, &status);
  portalock_redis_status_free(&status);
  return 1;
}

static int reply_push(lua_State *L) {
  pl_push push;
  if (pl_rproto_push(check_reply(L), &push) < 0) return 0;
  lua_pushstring(L, push.kind);
  lua_pushlstring(L, push.channel, push.channel_len);
  return 2;
}

static int reply_noscript(lua_State *L) {
  lua_pushboolean(L, pl_rproto_noscript(check_reply(L)));
  return 1;
}

static int reply_error(lua_State *L) {
  const redisReply *reply = check_reply(L);
  portalock_error err;
  portalock_status st = pl_rproto_error(reply, luaL_checkstring(L, 2), &err);
  push_error(L, st, &err);
  return 1;
}

/* ---------------------------------------------------------------- registration */

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void pl_open_redis_protocol(lua_State *L) {
  static const luaL_Reg remote_methods[] = {{"begin", remote_begin},
                                            {"grant", remote_grant_command},
                                            {"release", remote_release_command},
                                            {"renew", remote_renew_command},
                                            {"leave_queue", remote_leave_queue_command},
                                            {"subscription", remote_subscription_command},
                                            {"status", remote_status_command},
                                            {"mismatch", remote_mismatch},
                                            {"lost_before_release", remote_lost_before_release},
                                            {"not_held", remote_not_held},
                                            {NULL, NULL}};
  static const luaL_Reg reader_methods[] = {
      {"feed", reader_feed}, {"next", reader_next}, {NULL, NULL}};
  static const luaL_Reg reply_methods[] = {{"grant", reply_grant},
                                           {"release", reply_release},
                                           {"fenced_write", reply_fenced_write},
                                           {"leave_queue", reply_leave_queue},
                                           {"renew", reply_renew},
                                           {"script_load", reply_script_load},
                                           {"status", reply_status},
                                           {"name_status", reply_name_status},
                                           {"push", reply_push},
                                           {"noscript", reply_noscript},
                                           {"error", reply_error},
                                           {NULL, NULL}};
  static const luaL_Reg functions[] = {{"redis_remote", r_remote},
                                       {"redis_renew", r_renew},
                                       {"redis_fenced_write", r_fenced_write},
                                       {"redis_script_load", r_script_load},
                                       {"redis_auth", r_auth},
                                       {"redis_select", r_select},
                                       {"redis_client_name", r_client_name},
                                       {"redis_subscription", r_subscription},
                                       {"redis_reader", r_reader},
                                       {"redis_where", r_where},
                                       {"redis_lost_error", r_lost_error},
                                       {"redis_broken_error", r_broken_error},
                                       {"redis_unconfirmed_error", r_unconfirmed_error},
                                       {"redis_unreachable_error", r_unreachable_error},
                                       {NULL, NULL}};
  new_class(L, PL_REMOTE_MT, remote_methods, remote_gc);
  new_class(L, PL_READER_MT, reader_methods, reader_gc);
  new_class(L, PL_REPLY_MT, reply_methods, reply_gc);
  luaL_setfuncs(L, functions, 0);
  lua_createtable(L, PL_SCRIPT_COUNT, 0);
  for (int i = 0; i < PL_SCRIPT_COUNT; i++) {
    lua_pushstring(L, script_names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "REDIS_SCRIPTS");
  lua_createtable(L, 0, PL_LOSSES);
  for (int i = 0; i < PL_LOSSES; i++) {
    lua_pushstring(L, pl_losses[i]);
    lua_setfield(L, -2, pl_loss_names[i]);
  }
  lua_setfield(L, -2, "REDIS_LOSSES");
  lua_pushnumber(L, PORTALOCK_REDIS_RECHECK_INTERVAL);
  lua_setfield(L, -2, "REDIS_RECHECK_INTERVAL");
}
