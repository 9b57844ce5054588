/*
 * portalock for programs that host Lua: libportalock_lua54.a (Lua 5.4), libportalock_lua53.a
 * (5.3) or libportalock_lua51.a (Lua 5.1 and LuaJIT) holds the whole `portalock` module, its
 * C part and its Lua files, and this one call makes it available to a lua_State:
 *
 *     lua_State *L = luaL_newstate();
 *     luaL_openlibs(L);
 *     portalock_lua_preload(L);        -- then scripts run: local portalock = require "portalock"
 *
 * It fills package.preload (so `require` finds nothing on disk, and needs no LUA_PATH), and
 * loads nothing until a script requires it. Link the library of the ABI of the Lua the host
 * links, and -lhiredis -pthread (pkg-config portalock-lua54 --libs says what this build needs).
 *
 * Threads: each lua_State is used by one thread at a time, as Lua requires; states in
 * different threads of one process contend for a lock as two processes would, and closing a
 * state (lua_close) releases what its objects held. See README.md, "Embedding".
 */
#ifndef PORTALOCK_LUA_H
#define PORTALOCK_LUA_H

#ifdef __cplusplus
extern "C" {
#endif

struct lua_State;

/*
 * Registers `portalock`, its submodules and `portalock.core` in package.preload of L. The
 * package library must be open. Returns 0; raises a Lua error (a memory error, or no package
 * library) like any Lua API call, so call it where the host handles those, or through
 * lua_pcall: lua_pushcfunction(L, portalock_lua_preload); lua_pcall(L, 0, 0, 0).
 */
int portalock_lua_preload(struct lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
