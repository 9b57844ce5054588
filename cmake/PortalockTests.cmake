# ctest registration beyond the C tests of core/: the busted suites once per interpreter
# (lua.5.4, lua.5.3, lua.5.1, lua.luajit), the random API driver on Lua 5.4 and LuaJIT
# (fuzz.api.5.4, fuzz.api.luajit), the C example (examples.c_api) and luacheck
# (lint.luacheck). An interpreter or tool that is not installed is skipped with a message.

find_program(PORTALOCK_BUSTED busted)
find_program(PORTALOCK_LUACHECK luacheck)

# Specs that talk to Python's portalocker need a python3 that has it: Debian's, not
# necessarily the first python3 on PATH (pyenv and virtualenvs shadow it).
set(PORTALOCK_TEST_PYTHON "" CACHE FILEPATH "python3 with portalocker for the interop specs")
if(NOT PORTALOCK_TEST_PYTHON)
  foreach(py /usr/bin/python3 python3)
    execute_process(COMMAND ${py} -c "import portalocker"
                    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      if(NOT IS_ABSOLUTE "${py}")
        find_program(py_path ${py})
        set(py "${py_path}")
      endif()
      set(PORTALOCK_TEST_PYTHON "${py}" CACHE FILEPATH
          "python3 with portalocker for the interop specs" FORCE)
      break()
    endif()
  endforeach()
endif()

# The Redis specs start redis-servers of their own (spec/support/redis_server.lua); without
# one they are skipped with a message (Debian: redis-server, and redis-tools for redis-cli).
find_program(PORTALOCK_TEST_REDIS_SERVER redis-server)

# Under PORTALOCK_SANITIZE the module is instrumented but the interpreter is not: ASan's
# runtime has to be preloaded into it. Leak detection is off because the interpreters keep
# memory until exit on purpose.
set(PORTALOCK_LUA_TEST_ENV "")
if(PORTALOCK_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE asan_lib OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT IS_ABSOLUTE "${asan_lib}" OR NOT EXISTS "${asan_lib}")
    message(FATAL_ERROR "PORTALOCK_SANITIZE: '${CMAKE_C_COMPILER} -print-file-name=libasan.so' "
                        "found no ASan runtime to preload into the Lua interpreters")
  endif()
  list(APPEND PORTALOCK_LUA_TEST_ENV
       "LD_PRELOAD=${asan_lib}"
       "ASAN_OPTIONS=detect_leaks=0"
       "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()

set(PORTALOCK_FUZZ_API_ITERATIONS 3000 CACHE STRING
    "Steps of each fuzz.api.* run of spec/support/api_fuzz.lua (tools/fuzz --long: 10^6)")
# The test suite (tools/test) gives the driver a fixed seed, so that it passes or fails the
# same way on every run; the fuzz stage (tools/fuzz, PORTALOCK_FUZZ) takes a new seed each
# run, printed first so that a failure can be rerun.
set(PORTALOCK_FUZZ_API_SEED 1 CACHE STRING
    "Seed of fuzz.api.* in builds without PORTALOCK_FUZZ (with it: a new seed each run)")
if(PORTALOCK_FUZZ)
  set(api_fuzz_seed "")
else()
  set(api_fuzz_seed --seed ${PORTALOCK_FUZZ_API_SEED})
endif()

set(src "${PROJECT_SOURCE_DIR}")
# ENVIRONMENT is a list: the semicolons inside LUA_PATH/LUA_CPATH must be escaped.
set(lua_path "${src}/lua/?.lua\\;${src}/lua/?/init.lua\\;${src}/spec/?.lua\\;\\;")

foreach(ver IN LISTS PORTALOCK_LUA_VERSIONS)
  string(REPLACE "." "" tag "${ver}")
  if(NOT TARGET portalock_module${tag})
    continue()
  endif()
  if(ver STREQUAL "5.1")
    set(runtimes "5.1=lua5.1" "luajit=luajit")
  else()
    set(runtimes "${ver}=lua${ver}")
  endif()
  foreach(runtime IN LISTS runtimes)
    string(REGEX REPLACE "=.*" "" name "${runtime}")
    string(REGEX REPLACE ".*=" "" exe "${runtime}")
    find_program(PORTALOCK_INTERP_${name} ${exe})
    if(NOT PORTALOCK_INTERP_${name})
      message(STATUS "portalock: ${exe} not found; skipping test lua.${name}")
      continue()
    endif()
    set(interp "${PORTALOCK_INTERP_${name}}")
    set(env
        "LUA_PATH=${lua_path}"
        "LUA_CPATH=${CMAKE_BINARY_DIR}/lua/${ver}/?.so\\;\\;"
        "PORTALOCK_TEST_LUA=${interp}"
        ${PORTALOCK_LUA_TEST_ENV})
    if(PORTALOCK_TEST_PYTHON)
      list(APPEND env "PORTALOCK_TEST_PYTHON=${PORTALOCK_TEST_PYTHON}")
    endif()
    if(PORTALOCK_TEST_REDIS_SERVER)
      list(APPEND env "PORTALOCK_TEST_REDIS_SERVER=${PORTALOCK_TEST_REDIS_SERVER}")
    endif()
    # The random API driver (README "Fuzzing"), seeded as api_fuzz_seed says.
    if(name STREQUAL "5.4" OR name STREQUAL "luajit")
      add_test(NAME fuzz.api.${name}
               COMMAND "${interp}" spec/support/api_fuzz.lua
                       --iterations ${PORTALOCK_FUZZ_API_ITERATIONS} ${api_fuzz_seed}
               WORKING_DIRECTORY "${src}")
      # The seeds that once found a defect (spec/support/api_fuzz_seeds.txt), rerun.
      add_test(NAME fuzz.api.${name}.replay
               COMMAND "${interp}" spec/support/api_fuzz.lua
                       --replay spec/support/api_fuzz_seeds.txt
               WORKING_DIRECTORY "${src}")
      set_tests_properties(fuzz.api.${name} fuzz.api.${name}.replay PROPERTIES
                           ENVIRONMENT "${env}" LABELS "fuzz" TIMEOUT ${PORTALOCK_FUZZ_TEST_TIMEOUT})
    endif()
    if(NOT PORTALOCK_BUSTED)
      message(STATUS "portalock: busted not found; skipping test lua.${name}")
      continue()
    endif()
    # The interpreter runs busted itself (rather than `busted --lua=...`, which re-runs
    # busted through a shell): the suite runs on exactly this interpreter.
    # The Redis fault suite (#faults: spec/redis_faults_spec.lua, half a minute of killed,
    # paused and cut-off processes and servers) runs on 5.4 and LuaJIT, the runtimes of
    # applications and of OpenResty; 5.3 and 5.1 run the rest, which covers the binding there.
    # The suites in a real nginx (#nginx) run once, from LuaJIT: nginx runs its own LuaJIT
    # with the 5.1 module whichever interpreter drives busted.
    set(exclude "")
    if(NOT (name STREQUAL "5.4" OR name STREQUAL "luajit"))
      set(exclude --exclude-tags=faults,nginx)
    elseif(name STREQUAL "5.4")
      set(exclude --exclude-tags=nginx)
    endif()
    add_test(NAME lua.${name}
             COMMAND "${interp}" "${PORTALOCK_BUSTED}" --ignore-lua ${exclude} spec
             WORKING_DIRECTORY "${src}")
    set_tests_properties(lua.${name} PROPERTIES ENVIRONMENT "${env}" TIMEOUT 600
                                                LABELS "lua")
  endforeach()
endforeach()

# What follows checks sources and packaging, not behaviour: once, in the plain build, not
# again under the sanitizers.
if(PORTALOCK_SANITIZE)
  return()
endif()

# The C example, built here against the in-tree library (the installed copy is exercised
# by .ci/run): take and release a lock on a scratch file.
add_subdirectory(examples/c_api)
add_test(NAME examples.c_api
         COMMAND hold "${CMAKE_BINARY_DIR}/examples-c_api.lock")
set_tests_properties(examples.c_api PROPERTIES TIMEOUT 60 LABELS "examples"
                                               PASS_REGULAR_EXPRESSION "released")

# The embedding example, built here against the in-tree libraries: each host runs its script
# (the installed copies, with no portalock file left on disk, are exercised by install.packages).
add_subdirectory(examples/embed)
foreach(host IN ITEMS embed_lua54 embed_luajit)
  if(TARGET ${host})
    file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/examples-${host}")
    add_test(NAME examples.${host}
             COMMAND ${host} "${src}/examples/embed/script.lua" "${CMAKE_BINARY_DIR}/examples-${host}")
    set_tests_properties(examples.${host} PROPERTIES TIMEOUT 60 LABELS "examples"
      PASS_REGULAR_EXPRESSION "lock, semaphore and atomic write done")
  endif()
endforeach()

if(PORTALOCK_LUACHECK)
  add_test(NAME lint.luacheck
           COMMAND "${PORTALOCK_LUACHECK}" lua spec examples bench bin/portalock
           WORKING_DIRECTORY "${src}")
  set_tests_properties(lint.luacheck PROPERTIES TIMEOUT 300 LABELS "lint")
else()
  message(STATUS "portalock: luacheck not found; skipping test lint.luacheck")
endif()

# C sources formatted as .clang-format says.
find_program(PORTALOCK_CLANG_FORMAT clang-format)
if(PORTALOCK_CLANG_FORMAT)
  file(GLOB_RECURSE c_sources CONFIGURE_DEPENDS
       "${src}/core/*.[ch]" "${src}/bindings/*.[ch]" "${src}/spec/*.[ch]" "${src}/examples/*.[ch]"
       "${src}/bench/*.[ch]")
  add_test(NAME lint.clang_format
           COMMAND "${PORTALOCK_CLANG_FORMAT}" --dry-run -Werror ${c_sources})
  set_tests_properties(lint.clang_format PROPERTIES TIMEOUT 120 LABELS "lint")
else()
  message(STATUS "portalock: clang-format not found; skipping test lint.clang_format")
endif()

# Installing as users do: cmake --install (C example through pkg-config and find_package)
# and luarocks make for 5.4 and 5.1, each copy used afterwards.
find_program(PORTALOCK_LUAROCKS_EXE luarocks)
if(PORTALOCK_LUAROCKS_EXE)
  add_test(NAME install.packages COMMAND "${src}/tools/check-install")
  set_tests_properties(install.packages PROPERTIES TIMEOUT 600 LABELS "install")
else()
  message(STATUS "portalock: luarocks not found; skipping test install.packages")
endif()

# The benchmark harness in its quick mode: checks that every benchmark runs and produces
# numbers (no timing is asserted). bench/run without --quick writes bench/RESULTS.md.
if(EXISTS /usr/bin/python3)
  add_test(NAME bench.quick
           COMMAND /usr/bin/python3 "${src}/bench/run" --quick --build "${CMAKE_BINARY_DIR}")
  set_tests_properties(bench.quick PROPERTIES TIMEOUT 120 LABELS "bench")
  add_test(NAME bench.contention_rounds
           COMMAND /usr/bin/python3 "${src}/bench/contention_rounds" --processes 2 --rounds 1
                   --seconds 0.2 --build "${CMAKE_BINARY_DIR}")
  set_tests_properties(bench.contention_rounds PROPERTIES TIMEOUT 120 LABELS "bench")
  add_test(NAME bench.crash_split
           COMMAND /usr/bin/python3 "${src}/bench/crash_split" --rounds 1
                   --build "${CMAKE_BINARY_DIR}")
  set_tests_properties(bench.crash_split PROPERTIES TIMEOUT 120 LABELS "bench")
  add_test(NAME bench.semaphore_waiters
           COMMAND /usr/bin/python3 "${src}/bench/semaphore_waiters" --rounds 1
                   --build "${CMAKE_BINARY_DIR}")
  set_tests_properties(bench.semaphore_waiters PROPERTIES TIMEOUT 120 LABELS "bench")
  if(PORTALOCK_HAVE_REDIS AND PORTALOCK_TEST_REDIS_SERVER)
    add_test(NAME bench.redis_quick
             COMMAND /usr/bin/python3 "${src}/bench/redis/run" --quick --build "${CMAKE_BINARY_DIR}")
    set_tests_properties(bench.redis_quick PROPERTIES
      TIMEOUT 180 LABELS "bench"
      ENVIRONMENT "PORTALOCK_TEST_REDIS_SERVER=${PORTALOCK_TEST_REDIS_SERVER}")
  endif()
  # Inside a real nginx (the Lua 5.1 module) next to lua-resty-lock when the runner finds it.
  find_program(PORTALOCK_AB ab)
  if("5.1" IN_LIST PORTALOCK_LUA_VERSIONS AND PORTALOCK_AB AND EXISTS /usr/sbin/nginx
     AND EXISTS /usr/lib/nginx/modules/ngx_http_lua_module.so)
    add_test(NAME bench.nginx_quick
             COMMAND /usr/bin/python3 "${src}/bench/nginx/run" --quick --build "${CMAKE_BINARY_DIR}")
    set_tests_properties(bench.nginx_quick PROPERTIES TIMEOUT 180 LABELS "bench")
  else()
    message(STATUS "portalock: no Lua 5.1 module, ab, nginx or its Lua module; "
                   "skipping test bench.nginx_quick")
  endif()
endif()
