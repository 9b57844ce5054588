-- Child process for the specs: N cycles of lock, read the lock file through the handle,
-- append the next line number without flushing, release. A holder's buffered writes must
-- reach the file before the next holder gets the lock, or numbers repeat.
-- usage: append.lua LOCK_PATH N
local portalock = require "portalock"

local path, n = ...
local lock = portalock.Lock(path, {mode = "a+", timeout = 60, check_interval = 0.001})

for _ = 1, tonumber(n) do
  local fh = assert(lock:acquire())
  assert(fh:seek("set"))
  local lines = select(2, assert(fh:read("*a")):gsub("\n", "\n"))
  assert(fh:seek("end"))
  assert(fh:write(lines + 1, "\n"))
  assert(lock:release())
end
