-- Holds a slot of a bounded semaphore until killed (or 30 s), after writing `ready`.
-- usage: bounded_hold.lua DIR NAME MAXIMUM READY
local portalock = require "portalock"
local core = require "portalock.core"

local dir, name, maximum, ready = ...
local sem = portalock.NamedBoundedSemaphore(tonumber(maximum), {name = name, directory = dir})
local slot = assert(sem:acquire())
local f = assert(io.open(ready, "w"))
f:write(slot.filename)
f:close()
local wake = core.monotonic() + 30
core.wait(nil, wake, wake)
