# Install rules: the C library (header, shared + static library, pkg-config file, CMake
# package config exporting portalock::portalock and portalock::portalock_static) and the Lua
# module of one Lua version with the pure-Lua files. Under PORTALOCK_LUAROCKS only the Lua
# part is installed, into the directories LuaRocks chose.

include(CMakePackageConfigHelpers)

set(PORTALOCK_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/portalock")

# An exported target may only name build-tree include directories inside $<BUILD_INTERFACE>;
# wrap any plain path so that install(EXPORT) accepts whatever the target was given.
function(portalock_wrap_build_includes target)
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT dirs)
    return()
  endif()
  set(wrapped "")
  foreach(dir IN LISTS dirs)
    if(dir MATCHES "^\\$<")
      list(APPEND wrapped "${dir}")
    else()
      list(APPEND wrapped "$<BUILD_INTERFACE:${dir}>")
    endif()
  endforeach()
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${wrapped}")
endfunction()

if(NOT PORTALOCK_LUAROCKS)
  foreach(target portalock portalock_static)
    if(NOT TARGET ${target})
      message(FATAL_ERROR "core/CMakeLists.txt defines no target '${target}'")
    endif()
    portalock_wrap_build_includes(${target})
  endforeach()

  install(FILES "${PROJECT_SOURCE_DIR}/core/include/portalock.h"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(TARGETS portalock portalock_static
          EXPORT portalockTargets
          LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  # For programs that host Lua: libportalock_lua<tag>.a per Lua ABI built, and its header.
  set(embed_targets "")
  set(embed_versions "")
  foreach(ver IN LISTS PORTALOCK_LUA_VERSIONS)
    string(REPLACE "." "" tag "${ver}")
    if(TARGET portalock_lua${tag})
      list(APPEND embed_targets portalock_lua${tag})
      list(APPEND embed_versions ${ver})
    endif()
  endforeach()
  if(embed_targets)
    install(FILES "${PROJECT_SOURCE_DIR}/bindings/lua/include/portalock_lua.h"
            DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
    install(TARGETS ${embed_targets}
            EXPORT portalockTargets
            ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
  endif()

  install(EXPORT portalockTargets
          NAMESPACE portalock::
          FILE portalockTargets.cmake
          DESTINATION "${PORTALOCK_CMAKE_INSTALL_DIR}")

  configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/portalockConfig.cmake.in"
                                "${PROJECT_BINARY_DIR}/portalockConfig.cmake"
                                INSTALL_DESTINATION "${PORTALOCK_CMAKE_INSTALL_DIR}")
  # 0.x: a new minor version may break the API.
  write_basic_package_version_file("${PROJECT_BINARY_DIR}/portalockConfigVersion.cmake"
                                   VERSION ${PROJECT_VERSION}
                                   COMPATIBILITY SameMinorVersion)
  install(FILES "${PROJECT_BINARY_DIR}/portalockConfig.cmake"
                "${PROJECT_BINARY_DIR}/portalockConfigVersion.cmake"
          DESTINATION "${PORTALOCK_CMAKE_INSTALL_DIR}")

  # The pkg-config files are written at install time, so that `cmake --install --prefix P`
  # yields files that point into P rather than into the configure-time prefix: portalock.pc
  # for the C library, portalock-lua<tag>.pc for each embedding library (static only, so its
  # Libs name what it needs).
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(pc_libdir "${CMAKE_INSTALL_LIBDIR}")
  else()
    set(pc_libdir "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(pc_includedir "${CMAKE_INSTALL_INCLUDEDIR}")
  else()
    set(pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()
  set(pc_deps "")
  foreach(lib IN LISTS PORTALOCK_HIREDIS_NAMES)
    string(APPEND pc_deps "-l${lib} ")
  endforeach()
  string(APPEND pc_deps "-pthread")
  set(pc_files portalock.pc)
  set(pc_script "
set(PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
set(PC_LIBDIR [==[${pc_libdir}]==])
set(PC_INCLUDEDIR [==[${pc_includedir}]==])
set(PC_VERSION \"${PROJECT_VERSION}\")
set(PC_DEPS \"${pc_deps}\")
configure_file([==[${PROJECT_SOURCE_DIR}/cmake/portalock.pc.in]==]
               [==[${PROJECT_BINARY_DIR}/portalock.pc]==] @ONLY)
")
  foreach(ver IN LISTS embed_versions)
    string(REPLACE "." "" tag "${ver}")
    if(ver STREQUAL "5.1")
      set(ver "5.1 or LuaJIT")
    endif()
    list(APPEND pc_files portalock-lua${tag}.pc)
    string(APPEND pc_script "
set(PC_LUA_TAG ${tag})
set(PC_LUA_VERSION \"${ver}\")
configure_file([==[${PROJECT_SOURCE_DIR}/cmake/portalock-lua.pc.in]==]
               [==[${PROJECT_BINARY_DIR}/portalock-lua${tag}.pc]==] @ONLY)
")
  endforeach()
  set(PORTALOCK_PC_SCRIPT "${PROJECT_BINARY_DIR}/portalock-pc.cmake")
  file(WRITE "${PORTALOCK_PC_SCRIPT}" "${pc_script}")
  install(SCRIPT "${PORTALOCK_PC_SCRIPT}")
  list(TRANSFORM pc_files PREPEND "${PROJECT_BINARY_DIR}/")
  install(FILES ${pc_files} DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
endif()

if(PORTALOCK_INSTALL_LUA)
  set(ver "${PORTALOCK_LUA_INSTALL_VERSION}")
  string(REPLACE "." "" tag "${ver}")
  if(PORTALOCK_LUAROCKS)
    set(module_dir "${LIBDIR}/portalock")
    set(lua_dir "${LUADIR}/portalock")
  else()
    # The layout of Lua's default package.cpath/package.path under a prefix.
    set(module_dir "${CMAKE_INSTALL_LIBDIR}/lua/${ver}/portalock")
    set(lua_dir "${CMAKE_INSTALL_DATAROOTDIR}/lua/${ver}/portalock")
  endif()
  if(TARGET portalock_module${tag})
    install(TARGETS portalock_module${tag} LIBRARY DESTINATION "${module_dir}")
    install(DIRECTORY "${PROJECT_SOURCE_DIR}/lua/portalock/"
            DESTINATION "${lua_dir}"
            FILES_MATCHING PATTERN "*.lua")
  elseif(PORTALOCK_LUAROCKS)
    message(FATAL_ERROR "no Lua ${ver} module target (portalock_module${tag}) to install")
  else()
    message(WARNING "PORTALOCK_LUA_INSTALL_VERSION=${ver} is not built "
                    "(PORTALOCK_LUA_VERSIONS=${PORTALOCK_LUA_VERSIONS}): the Lua module is "
                    "not installed")
  endif()
endif()

# The command-line tool. LuaRocks installs bin/portalock as it is and wraps it with the tree's
# paths. `cmake --install` writes a copy that starts the installed Lua version's interpreter
# and finds the module relative to itself, so that any --prefix works.
if(PORTALOCK_INSTALL_LUA AND TARGET portalock_module${tag})
  if(PORTALOCK_LUAROCKS)
    install(PROGRAMS "${PROJECT_SOURCE_DIR}/bin/portalock" DESTINATION "${BINDIR}")
  else()
    find_program(PORTALOCK_LUA_INTERPRETER NAMES lua${ver}
                 DOC "The interpreter that the installed portalock command runs on")
    if(NOT PORTALOCK_LUA_INTERPRETER)
      set(PORTALOCK_LUA_INTERPRETER "/usr/bin/env lua${ver}")
    endif()
    # Lua expressions for the two module directories: relative to the script's own
    # directory (`bin`), or absolute where the install layout names absolute directories.
    set(full_bindir "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}")
    foreach(kind lua lib)
      if(kind STREQUAL "lua")
        set(dir "${lua_dir}/..")
      else()
        set(dir "${module_dir}/..")
      endif()
      if(IS_ABSOLUTE "${dir}" OR IS_ABSOLUTE "${CMAKE_INSTALL_BINDIR}")
        set(${kind}_expr "'${dir}'")
      else()
        file(RELATIVE_PATH rel "${full_bindir}" "${CMAKE_INSTALL_PREFIX}/${dir}")
        set(${kind}_expr "bin .. '/${rel}'")
      endif()
    endforeach()
    file(READ "${PROJECT_SOURCE_DIR}/bin/portalock" script)
    string(REGEX REPLACE "^#![^\n]*\n" "" script "${script}")
    set(prelude "#!${PORTALOCK_LUA_INTERPRETER}
do -- the installed module, found from where this script lives
  local bin = (arg and arg[0] or ''):match('^(.*)/') or '.'
  local lua, lib = ${lua_expr}, ${lib_expr}
  package.path = lua .. '/?.lua;' .. lua .. '/?/init.lua;' .. package.path
  package.cpath = lib .. '/?.so;' .. package.cpath
end
")
    file(WRITE "${PROJECT_BINARY_DIR}/portalock-installed" "${prelude}${script}")
    install(PROGRAMS "${PROJECT_BINARY_DIR}/portalock-installed"
            DESTINATION "${CMAKE_INSTALL_BINDIR}" RENAME portalock)
  endif()
endif()
