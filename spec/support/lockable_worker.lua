-- Child process for lockable_spec.
-- usage: lockable_worker.lua LOCKFILE count COUNTER N    N increments through locked methods
--        lockable_worker.lua LOCKFILE hold READY SECONDS acquire, write READY, hold, release
local portalock = require "portalock"
local core = require "portalock.core"
local Lockable = portalock.Lockable

local lockfile, role, a, b = ...

local Counter = Lockable.mixin({})
Counter.__index = Counter

function Counter.new(path, counter)
  return Lockable.init(setmetatable({counter = counter}, Counter), {filename = path})
end

Counter.read = Lockable.locked(function(self)
  local f = assert(io.open(self.counter, "r"))
  local value = tonumber(f:read("*a"))
  f:close()
  return value
end)

Counter.write = Lockable.locked(function(self, value)
  local f = assert(io.open(self.counter, "w"))
  f:write(tostring(value))
  f:close()
end)

-- A locked method calling other locked methods (reentrancy), with a window between read and
-- write in which an unlocked increment would lose updates.
Counter.increment = Lockable.locked(function(self)
  local value = self:read()
  local wake = core.monotonic() + 0.0005
  core.wait(nil, wake, wake)
  self:write(value + 1)
end)

local counter = Counter.new(lockfile, a)
if role == "count" then
  for _ = 1, tonumber(b) do
    counter:increment()
  end
elseif role == "hold" then
  assert(counter:acquire() == true)
  local f = assert(io.open(a, "w"))
  f:write(core.getpid())
  f:close()
  local wake = core.monotonic() + tonumber(b)
  core.wait(nil, wake, wake)
  assert(counter:release())
else
  error("unknown role " .. tostring(role))
end
