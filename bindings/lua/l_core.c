/*
 * portalock.core: the thin C layer under the pure-Lua `portalock` module. The core owns the
 * rules of values and their wording (core.rule_problem); lua/portalock/ checks Lua types and
 * frames the messages with the function and argument they concern.
 */
#include "l_private.h"

int luaopen_portalock_core(lua_State *L) {
  lua_newtable(L);
  lua_pushstring(L, portalock_version());
  lua_setfield(L, -2, "_VERSION");
  lua_pushboolean(L, pl_makes_streams());
  lua_setfield(L, -2, "STREAMS");
  pl_open_options(L);
  pl_open_flags(L);
  pl_open_wait(L);
  pl_open_acquisition(L);
  pl_open_lock(L);
  pl_open_rlock(L);
  pl_open_pidfile(L);
  pl_open_bounded(L);
  pl_open_semaphore(L);
  pl_open_atomic(L);
  pl_open_status(L);
  pl_open_command(L);
  pl_open_errno(L);
  pl_open_budget(L);
  pl_open_readfile(L);
#ifdef PORTALOCK_HAVE_REDIS
  pl_open_redis(L);
  pl_open_redis_protocol(L);
#endif
  return 1;
}
