-- Child process for the specs: holds a lock until told to let go.
-- usage: hold.lua CLASS PATH READY_FILE RELEASE_FILE SECONDS BACKEND MODE
local portalock = require "portalock"
local core = require "portalock.core"

local class, path, ready, release, seconds, backend, mode = ...
local opts = {backend = backend, timeout = 10}
if class == "Lock" or class == "RLock" then
  opts.mode = mode
end
local lock = portalock[class](path, opts)
local fh = assert(lock:acquire())
if class ~= "PidFileLock" then
  fh:write("held by ", core.getpid(), "\n")
  fh:flush()
end
local out = assert(io.open(ready, "w"))
out:write(core.getpid())
out:close()

local deadline = core.monotonic() + tonumber(seconds)
while core.monotonic() < deadline and not io.open(release, "r") do
  local wake = core.monotonic() + 0.01
  core.wait(nil, wake, wake)
end
assert(lock:release())
