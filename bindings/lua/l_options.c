/*
 * Reading option tables. A string option stays on the Lua stack from the moment it is read
 * until the C function returns: neither the table (a finalizer or an __index metamethod can
 * change or make up its values) nor an in-place number conversion can then free it while C
 * still uses the pointer. Option strings must be strings: a number is refused, not
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
