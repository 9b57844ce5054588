/* portalock.core.read_pid(filename) -> integer | nil */
#include "l_private.h"

static int p_read_pid(lua_State *L) {
  long pid = portalock_read_pid(luaL_checkstring(L, 1));
  if (pid > 0)
    lua_pushinteger(L, (lua_Integer)pid);
  else
    lua_pushnil(L);
  return 1;
}

static const luaL_Reg pidfile_functions[] = {{"read_pid", p_read_pid}, {NULL, NULL}};

void pl_open_pidfile(lua_State *L) {
  luaL_setfuncs(L, pidfile_functions, 0);
}
