-- luacheck lua spec examples bench   (ctest runs it as lint.luacheck)
std = "max"
max_line_length = 120
files["spec"] = {std = "+busted"}
exclude_files = {"build*/**", "lua_modules/**"}

-- Config files run with the declaration vocabulary of portalock.config as their globals.
files["examples/portalock.conf.lua"] = {
  std = "min",
  read_globals = {"directory", "defaults", "lock", "rlock", "temporary_lock", "pid_file_lock",
    "bounded_semaphore", "semaphore", "redis"},
}
