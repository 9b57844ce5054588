-- Child process for the specs: N lock-increment-unlock cycles on a shared counter file.
-- usage: count.lua CLASS LOCK_PATH COUNTER_PATH N BACKEND
local portalock = require "portalock"

local class, lock_path, counter_path, n, backend = ...
local lock = portalock[class](lock_path, {backend = backend, timeout = 60, check_interval = 0.005})

for _ = 1, tonumber(n) do
  assert(lock:acquire())
  local f = assert(io.open(counter_path, "r"))
  local value = f:read("*n")
  f:close()
  f = assert(io.open(counter_path, "w"))
  f:write(value + 1)
  f:close()
  assert(lock:release())
end
