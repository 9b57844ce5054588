-- Child process for wake_spec: N acquire-hold-release cycles on one shared object, then prints
-- what ended this process's waits: "timer=T woken=W" (woken: by a release or the kernel).
-- usage: handoff.lua CLASS PATH_OR_NAME N START (CLOCK_MONOTONIC seconds: both begin together)
local portalock = require "portalock"
local core = require "portalock.core"
local wait = require "portalock.wait"

local class, where, n, start = ...
-- A fallback timer this long can only end a wait whose release was missed.
local settings = {timeout = 60, check_interval = 30, fail_when_locked = false}
local object
if class == "NamedBoundedSemaphore" then
  local dir, name = where:match("^(.*)/([^/]+)$")
  object = portalock.NamedBoundedSemaphore(1, {name = name, directory = dir, timeout = 60,
    check_interval = 30})
elseif class == "Semaphore" then
  object = portalock.Semaphore(1, {name = where, timeout = 60, check_interval = 30})
else
  object = portalock[class](where, settings)
end

start = tonumber(start)
while core.monotonic() < start do
  core.wait(nil, start, start)
end
-- Each hold lasts 100 µs, so that the two processes certainly contend however their starts
-- are skewed.
for _ = 1, tonumber(n) do
  assert(object:acquire())
  local until_time = core.monotonic() + 0.0001
  core.wait(nil, until_time, until_time)
  assert(object:release())
end
local counters = wait.counters()
io.write(string.format("timer=%d woken=%d\n", counters.timer, counters.event + counters.kernel))
