/*
 * RedisLock and RedisSemaphore (portalock.h, "Redis (distributed)"), built only with hiredis
 * (PORTALOCK_HAVE_REDIS). lua/portalock/redis.lua validates options and owns the session cache.
 *   core.redis_parse_url(url) -> {host=, port=, path=, db=, username=, password=} | nil, problem
 *   core.redis_session(opts)  -> session | nil, errtab   (opts: url and/or the option fields)
 *     session:lost() -> nil | reason    session:fd()    session:close()
 *     session:fenced_write(key, token, value) -> true | false (rejected) | nil, errtab
 *       (token: a decimal string, as handle:token() gives it)
 *     session:status(name) -> {maximum=, waiting=, foreign=, holders={{session=, token=, lease=},
 *       ...}} | nil, errtab   (portalock_redis_name_status; maximum nil when none is stored)
 *   core.redis_lock(session, name[, visible]), core.redis_semaphore(session, name, maximum)
 *     -> handle
 *     handle:begin(timeout, check_interval, fail_when_locked) -> an acquisition (l_acquisition.c)
 *     handle:release() -> true | nil, errtab    handle:check() -> true | false, reason
 *     handle:ensure() -> true | nil, errtab
 *     handle:token() -> the token (a decimal string), nil when not held
 *     handle:name()    handle:maximum()
 * A handle keeps its session alive (its user value); the session keeps a list of its handles,
 * so that closing or collecting it frees them first, as portalock_redis_session_free asks.
 */
#include "l_private.h"

#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PL_REDIS_SESSION_MT "portalock.core.redis_session"
#define PL_REDIS_HANDLE_MT "portalock.core.redis_handle"

/* Tokens reach Lua as decimal strings on every version: they are 64-bit counters (the server's
 * clock in microseconds, or more), which 5.1 and LuaJIT numbers hold exactly only below 2^53
 * and print as "1.7966229997446e+15". */
#define PL_TOKEN_DIGITS 20 /* UINT64_MAX */

typedef struct l_redis_handle l_redis_handle;

typedef struct l_redis_session {
  portalock_redis_session_t *session; /* NULL once closed */
  l_redis_handle *handles;            /* the live handles on it */
  char strings[];                     /* the option strings, which the session may point into */
} l_redis_session;

struct l_redis_handle {
  void *object; /* first: the box l_acquisition.c checks; NULL once freed */
  int is_semaphore;
  l_redis_session *owner;
  l_redis_handle *prev, *next;
};

/* ---------------------------------------------------------------- options */

/* The string options of a session, in the order they are copied into its userdata. */
static const char *const string_options[] = {"url", "host", "path", "username", "password"};
enum { OPT_URL, OPT_HOST, OPT_PATH, OPT_USERNAME, OPT_PASSWORD, OPT_STRINGS };

static size_t copy_string(char *buf, size_t *used, const char *s) {
  size_t at = *used, len = strlen(s) + 1;
  memcpy(buf + at, s, len);
  *used += len;
  return at;
}

/* The value at `idx` as a message quotes it: a number, or its type's name. */
static const char *describe(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) return lua_pushfstring(L, "%f", lua_tonumber(L, idx));
  return luaL_typename(L, idx);
}

/* The integer option `key` of the table at `idx` (an int), or `fallback` when it is not given.
 * Only the type is checked here: the range is the core's rule (portalock_redis_session_open). */
static int opt_int(lua_State *L, int idx, const char *key, int fallback) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return fallback;
  }
  lua_Number n = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(n >= INT_MIN && n <= INT_MAX) || n != (lua_Number)(int)n)
    luaL_error(L, "bad option '%s' (%s): must be an integer", key, describe(L, -1));
  lua_pop(L, 1);
  return (int)n;
}

/* The string options of the table at 1, left on the stack (see l_options.c), and the room
 * their copies need (with the parts of the url). */
typedef struct l_given {
  const char *strings[OPT_STRINGS];
  size_t need;
} l_given;

