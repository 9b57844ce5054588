/*
 * A plugin: a shared object that links libportalock_lua<tag>.a and gives the program that
 * loads it one entry point of its own. Whatever else it exports, the library made visible
 * (tests/check_exports.cmake lists it).
 */
#include "portalock_lua.h"

int embed_plugin_open(struct lua_State *L);

int embed_plugin_open(struct lua_State *L) {
  return portalock_lua_preload(L);
}
