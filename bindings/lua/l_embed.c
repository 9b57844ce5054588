/*
 * portalock_lua_preload (include/portalock_lua.h): the whole `portalock` module for a
 * program that hosts Lua, with no file on disk. The pure-Lua files are compiled in
 * (pl_embedded_files, generated at build time) and registered in package.preload beside
 * portalock.core, each loaded only when first required.
 */
#include "l_private.h"

#include "l_embed.h"
#include "portalock_lua.h"

/* The loader of one embedded file (upvalue 1): compiles its text and runs it as the file
   searcher would run the file, with the module's name as its argument. */
static int pl_load_embedded(lua_State *L) {
  const pl_embedded_file *file = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbuffer(L, (const char *)file->text, file->size, file->chunkname) != 0) {
    return lua_error(L);
  }
  lua_pushstring(L, file->module);
  lua_call(L, 1, 1);
  return 1;
}

int portalock_lua_preload(lua_State *L) {
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "preload");
  }
  if (!lua_istable(L, -1)) {
    return luaL_error(L, "portalock_lua_preload: package.preload is not a table (open the "
                         "package library first: luaL_openlibs)");
  }
  lua_pushcfunction(L, luaopen_portalock_core);
  lua_setfield(L, -2, "portalock.core");
  for (const pl_embedded_file *file = pl_embedded_files; file->module; file++) {
    lua_pushlightuserdata(L, (void *)file);
    lua_pushcclosure(L, pl_load_embedded, 1);
    lua_setfield(L, -2, file->module);
  }
  lua_pop(L, 2);
  return 0;
}
