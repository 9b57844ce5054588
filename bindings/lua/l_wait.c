/* The clock and one sleeping step, for the waiting loop that lives in Lua. */
#include "l_private.h"

#include <unistd.h>

static int w_monotonic(lua_State *L) {
  lua_pushnumber(L, portalock_monotonic());
  return 1;
}

/* wait(fd|nil, next_attempt, deadline) -> "ready" | "timeout" | "interrupted". Returning on a
   signal lets the interpreter's own hooks (Ctrl-C in lua) run before the loop re-checks. */
static int w_wait(lua_State *L) {
  portalock_wait wait;
  wait.fd = lua_isnoneornil(L, 1) ? -1 : (int)luaL_checkinteger(L, 1);
  wait.next_attempt = luaL_checknumber(L, 2);
  double deadline = luaL_checknumber(L, 3);
  int woke = portalock_wait_step(&wait, deadline);
  lua_pushstring(L, woke > 0 ? "ready" : woke == 0 ? "timeout" : "interrupted");
  return 1;
}

static int w_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg wait_functions[] = {
    {"monotonic", w_monotonic}, {"wait", w_wait}, {"getpid", w_getpid}, {NULL, NULL}};

void pl_open_wait(lua_State *L) {
  luaL_setfuncs(L, wait_functions, 0);
}
