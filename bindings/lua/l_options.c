/*
 * The core's rules of values, for the Lua front end: core.rule_problem(rule, number),
 * core.lock_mode_problem(mode, flags, backend) and core.semaphore_name_problem(name); a C
 * string's one rule (no NUL) is the binding's. Reading option tables. A string option stays on the
 * Lua stack from the moment it is read until the C function returns: neither the table (a finalizer
 * or an
 * __index metamethod can change or make up its values) nor an in-place number conversion can then
 * free it while C still uses the pointer. Option strings must be strings: a number is refused, not
 * converted.
 */
#include "l_private.h"

#include <string.h>

const char *pl_opt_string(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "bad option '%s' (%s): must be a string", key, luaL_typename(L, -1));
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (strlen(s) != len)
    luaL_error(L, "bad option '%s' (\"%s...\"): must not contain NUL bytes", key, s);
  return s; /* left on the stack: see above */
}

double pl_opt_number(lua_State *L, int idx, const char *key, double fallback) {
  lua_getfield(L, idx, key);
  double value = lua_isnil(L, -1) ? fallback : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return value;
}

int pl_opt_int(lua_State *L, int idx, const char *key, int fallback) {
  lua_getfield(L, idx, key);
  lua_Integer value = lua_isnil(L, -1) ? fallback : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  luaL_argcheck(L, value >= -0x7fffffff && value <= 0x7fffffff, idx, key);
  return (int)value;
}

/* Pushes `problem` (nothing when it is NULL); returns how many values it pushed. */
static int push_problem(lua_State *L, const char *problem) {
  if (problem == NULL) return 0;
  lua_pushstring(L, problem);
  return 1;
}

/* rule_problem(rule, value) -> nil when the number `value` obeys the core's rule, else the
   core's phrase for what is wrong with it. Rules by the names the front end uses. */
static int o_rule_problem(lua_State *L) {
  static const char *const names[] = {"timeout",
                                      "check_interval",
                                      "flags",
                                      "exclusive_flags",
                                      "perm",
                                      "semaphore_perm",
                                      "semaphore_value",
                                      "semaphore_release",
                                      "bounded_maximum",
                                      NULL};
  static const portalock_rule rules[] = {PORTALOCK_RULE_TIMEOUT,
                                         PORTALOCK_RULE_CHECK_INTERVAL,
                                         PORTALOCK_RULE_FLAGS,
                                         PORTALOCK_RULE_EXCLUSIVE_FLAGS,
                                         PORTALOCK_RULE_PERM,
                                         PORTALOCK_RULE_SEMAPHORE_PERM,
                                         PORTALOCK_RULE_SEMAPHORE_VALUE,
                                         PORTALOCK_RULE_SEMAPHORE_RELEASE,
                                         PORTALOCK_RULE_BOUNDED_MAXIMUM};
  _Static_assert(sizeof names / sizeof names[0] == sizeof rules / sizeof rules[0] + 1,
                 "one name per rule");
  portalock_rule rule = rules[luaL_checkoption(L, 1, NULL, names)];
  char buf[PORTALOCK_MESSAGE_MAX];
  return push_problem(L, portalock_rule_problem(rule, luaL_checknumber(L, 2), buf, sizeof buf));
}

/* lock_mode_problem(mode[, flags, backend]) -> nil when a Lock may open `mode` for a lock of
   the valid `flags` (default LOCK_EX) on `backend` (default "flock"), else the core's phrase. */
static int o_lock_mode_problem(lua_State *L) {
  size_t len;
  const char *mode = luaL_checklstring(L, 1, &len);
  if (strlen(mode) != len) return push_problem(L, "must not contain NUL bytes");
  int flags = (int)luaL_optinteger(L, 2, PORTALOCK_LOCK_EX);
  portalock_backend backend = pl_checkbackend(L, 3);
  char buf[PORTALOCK_MESSAGE_MAX];
  return push_problem(L, portalock_lock_mode_problem(mode, flags, backend, buf, sizeof buf));
}

/* semaphore_name_problem(name) -> nil for a valid semaphore name, else the core's phrase. */
static int o_semaphore_name_problem(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  if (strlen(name) != len) return push_problem(L, "must not contain NUL bytes");
  return push_problem(L, portalock_semaphore_name_problem(name));
}

void pl_open_options(lua_State *L) {
  static const luaL_Reg functions[] = {{"rule_problem", o_rule_problem},
                                       {"lock_mode_problem", o_lock_mode_problem},
                                       {"semaphore_name_problem", o_semaphore_name_problem},
                                       {NULL, NULL}};
  luaL_setfuncs(L, functions, 0);
  /* The Lock's default mode, flags and backend, which Lua needs before there is a Lock (the
     timing defaults are DEFAULT_TIMEOUT and DEFAULT_CHECK_INTERVAL) */
  portalock_lock_options defaults;
  portalock_lock_options_init(&defaults);
  lua_pushstring(L, defaults.mode);
  lua_setfield(L, -2, "DEFAULT_MODE");
  lua_pushinteger(L, defaults.flags);
  lua_setfield(L, -2, "DEFAULT_FLAGS");
  lua_pushstring(L, portalock_backend_name(defaults.backend));
  lua_setfield(L, -2, "DEFAULT_BACKEND");
  /* BACKENDS: the backends' names, in the order of their values */
  lua_newtable(L);
  for (int b = 0; portalock_backend_name((portalock_backend)b) != NULL; b++) {
    lua_pushstring(L, portalock_backend_name((portalock_backend)b));
    lua_rawseti(L, -2, b + 1);
  }
  lua_setfield(L, -2, "BACKENDS");
}
