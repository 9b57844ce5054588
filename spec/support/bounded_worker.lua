-- Runs `jobs` short jobs through a bounded semaphore, logging "E <t>" and "X <t>" (monotonic
-- seconds) for every job's enter and exit into `log`.
-- usage: bounded_worker.lua DIR NAME MAXIMUM JOBS LOG
local portalock = require "portalock"
local core = require "portalock.core"

local dir, name, maximum, jobs, log = ...
local sem = portalock.NamedBoundedSemaphore(tonumber(maximum), {
  name = name, directory = dir, timeout = 60, check_interval = 0.005,
})
local lines = {}
for _ = 1, tonumber(jobs) do
  local slot, err = sem:acquire()
  if not slot then
    io.stderr:write(tostring(err), "\n")
    os.exit(2)
  end
  lines[#lines + 1] = string.format("E %.9f", core.monotonic())
  local wake = core.monotonic() + 0.003
  core.wait(nil, wake, wake)
  lines[#lines + 1] = string.format("X %.9f", core.monotonic())
  assert(sem:release())
end
local f = assert(io.open(log, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
