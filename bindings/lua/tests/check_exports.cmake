# Fails when the shared object FILE exports a name that is neither portalock's (its C API,
# portalock_*, and the module's entry point) nor the plugin's own (embed_plugin_*): anything
# else would clash with, or be taken from, another copy loaded into the same program.
#   cmake -DNM=<nm> -DFILE=<plugin.so> -P check_exports.cmake
execute_process(COMMAND "${NM}" -D --defined-only "${FILE}"
                OUTPUT_VARIABLE symbols RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${NM} -D ${FILE} failed (${status})")
endif()
string(REGEX MATCHALL "[^\n]+" lines "${symbols}")
set(stray "")
set(count 0)
foreach(line IN LISTS lines)
  string(REGEX REPLACE "^.* " "" name "${line}")
  math(EXPR count "${count} + 1")
  if(NOT name MATCHES "^(portalock_|luaopen_portalock_core$|embed_plugin_|_init$|_fini$|_edata$|_end$|__bss_start$)")
    list(APPEND stray "${name}")
  endif()
endforeach()
if(NOT symbols MATCHES " embed_plugin_open\n")
  message(FATAL_ERROR "${FILE} does not export its own embed_plugin_open")
endif()
if(stray)
  message(FATAL_ERROR "${FILE} exports names that are not portalock's: ${stray}")
endif()
message(STATUS "${FILE}: ${count} names exported, all portalock's or the plugin's")
