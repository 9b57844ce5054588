/*
 * One source for Lua 5.1 (and LuaJIT, which loads 5.1-ABI modules), 5.3 and 5.4: the few
 * 5.2+ auxiliary functions this module uses, defined for 5.1 under their 5.2 names.
 */
#ifndef PORTALOCK_LUA_COMPAT_H
#define PORTALOCK_LUA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM == 501
/* LuaJIT's own headers declare some of these; macros keep our definitions separate. */
#define luaL_setfuncs pl_compat_setfuncs
#define luaL_setmetatable pl_compat_setmetatable
#define luaL_testudata pl_compat_testudata

void pl_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
void pl_compat_setmetatable(lua_State *L, const char *tname);
void *pl_compat_testudata(lua_State *L, int idx, const char *tname);

#ifndef luaL_newlib /* LuaJIT has it */
#define luaL_newlibtable(L, l) lua_createtable(L, 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
#endif

#endif

#if LUA_VERSION_NUM == 501
#define lua_rawlen(L, idx) lua_objlen(L, idx)
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, size)
#endif

#endif
