-- luacheck lua spec examples bench   (ctest runs it as lint.luacheck)
std = "max"
max_line_length = 120
files["spec"] = {std = "+busted"}
exclude_files = {"build*/**", "lua_modules/**"}
