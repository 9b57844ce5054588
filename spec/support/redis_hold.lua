-- Child process for the Redis specs: holds a RedisLock (MAXIMUM "lock") or a RedisSemaphore of
-- MAXIMUM permits until told to let go. Writes its token into READY_FILE once it holds; exits 2
-- when it cannot acquire within 10 seconds.
-- usage: redis_hold.lua URL NAME MAXIMUM READY_FILE RELEASE_FILE SECONDS
local portalock = require "portalock"
local core = require "portalock.core"

local url, name, maximum, ready, release, seconds = ...
local opts = {redis = url, timeout = 10}
local obj
if maximum == "lock" then
  obj = portalock.RedisLock(name, opts)
else
  obj = portalock.RedisSemaphore(name, tonumber(maximum), opts)
end
local held, err = obj:acquire()
if not held then
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end
local out = assert(io.open(ready .. ".tmp", "w"))
out:write(tostring(obj.token))
out:close()
assert(os.rename(ready .. ".tmp", ready))

local deadline = core.monotonic() + tonumber(seconds)
while core.monotonic() < deadline and not io.open(release, "r") do
  local wake = core.monotonic() + 0.01
  core.wait(nil, wake, wake)
end
assert(obj:release())
