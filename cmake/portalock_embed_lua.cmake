# Writes the C source that compiles the pure-Lua files of lua/portalock/ into
# libportalock_lua (see bindings/lua/l_embed.c), one byte array per file and the table that
# names each file's module. Run at build time:
#   cmake -DLUA_DIR=<lua/> -DFILES=<list> -DOUTPUT=<file.c> -P portalock_embed_lua.cmake
# <list> names the files, one a line, relative to <lua/> (bindings/lua/CMakeLists.txt writes it).
# The text is kept as it is (not precompiled): one array serves every Lua ABI, and
# tracebacks keep the files' line numbers.
if(NOT LUA_DIR OR NOT FILES OR NOT OUTPUT)
  message(FATAL_ERROR
    "usage: cmake -DLUA_DIR=<dir> -DFILES=<list> -DOUTPUT=<file.c> -P ${CMAKE_CURRENT_LIST_FILE}")
endif()

file(STRINGS "${FILES}" files)
if(NOT files)
  message(FATAL_ERROR "no Lua file named in ${FILES}")
endif()

set(arrays "")
set(entries "")
set(index 0)
foreach(file IN LISTS files)
  # portalock/init.lua is the module "portalock"; portalock/cli/args.lua is "portalock.cli.args".
  string(REGEX REPLACE "\\.lua$" "" module "${file}")
  string(REGEX REPLACE "/init$" "" module "${module}")
  string(REPLACE "/" "." module "${module}")
  file(READ "${LUA_DIR}/${file}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n  "
         bytes "${bytes}")
  # A terminating 0 keeps an empty file's array valid C; it is not part of the text.
  string(APPEND arrays "/* ${file} */\nstatic const unsigned char pl_file_${index}[] = {\n  ${bytes}0\n};\n\n")
  string(APPEND entries "  {\"${module}\", \"@${file}\", pl_file_${index}, sizeof pl_file_${index} - 1},\n")
  math(EXPR index "${index} + 1")
endforeach()

set(content "/* Generated from lua/portalock/ by cmake/portalock_embed_lua.cmake: do not edit. */
#include \"l_embed.h\"

${arrays}const pl_embedded_file pl_embedded_files[] = {
${entries}  {0, 0, 0, 0}
};
")
# Rewritten only when it changes, so that an unchanged tree does not recompile it.
file(WRITE "${OUTPUT}.new" "${content}")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${OUTPUT}.new" "${OUTPUT}")
file(REMOVE "${OUTPUT}.new")
