-- What the Lua benchmark drivers (bench/driver.lua, bench/redis/driver.lua) share: the bound on
-- every wait, the clock (CLOCK_MONOTONIC nanoseconds), the output, the timed window and the
-- serve command. bench/run puts bench/ on LUA_PATH: require "benchlib.driver".
local core = require "portalock.core"

local driver = {}

driver.WAIT_LIMIT = 120 -- seconds: no wait in a benchmark lasts longer

function driver.now_ns()
  return math.floor(core.monotonic() * 1e9)
end

function driver.sleep_until_ns(t)
  local s = t / 1e9
  while core.monotonic() < s do
    core.wait(nil, s, s)
  end
end

--- One line of output, the words separated by spaces, flushed.
function driver.out(...)
  io.stdout:write(table.concat({...}, " "), "\n")
  io.stdout:flush()
end

--- Says "ready" and reads the window's start and end times from stdin.
function driver.read_window()
  driver.out("ready")
  local line = io.stdin:read("l")
  local start, finish = line:match("(%d+) (%d+)")
  return tonumber(start), tonumber(finish)
end

--- Says "ready", then acquires or releases at each line of stdin ("acquire", "release"),
-- saying when; any other line ends it.
function driver.serve_stdin(acquire, release)
  driver.out("ready")
  for line in io.stdin:lines() do
    if line == "acquire" then
      acquire()
      driver.out("acquired", driver.now_ns())
    elseif line == "release" then
      local t = driver.now_ns()
      release()
      driver.out("released", t)
    else
      break
    end
  end
end

return driver
