/*
 * A program that hosts Lua and gives its scripts portalock, from one static library: it links
 * a static Lua (5.4, or LuaJIT) and libportalock_lua54.a (libportalock_lua51.a for LuaJIT),
 * registers the module with portalock_lua_preload, and runs the script named on its command
 * line, whose arguments are in `arg` as the `lua` command gives them.
 *
 *   embed_lua54 script.lua [args...]
 *
 * No portalock file is needed at run time: `require "portalock"` finds it in package.preload.
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <portalock_lua.h>

/* The message of a failed chunk, with a traceback. */
static int traceback(lua_State *L) {
  const char *message = lua_tostring(L, 1);
  luaL_traceback(L, L, message ? message : "(error object is not a string)", 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
    return 1;
  }
  luaL_openlibs(L);
  lua_pushcfunction(L, portalock_lua_preload);
  if (lua_pcall(L, 0, 0, 0) != 0) {
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }

  lua_createtable(L, argc, 0); /* arg[0] is the script, arg[1..] its arguments */
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");

  lua_pushcfunction(L, traceback);
  int status = luaL_loadfile(L, argv[1]);
  if (status == 0) {
    for (int i = 2; i < argc; i++) {
      lua_pushstring(L, argv[i]);
    }
    status = lua_pcall(L, argc - 2, 0, -(argc - 2) - 2);
  }
  if (status != 0) {
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  }
  lua_close(L); /* releases whatever the script still held */
  return status == 0 ? 0 : 1;
}