static void read_given(lua_State *L, l_given *g) {
  g->need = 0;
  for (int i = 0; i < OPT_STRINGS; i++) {
    g->strings[i] = pl_opt_string(L, 1, string_options[i]);
    if (g->strings[i] != NULL) g->need += strlen(g->strings[i]) + 1;
  }
  if (g->strings[OPT_URL] != NULL) g->need += strlen(g->strings[OPT_URL]) + 1;
}

/* The options of the table at 1: the defaults, then the url's parts (when given), then the
 * fields; their strings copied into `buf` (g->need bytes). Only types are checked here: the
 * rules are the core's (portalock_redis_options_check). */
static portalock_status fill_options(lua_State *L, const l_given *g, char *buf,
                                     portalock_redis_options *opts, portalock_error *err) {
  portalock_redis_options_init(opts);
  opts->connect_timeout = pl_opt_number(L, 1, "connect_timeout", opts->connect_timeout);
  opts->command_timeout = pl_opt_number(L, 1, "command_timeout", opts->command_timeout);
  opts->ttl = pl_opt_number(L, 1, "ttl", opts->ttl);
  size_t used = 0, at[OPT_STRINGS] = {0};
  for (int i = 0; i < OPT_STRINGS; i++)
    if (g->strings[i] != NULL) at[i] = copy_string(buf, &used, g->strings[i]);
  if (g->strings[OPT_URL] != NULL &&
      portalock_redis_options_parse_url(opts, buf + at[OPT_URL], buf + used, g->need - used, err) !=
          PORTALOCK_OK)
    return err->status;
  if (g->strings[OPT_HOST] != NULL) opts->host = buf + at[OPT_HOST];
  if (g->strings[OPT_PATH] != NULL) opts->path = buf + at[OPT_PATH];
  if (g->strings[OPT_USERNAME] != NULL) opts->username = buf + at[OPT_USERNAME];
  if (g->strings[OPT_PASSWORD] != NULL) opts->password = buf + at[OPT_PASSWORD];
  opts->port = opt_int(L, 1, "port", opts->port);
  opts->db = opt_int(L, 1, "db", (int)opts->db);
  return portalock_redis_options_check(opts, err);
}

