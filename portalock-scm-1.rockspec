-- LuaRocks 3.8+ (Debian's 3.8 included), offline:
--   luarocks --lua-version=5.4 make --deps-mode=none --tree /some/tree
--   luarocks --lua-version=5.1 make --deps-mode=none --tree /some/tree   (lua5.1 and LuaJIT)
-- The one build definition is the project's CMake build; PORTALOCK_LUAROCKS narrows it to the
-- Lua module of the Lua whose headers LuaRocks found, installed into the rock's directories.
rockspec_format = "3.0"
package = "portalock"
version = "scm-1"
source = {
   url = "git+https://example.invalid/portalock.git",
}
description = {
   summary = "Cross-process locks on kernel file locks",
   detailed = [[
portalock gives Lua 5.1-5.4 and LuaJIT cross-process locks (Lock, RLock, TemporaryFileLock,
PidFileLock) on flock(2), OFD and POSIX record locks, interoperable with flock(1) and
Python's portalocker. A thin C module (portalock.core) under a pure-Lua API (portalock).
]],
}
dependencies = {
   "lua >= 5.1",
}
build = {
   type = "cmake",
   variables = {
      PORTALOCK_LUAROCKS = "ON",
      BUILD_TESTING = "OFF",
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_C_FLAGS = "$(CFLAGS)",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      LIBDIR = "$(LIBDIR)",
      LUADIR = "$(LUADIR)",
      BINDIR = "$(BINDIR)",
   },
}
