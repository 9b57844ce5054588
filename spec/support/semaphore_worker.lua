-- Child process for semaphore_spec: one role per run.
-- usage: semaphore_worker.lua NAME wait TIMEOUT READY      acquire, print the outcome, exit
--                                                            without releasing (the count is
--                                                            not given back)
--        semaphore_worker.lua NAME hold READY               acquire, write READY, sleep until killed
--        semaphore_worker.lua NAME slots LOG ROUNDS         ROUNDS times: with(sem) append "+",
--                                                            sleep, append "-"
local portalock = require "portalock"
local core = require "portalock.core"

local name, role, a, b = ...

local function sleep(seconds)
  local wake = core.monotonic() + seconds
  core.wait(nil, wake, wake)
end

local function touch(path)
  local f = assert(io.open(path, "w"))
  f:write(core.getpid())
  f:close()
end

local sem = portalock.Semaphore(0, {name = name})
if role == "wait" then
  assert(sem:get_value()) -- opened before we say we are ready
  touch(b)
  local ok, err = sem:acquire({timeout = tonumber(a)})
  assert(ok ~= nil, tostring(err))
  io.write(ok and "acquired\n" or "timeout\n")
elseif role == "hold" then
  assert(sem:acquire({timeout = 10}))
  touch(a)
  sleep(60)
elseif role == "slots" then
  local function append(text)
    local f = assert(io.open(a, "a"))
    f:write(text, "\n")
    f:close()
  end
  for _ = 1, tonumber(b) do
    portalock.with(sem, function()
      append("+")
      sleep(0.05)
      append("-")
    end)
  end
else
  error("unknown role " .. tostring(role))
end