/* redis_session(opts) -> a session | nil, err. */
static int r_session(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  l_given g;
  read_given(L, &g);
  /* The strings live as long as the session: in its userdata, not in Lua's values. */
  l_redis_session *s = (l_redis_session *)lua_newuserdatauv(L, sizeof(l_redis_session) + g.need, 0);
  s->session = NULL;
  s->handles = NULL;
  luaL_setmetatable(L, PL_REDIS_SESSION_MT);
  portalock_redis_options opts;
  portalock_error err;
  if (fill_options(L, &g, s->strings, &opts, &err) != PORTALOCK_OK ||
      portalock_redis_session_open(&s->session, &opts, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err); /* INVALID raises the core's message, naming the option */
  return 1;
}

/* redis_options_check(opts) -> true | nil, the core's message: the session's options checked
 * by the core's rules without connecting. */
static int r_options_check(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  l_given g;
  read_given(L, &g);
  char *scratch = (char *)lua_newuserdatauv(L, g.need + 1, 0);
  portalock_redis_options opts;
  portalock_error err;
  if (fill_options(L, &g, scratch, &opts, &err) != PORTALOCK_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err.message);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void set_string_field(lua_State *L, const char *key, const char *value) {
  if (value == NULL) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

/* redis_parse_url(url) -> the parts | nil, the core's message. */
static int r_parse_url(lua_State *L) {
  size_t len;
  const char *url = luaL_checklstring(L, 1, &len);
  if (strlen(url) != len) {
    lua_pushnil(L);
    lua_pushliteral(L, "must not contain NUL bytes");
    return 2;
  }
  char *buf = (char *)lua_newuserdatauv(L, len + 1, 0); /* collected with the call's stack */
  portalock_redis_options opts;
  portalock_redis_options_init(&opts);
  portalock_error err;
  if (portalock_redis_options_parse_url(&opts, url, buf, len + 1, &err) != PORTALOCK_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err.message);
    return 2;
  }
  lua_createtable(L, 0, 6);
  set_string_field(L, "host", opts.host);
  set_string_field(L, "path", opts.path);
  set_string_field(L, "username", opts.username);
  set_string_field(L, "password", opts.password);
  lua_pushinteger(L, opts.port);
  lua_setfield(L, -2, "port");
  lua_pushinteger(L, (lua_Integer)opts.db);
  lua_setfield(L, -2, "db");
  return 1;
}

/* ---------------------------------------------------------------- handles */

static void free_handle(l_redis_handle *h) {
  if (h->object == NULL) return;
  if (h->is_semaphore)
    portalock_redis_semaphore_free((portalock_redis_semaphore_t *)h->object);
  else
    portalock_redis_lock_free((portalock_redis_lock_t *)h->object);
  h->object = NULL;
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    h->owner->handles = h->next;
  if (h->next != NULL) h->next->prev = h->prev;
  h->prev = h->next = NULL;
}

static l_redis_handle *check_handle(lua_State *L) {
  l_redis_handle *h = (l_redis_handle *)luaL_checkudata(L, 1, PL_REDIS_HANDLE_MT);
  luaL_argcheck(L, h->object != NULL, 1, "redis handle already freed (its session is closed)");
  return h;
}

static l_redis_session *check_session_at(lua_State *L, int idx) {
  l_redis_session *s = (l_redis_session *)luaL_checkudata(L, idx, PL_REDIS_SESSION_MT);
  luaL_argcheck(L, s->session != NULL, idx, "redis session already closed");
  return s;
}

/* Anchors the session at index 1 to the new handle on top of the stack. */
static void anchor_session(lua_State *L) {
#if LUA_VERSION_NUM == 501
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, -2);
#elif LUA_VERSION_NUM < 504
  lua_pushvalue(L, 1);
  lua_setuservalue(L, -2);
#else
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
#endif
}

static const char *check_name(lua_State *L, int idx) {
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(name) == len, idx, "must not contain NUL bytes");
  return name;
}

/* A new handle on the session at index 1, linked to it, with `object` filled by `make`. */
static l_redis_handle *new_handle(lua_State *L, l_redis_session *s, int is_semaphore) {
  l_redis_handle *h = (l_redis_handle *)lua_newuserdatauv(L, sizeof(l_redis_handle), 1);
  h->object = NULL;
  h->is_semaphore = is_semaphore;
  h->owner = s;
  h->prev = h->next = NULL;
  luaL_setmetatable(L, PL_REDIS_HANDLE_MT);
  anchor_session(L);
  return h;
}

static void link_handle(l_redis_handle *h) {
  h->next = h->owner->handles;
  if (h->next != NULL) h->next->prev = h;
  h->owner->handles = h;
}

/* redis_lock(session, name[, visible]): visible = false keeps the lock out of the channel
 * `name`, where Python portalocker looks for holders (portalock_redis_lock_set_visible). */
static int r_lock(lua_State *L) {
  l_redis_session *s = check_session_at(L, 1);
  const char *name = check_name(L, 2);
  int visible = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  l_redis_handle *h = new_handle(L, s, 0);
  portalock_error err;
  if (portalock_redis_lock_new((portalock_redis_lock_t **)&h->object, s->session, name, &err) !=
      PORTALOCK_OK)
    return pl_push_failure(L, &err);
  link_handle(h);
  if (!visible && portalock_redis_lock_set_visible((portalock_redis_lock_t *)h->object, 0, &err) !=
                      PORTALOCK_OK)
    return pl_push_failure(L, &err);
  return 1;
}

