-- What examples/embed's host runs: a Lock, a NamedBoundedSemaphore and an atomic write, with
-- the portalock compiled into the host. Usage: embed_lua54 script.lua DIRECTORY
local portalock = require "portalock"

local dir = assert(arg[1], "usage: script.lua DIRECTORY")

-- One migration at a time: an exclusive lock, released by with() however the function ends.
local lock = portalock.Lock(dir .. "/migrate.lock", {timeout = 10})
portalock.with(lock, function(handle)
  handle:write("migrating\n")
end)

-- At most two encoders at once, across every process that names this semaphore.
local encoders = portalock.NamedBoundedSemaphore(2, {name = "encoder", directory = dir,
                                                      timeout = 10})
local slot = assert(encoders:acquire())
print("holding encoder slot " .. slot.filename)
encoders:release()

-- A config file rewritten whole: readers see the old text or the new one, never half.
local config = dir .. "/app.conf"
local new = assert(portalock.open_atomic(config))
new:write("workers = 4\n")
assert(new:commit())
local fh = assert(io.open(config))
local text = fh:read("a")
fh:close()
assert(text == "workers = 4\n", text)

print(("portalock %s on %s: lock, semaphore and atomic write done"):format(portalock._VERSION,
  jit and jit.version or _VERSION))
