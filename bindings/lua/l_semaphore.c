/*
 * Counting semaphore handles: portalock.core.new_semaphore(name|nil, value, opts) and
 * portalock.core.semaphore_unlink(name). The Lua front end validates arguments and owns the
 * waiting loop over try(). The finalizer closes the semaphore without releasing anything.
 */
#include "l_private.h"

#include <limits.h>

#define PL_SEMAPHORE_MT "portalock.core.semaphore"

typedef struct l_semaphore {
  portalock_semaphore_t *sem; /* NULL once freed */
} l_semaphore;

static portalock_semaphore_t *check_sem(lua_State *L) {
  l_semaphore *s = (l_semaphore *)luaL_checkudata(L, 1, PL_SEMAPHORE_MT);
  luaL_argcheck(L, s->sem != NULL, 1, "semaphore handle already freed");
  return s->sem;
}

/* The number at `idx` as the core's `rule` allows it (numbers are doubles on 5.1): the rule
   is asked before the number becomes an integer. */
static unsigned long check_count(lua_State *L, int idx, portalock_rule rule) {
  lua_Number n = luaL_checknumber(L, idx);
  char buf[PORTALOCK_MESSAGE_MAX];
  const char *problem = portalock_rule_problem(rule, n, buf, sizeof buf);
  luaL_argcheck(L, problem == NULL, idx, problem);
  return (unsigned long)n;
}

static int s_new(lua_State *L) {
  const char *name = luaL_optstring(L, 1, NULL);
  unsigned long value = check_count(L, 2, PORTALOCK_RULE_SEMAPHORE_VALUE);
  portalock_semaphore_options opts;
  portalock_semaphore_options_init(&opts);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    opts.check_interval = pl_opt_number(L, 3, "check_interval", opts.check_interval);
    opts.timeout = pl_opt_number(L, 3, "timeout", opts.timeout);
    lua_getfield(L, 3, "perm");
    if (!lua_isnil(L, -1))
      opts.perm = (int)check_count(L, lua_gettop(L), PORTALOCK_RULE_SEMAPHORE_PERM);
    lua_pop(L, 1);
  }
  l_semaphore *s = (l_semaphore *)lua_newuserdatauv(L, sizeof(l_semaphore), 0);
  s->sem = NULL;
  luaL_setmetatable(L, PL_SEMAPHORE_MT);
  portalock_error err;
  if (portalock_semaphore_new(&s->sem, name, value, &opts, &err) != PORTALOCK_OK)
    return pl_push_failure(L, &err);
  return 1;
}

static int push_result(lua_State *L, portalock_status status, const portalock_error *err) {
  if (status != PORTALOCK_OK) return pl_push_failure(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int s_try(lua_State *L) {
  portalock_semaphore_t *sem = check_sem(L);
  portalock_wait wait;
  portalock_error err;
  portalock_status st = portalock_semaphore_try(sem, &wait, &err);
  return pl_push_step(L, st, &wait, &err);
}

/* h:begin(timeout, check_interval) -> an acquisition (l_acquisition.c) */
static int s_begin(lua_State *L) {
  portalock_semaphore_t *sem = check_sem(L);
  portalock_acquisition acq;
  portalock_error err;
  portalock_status st =
      portalock_semaphore_begin(&acq, sem, luaL_checknumber(L, 2), luaL_checknumber(L, 3), &err);
  return pl_push_acquisition(L, st, &acq, &err);
}

static int s_wait_done(lua_State *L) {
  portalock_semaphore_wait_done(check_sem(L));
  return 0;
}

static int s_release(lua_State *L) {
  portalock_semaphore_t *sem = check_sem(L);
  unsigned long n = check_count(L, 2, PORTALOCK_RULE_SEMAPHORE_RELEASE);
  portalock_error err;
  return push_result(L, portalock_semaphore_release(sem, n, &err), &err);
}

static int s_release_held(lua_State *L) {
  portalock_semaphore_t *sem = check_sem(L);
  portalock_error err;
  return push_result(L, portalock_semaphore_release_held(sem, &err), &err);
}

static int s_held(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)portalock_semaphore_held(check_sem(L)));
  return 1;
}

static int s_value(lua_State *L) {
  portalock_semaphore_t *sem = check_sem(L);
  long value;
  portalock_error err;
  if (portalock_semaphore_value(sem, &value, &err) != PORTALOCK_OK) return pl_push_failure(L, &err);
  lua_pushinteger(L, (lua_Integer)value);
  return 1;
}

static int s_name(lua_State *L) {
  lua_pushstring(L, portalock_semaphore_name(check_sem(L)));
  return 1;
}

static int s_gc(lua_State *L) {
  l_semaphore *s = (l_semaphore *)luaL_checkudata(L, 1, PL_SEMAPHORE_MT);
  if (s->sem != NULL) {
    portalock_semaphore_free(s->sem);
    s->sem = NULL;
  }
  return 0;
}

static int s_unlink(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  portalock_error err;
  return push_result(L, portalock_semaphore_unlink(name, &err), &err);
}

static const luaL_Reg semaphore_methods[] = {{"try", s_try},
                                             {"begin", s_begin},
                                             {"wait_done", s_wait_done},
                                             {"release", s_release},
                                             {"release_held", s_release_held},
                                             {"held", s_held},
                                             {"value", s_value},
                                             {"name", s_name},
                                             {NULL, NULL}};

static const luaL_Reg semaphore_functions[] = {
    {"new_semaphore", s_new}, {"semaphore_unlink", s_unlink}, {NULL, NULL}};

void pl_open_semaphore(lua_State *L) {
  luaL_newmetatable(L, PL_SEMAPHORE_MT);
  lua_pushcfunction(L, s_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  luaL_setfuncs(L, semaphore_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, semaphore_functions, 0);
  lua_pushinteger(L, (lua_Integer)SEM_VALUE_MAX);
  lua_setfield(L, -2, "SEM_VALUE_MAX");
  lua_pushinteger(L, PORTALOCK_SEMAPHORE_NAME_MAX);
  lua_setfield(L, -2, "SEMAPHORE_NAME_MAX");
  lua_pushinteger(L, PORTALOCK_SEMAPHORE_PERM_MAX);
  lua_setfield(L, -2, "SEMAPHORE_PERM_MAX");
  portalock_semaphore_options defaults;
  portalock_semaphore_options_init(&defaults);
  lua_pushnumber(L, defaults.timeout);
  lua_setfield(L, -2, "SEMAPHORE_DEFAULT_TIMEOUT");
}
