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
  return pl_push_wait_result(L, portalock_wait_step(&wait, deadline));
}

int pl_push_wait_result(lua_State *L, int woke) {
  lua_pushstring(L, woke > 0 ? "ready" : woke == 0 ? "timeout" : "interrupted");
  return 1;
}

/* wait_counters() -> {event=, kernel=, timer=, deadline=, signal=, lost_race=, unwatched=} */
static int w_wait_counters(lua_State *L) {
  portalock_wait_counters c;
  portalock_wait_counters_get(&c);
  lua_createtable(L, 0, 7);
  const struct {
    const char *name;
    unsigned long long value;
  } fields[] = {{"event", c.event},        {"kernel", c.kernel}, {"timer", c.timer},
                {"deadline", c.deadline},  {"signal", c.signal}, {"lost_race", c.lost_race},
                {"unwatched", c.unwatched}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    lua_pushinteger(L, (lua_Integer)fields[i].value);
    lua_setfield(L, -2, fields[i].name);
  }
  return 1;
}

static int w_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg wait_functions[] = {{"monotonic", w_monotonic},
                                          {"wait", w_wait},
                                          {"getpid", w_getpid},
                                          {"wait_counters", w_wait_counters},
                                          {NULL, NULL}};

void pl_open_wait(lua_State *L) {
  luaL_setfuncs(L, wait_functions, 0);
  lua_pushnumber(L, PORTALOCK_CHECK_INTERVAL_MIN);
  lua_setfield(L, -2, "CHECK_INTERVAL_MIN");
  lua_pushnumber(L, PORTALOCK_DEFAULT_TIMEOUT);
  lua_setfield(L, -2, "DEFAULT_TIMEOUT");
  lua_pushnumber(L, PORTALOCK_DEFAULT_CHECK_INTERVAL);
  lua_setfield(L, -2, "DEFAULT_CHECK_INTERVAL");
}
