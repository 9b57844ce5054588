--- For core_options_spec, in a fresh interpreter (a small heap, so that an eager collector
-- frees an unanchored string within a step or two; under ASan that is a reported use after
-- free, which ends this process). Usage: option_strings.lua DIR
-- Prints, for each option table of numbers, the last error raised; then "fresh ok" once the
-- strings an __index metamethod made up came through intact.
local core = require "portalock.core"

local dir = assert(arg[1], "usage: option_strings.lua DIR")

if _VERSION == "Lua 5.4" then
  collectgarbage("incremental", 0, 1000, 0)
else
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 1000)
end

local ROUNDS = 3000

local function last_error(fn, ...)
  local ok, message
  for _ = 1, ROUNDS do
    ok, message = pcall(fn, ...)
  end
  print(ok and "no error" or tostring(message))
end

last_error(core.new_lock, "lock", dir .. "/x", {mode = 12345})
last_error(core.new_rlock, dir .. "/x", {mode = 12345})
last_error(core.new_bounded, 2, {name = 123, directory = dir})
last_error(core.new_bounded, 2, {name = "n", filename_pattern = 1234567, directory = dir})
last_error(core.new_bounded, 2, {name = "n", directory = 77})

-- Each value is built anew at every lookup (string.char; long strings, which 5.3+ do not
-- intern): nothing but the Lua stack references it.
local long = ("n"):rep(60)
local function fresh(i)
  return setmetatable({}, {__index = function(_, key)
    if key == "mode" then
      return string.char(97, 98, 43) -- a mode C accepts, spelt nowhere else
    elseif key == "name" then
      return string.format("%s-%d", long, i)
    elseif key == "directory" then
      return string.format("%s", dir)
    elseif key == "filename_pattern" then
      return string.format("%s{number}.%s", long, "slot")
    end
  end})
end

for i = 1, ROUNDS do
  local lock = assert(core.new_lock("lock", dir .. "/m", fresh(i)))
  assert(tostring(lock) == "portalock.core handle '" .. dir .. "/m' (not held)", tostring(lock))
  local sem = assert(core.new_bounded(3, fresh(i)))
  assert(sem:name() == long .. "-" .. i, sem:name())
  assert(sem:filename_pattern() == long .. "{number}.slot", sem:filename_pattern())
  assert(sem:directory() == dir, sem:directory())
end
print("fresh ok")
