/* portalock.core.read_pid(filename) -> integer | nil
 * portalock.core.pid_file_holder(filename) -> integer | nil */
#include "l_private.h"

static void push_pid(lua_State *L, long pid) {
  if (pid > 0)
    lua_pushinteger(L, (lua_Integer)pid);
  else
    lua_pushnil(L);
}

static int p_read_pid(lua_State *L) {
  push_pid(L, portalock_read_pid(luaL_checkstring(L, 1)));
  return 1;
}

static int p_pid_file_holder(lua_State *L) {
  push_pid(L, portalock_pid_file_holder(luaL_checkstring(L, 1)));
  return 1;
}

static const luaL_Reg pidfile_functions[] = {
    {"read_pid", p_read_pid}, {"pid_file_holder", p_pid_file_holder}, {NULL, NULL}};

void pl_open_pidfile(lua_State *L) {
  luaL_setfuncs(L, pidfile_functions, 0);
}
