# The LuaRocks build (portalock-scm-1.rockspec, build.type = "cmake").
#
# LuaRocks passes paths but not the Lua version, so the version is read from the lua.h in
# LUA_INCDIR (LuaJIT's says 501, the ABI its modules share with Lua 5.1). The build is then
# narrowed to that one version, with no tests and only the Lua module installed, into the
# rock's own LIBDIR and LUADIR so that LuaRocks can track and remove the files.

function(portalock_luarocks_setup)
  foreach(var LUA_INCDIR LIBDIR LUADIR)
    if(NOT ${var})
      message(FATAL_ERROR "PORTALOCK_LUAROCKS needs ${var} (the rockspec passes it)")
    endif()
  endforeach()
  if(NOT EXISTS "${LUA_INCDIR}/lua.h")
    message(FATAL_ERROR "no lua.h in LUA_INCDIR=${LUA_INCDIR}")
  endif()
  file(STRINGS "${LUA_INCDIR}/lua.h" num_line REGEX "^#define[ \t]+LUA_VERSION_NUM[ \t]+[0-9]+")
  string(REGEX MATCH "[0-9]+$" num "${num_line}")
  if(NOT num MATCHES "^50[1-9]$")
    message(FATAL_ERROR "cannot tell the Lua version from ${LUA_INCDIR}/lua.h (${num_line})")
  endif()
  math(EXPR minor "${num} - 500")
  set(ver "5.${minor}")
  message(STATUS "portalock: LuaRocks build for Lua ${ver} (headers in ${LUA_INCDIR})")
  set(PORTALOCK_LUA_VERSIONS "${ver}" CACHE STRING "Lua ABIs to build the module for" FORCE)
  # bindings/lua names it PORTALOCK_LUA5.4_INCDIR; the dotless spelling is set for safety.
  set(PORTALOCK_LUA${ver}_INCDIR "${LUA_INCDIR}" CACHE PATH "Lua ${ver} headers" FORCE)
  set(PORTALOCK_LUA5${minor}_INCDIR "${LUA_INCDIR}" CACHE PATH "Lua ${ver} headers" FORCE)
  set(PORTALOCK_LUA_INSTALL_VERSION "${ver}" CACHE STRING "Lua version to install" FORCE)
  set(BUILD_TESTING OFF CACHE BOOL "Build the tests" FORCE)
endfunction()