static int r_semaphore(lua_State *L) {
  l_redis_session *s = check_session_at(L, 1);
  const char *name = check_name(L, 2);
  lua_Number maximum = luaL_checknumber(L, 3);
  luaL_argcheck(L, maximum >= 1 && maximum <= 0x7fffffffL && maximum == (lua_Number)(long)maximum,
                3, "must be an integer >= 1");
  l_redis_handle *h = new_handle(L, s, 1);
  portalock_error err;
  if (portalock_redis_semaphore_new((portalock_redis_semaphore_t **)&h->object, s->session, name,
                                    (long)maximum, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  link_handle(h);
  return 1;
}

/* The token as a decimal string, or nil for 0 (no grant). */
void pl_push_redis_token(lua_State *L, uint64_t token) {
  if (token == 0) {
    lua_pushnil(L);
    return;
  }
  char digits[PL_TOKEN_DIGITS + 1];
  snprintf(digits, sizeof digits, "%" PRIu64, token);
  lua_pushstring(L, digits);
}

static int push_ok(lua_State *L, portalock_status status, const portalock_error *err) {
  if (status != PORTALOCK_OK) return pl_push_failure(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* h:begin(timeout, check_interval, fail_when_locked) -> an acquisition (l_acquisition.c) */
static int h_begin(lua_State *L) {
  l_redis_handle *h = check_handle(L);
  double timeout = luaL_checknumber(L, 2), check_interval = luaL_checknumber(L, 3);
  int fail_when_locked = lua_toboolean(L, 4);
  portalock_acquisition acq;
  portalock_error err;
  portalock_status st =
      h->is_semaphore
          ? portalock_redis_semaphore_begin(&acq, (portalock_redis_semaphore_t *)h->object, timeout,
                                            check_interval, fail_when_locked, &err)
          : portalock_redis_lock_begin(&acq, (portalock_redis_lock_t *)h->object, timeout,
                                       check_interval, fail_when_locked, &err);
  return pl_push_acquisition(L, st, &acq, &err);
}

static int h_release(lua_State *L) {
  l_redis_handle *h = check_handle(L);
  portalock_error err;
  portalock_status st =
      h->is_semaphore
          ? portalock_redis_semaphore_release((portalock_redis_semaphore_t *)h->object, &err)
          : portalock_redis_lock_release((portalock_redis_lock_t *)h->object, &err);
  return push_ok(L, st, &err);
}

static const char *handle_check(const l_redis_handle *h) {
  return h->is_semaphore
             ? portalock_redis_semaphore_check((const portalock_redis_semaphore_t *)h->object)
             : portalock_redis_lock_check((const portalock_redis_lock_t *)h->object);
}

/* h:check() -> true | false, reason (no I/O) */
static int h_check(lua_State *L) {
  const char *why = handle_check(check_handle(L));
  lua_pushboolean(L, why == NULL);
  if (why == NULL) return 1;
  lua_pushstring(L, why);
  return 2;
}

static int h_ensure(lua_State *L) {
  l_redis_handle *h = check_handle(L);
  portalock_error err;
  portalock_status st =
      h->is_semaphore
          ? portalock_redis_semaphore_ensure((portalock_redis_semaphore_t *)h->object, &err)
          : portalock_redis_lock_ensure((portalock_redis_lock_t *)h->object, &err);
  return push_ok(L, st, &err);
}

static int h_token(lua_State *L) {
  l_redis_handle *h = check_handle(L);
  pl_push_redis_token(
      L, h->is_semaphore ? portalock_redis_semaphore_token((portalock_redis_semaphore_t *)h->object)
                         : portalock_redis_lock_token((portalock_redis_lock_t *)h->object));
  return 1;
}

static const char *handle_name(const l_redis_handle *h) {
  return h->is_semaphore
             ? portalock_redis_semaphore_name((const portalock_redis_semaphore_t *)h->object)
             : portalock_redis_lock_name((const portalock_redis_lock_t *)h->object);
}

static int h_name(lua_State *L) {
  lua_pushstring(L, handle_name(check_handle(L)));
  return 1;
}

/* The semaphore's maximum; 1 for a lock. */
static int h_maximum(lua_State *L) {
  l_redis_handle *h = check_handle(L);
  lua_pushinteger(L, h->is_semaphore ? (lua_Integer)portalock_redis_semaphore_maximum(
                                           (const portalock_redis_semaphore_t *)h->object)
                                     : 1);
  return 1;
}

static int h_gc(lua_State *L) {
  free_handle((l_redis_handle *)luaL_checkudata(L, 1, PL_REDIS_HANDLE_MT));
  return 0;
}

/* `<close>` of a handle: releases, never raises (a lost grant has nothing left to give back). */
static int h_close(lua_State *L) {
  l_redis_handle *h = (l_redis_handle *)luaL_checkudata(L, 1, PL_REDIS_HANDLE_MT);
  if (h->object == NULL) return 0;
  portalock_error err;
  if (h->is_semaphore)
    portalock_redis_semaphore_release((portalock_redis_semaphore_t *)h->object, &err);
  else
    portalock_redis_lock_release((portalock_redis_lock_t *)h->object, &err);
  return 0;
}

static int h_tostring(lua_State *L) {
  l_redis_handle *h = (l_redis_handle *)luaL_checkudata(L, 1, PL_REDIS_HANDLE_MT);
  const char *kind = h->is_semaphore ? "redis semaphore" : "redis lock";
  if (h->object == NULL) {
    lua_pushfstring(L, "portalock.core %s (freed)", kind);
    return 1;
  }
  const char *why = handle_check(h);
  lua_pushfstring(L, "portalock.core %s '%s' (%s)", kind, handle_name(h),
                  why == NULL ? "held" : why);
  return 1;
}

/* ---------------------------------------------------------------- sessions */

static void close_session(l_redis_session *s) {
  while (s->handles != NULL)
    free_handle(s->handles);
  portalock_redis_session_free(s->session);
  s->session = NULL;
}

static int s_lost(lua_State *L) {
  const char *why = portalock_redis_session_lost(check_session_at(L, 1)->session);
  if (why == NULL) return 0;
  lua_pushstring(L, why);
  return 1;
}

static int s_fd(lua_State *L) {
  lua_pushinteger(L, portalock_redis_session_fd(check_session_at(L, 1)->session));
  return 1;
}

/* close() (and `__close`, `__gc`): frees its handles (their grants end), then the session. */
static int s_close(lua_State *L) {
  close_session((l_redis_session *)luaL_checkudata(L, 1, PL_REDIS_SESSION_MT));
  return 0;
}

/* The token at `idx`: a decimal string of a 64-bit counter above 0, as pl_push_redis_token makes
 * it. */
uint64_t pl_check_redis_token(lua_State *L, int idx) {
  size_t len = 0;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  uint64_t token = 0;
  int ok = s != NULL && len >= 1 && len <= PL_TOKEN_DIGITS;
  for (size_t i = 0; ok && i < len; i++) {
    unsigned digit = (unsigned)(s[i] - '0');
    ok = digit <= 9 && token <= (UINT64_MAX - digit) / 10;
    token = token * 10 + digit;
  }
  if (!ok || token == 0) {
    const char *got = s == NULL   ? describe(L, idx)
                      : len <= 40 ? lua_pushfstring(L, "\"%s\"", s)
                                  : lua_pushfstring(L, "a string of %d bytes", (int)len);
    luaL_argerror(L, idx,
                  lua_pushfstring(L,
                                  "token must be a decimal string of a token above 0 (as "
                                  ".token gives it), got %s",
                                  got));
  }
  return token;
}

/* fenced_write(key, token, value) -> true (written) | false (a newer token wrote) | nil, errtab */
static int s_fenced_write(lua_State *L) {
  l_redis_session *s = check_session_at(L, 1);
  const char *key = check_name(L, 2);
  uint64_t token = pl_check_redis_token(L, 3);
  size_t len;
  const char *value = luaL_checklstring(L, 4, &len);
  int written = 0;
  portalock_error err;
  if (portalock_redis_fenced_write(s->session, key, token, value, len, &written, &err) !=
      PORTALOCK_OK)
    return pl_push_failure(L, &err);
  lua_pushboolean(L, written);
  return 1;
}

void pl_push_redis_status(lua_State *L, const portalock_redis_status *status) {
  lua_createtable(L, 0, 4);
  if (status->maximum > 0) {
    lua_pushinteger(L, (lua_Integer)status->maximum);
    lua_setfield(L, -2, "maximum");
  }
  lua_pushinteger(L, (lua_Integer)status->waiting);
  lua_setfield(L, -2, "waiting");
  lua_pushinteger(L, (lua_Integer)status->foreign);
  lua_setfield(L, -2, "foreign");
  lua_createtable(L, (int)status->count, 0);
  for (size_t i = 0; i < status->count; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, status->holders[i].session);
    lua_setfield(L, -2, "session");
    pl_push_redis_token(L, status->holders[i].token);
    lua_setfield(L, -2, "token");
    lua_pushnumber(L, status->holders[i].lease);
    lua_setfield(L, -2, "lease");
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "holders");
}

/* status(name) -> the table above | nil, errtab */
static int s_status(lua_State *L) {
  l_redis_session *s = check_session_at(L, 1);
  const char *name = check_name(L, 2);
  portalock_redis_status st;
  portalock_error err;
  if (portalock_redis_name_status(s->session, name, &st, &err) != PORTALOCK_OK) {
    portalock_redis_status_free(&st);
    return pl_push_failure(L, &err);
  }
  pl_push_redis_status(L, &st);
  portalock_redis_status_free(&st);
  return 1;
}

static int s_tostring(lua_State *L) {
  l_redis_session *s = (l_redis_session *)luaL_checkudata(L, 1, PL_REDIS_SESSION_MT);
  const char *why = s->session == NULL ? "closed" : portalock_redis_session_lost(s->session);
  lua_pushfstring(L, "portalock.core redis session (%s)", why == NULL ? "alive" : why);
  return 1;
}

void pl_open_redis(lua_State *L) {
  static const luaL_Reg handle_methods[] = {
      {"begin", h_begin}, {"release", h_release}, {"check", h_check},     {"ensure", h_ensure},
      {"token", h_token}, {"name", h_name},       {"maximum", h_maximum}, {NULL, NULL}};
  static const luaL_Reg handle_meta[] = {
      {"__gc", h_gc}, {"__close", h_close}, {"__tostring", h_tostring}, {NULL, NULL}};
  static const luaL_Reg session_methods[] = {{"lost", s_lost},     {"fd", s_fd},
                                             {"close", s_close},   {"fenced_write", s_fenced_write},
                                             {"status", s_status}, {NULL, NULL}};
  static const luaL_Reg session_meta[] = {
      {"__gc", s_close}, {"__close", s_close}, {"__tostring", s_tostring}, {NULL, NULL}};
  static const luaL_Reg functions[] = {
      {"redis_session", r_session},     {"redis_options_check", r_options_check},
      {"redis_parse_url", r_parse_url}, {"redis_lock", r_lock},
      {"redis_semaphore", r_semaphore}, {NULL, NULL}};
  luaL_newmetatable(L, PL_REDIS_HANDLE_MT);
  luaL_setfuncs(L, handle_meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, handle_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, PL_REDIS_SESSION_MT);
  luaL_setfuncs(L, session_meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, session_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
  /* the defaults, which the front ends document and key sessions by */
  portalock_redis_options defaults;
  portalock_redis_options_init(&defaults);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, PORTALOCK_REDIS_DEFAULT_PORT);
  lua_setfield(L, -2, "port");
  lua_pushinteger(L, (lua_Integer)defaults.db);
  lua_setfield(L, -2, "db");
  lua_pushnumber(L, defaults.connect_timeout);
  lua_setfield(L, -2, "connect_timeout");
  lua_pushnumber(L, defaults.command_timeout);
  lua_setfield(L, -2, "command_timeout");
  lua_pushnumber(L, defaults.ttl);
  lua_setfield(L, -2, "ttl");
  lua_setfield(L, -2, "REDIS_DEFAULTS");
  lua_pushinteger(L, PORTALOCK_REDIS_NAME_MAX);
  lua_setfield(L, -2, "REDIS_NAME_MAX");
}
