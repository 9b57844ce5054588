--- Helpers for the specs ported from portalocker's own tests (spec/upstream/): what Python's
-- tests observe with monkeypatching, these observe from outside a real child process.
local core = require "portalock.core"
local helper = require "spec.support.helper"

local upstream = {}

--- A command line that runs `command` under strace(1): `trace` names the system calls to
--- record (into `log`, or nowhere), `inject` is an optional strace -e inject= argument
--- (e.g. "unlink:error=EACCES:when=1") that makes such a call fail the way the machine cannot.
function upstream.strace(command, trace, log, inject)
  local parts = {"strace -f -qq -o", helper.quote(log or "/dev/null"), "-e", helper.quote("trace=" .. trace)}
  if inject then
    parts[#parts + 1] = "-e " .. helper.quote("inject=" .. inject)
  end
  parts[#parts + 1] = command
  return table.concat(parts, " ")
end

--- Whether strace(1) can trace here (it needs ptrace).
function upstream.have_strace()
  return helper.run("strace -qq -o /dev/null -e trace=none true 2>/dev/null") == 0
end

--- The lines of a strace log that mention `pattern` (plain text), in order.
function upstream.trace_lines(log, pattern)
  local found = {}
  for line in (helper.read(log) or ""):gmatch("[^\n]+") do
    if not pattern or line:find(pattern, 1, true) then
      found[#found + 1] = line
    end
  end
  return found
end

-- The descriptor numbers of process `pid` that are open on `path` (also once it is unlinked).
local function descriptors_of(pid, path)
  local fds = {}
  local pipe = assert(io.popen("for f in /proc/" .. pid .. "/fd/*; do printf '%s %s\\n' \"${f##*/}\" "
    .. "\"$(readlink \"$f\")\"; done 2>/dev/null"))
  for fd, target in pipe:read("*a"):gmatch("(%d+) ([^\n]*)") do
    if target == path or target == path .. " (deleted)" then
      fds[#fds + 1] = tonumber(fd)
    end
  end
  pipe:close()
  return fds
end
upstream.descriptors_of = descriptors_of

--- The descriptors this process has open on `path`, as a set.
function upstream.my_descriptors(path)
  local set = {}
  for _, fd in ipairs(descriptors_of(core.getpid(), path)) do
    set[fd] = true
  end
  return set
end

--- The inode numbers of the files process `pid` has open under the name `path`.
function upstream.open_inodes(pid, path)
  local inodes = {}
  for _, fd in ipairs(descriptors_of(pid, path)) do
    local out = helper.capture("stat -L -c %i /proc/" .. pid .. "/fd/" .. fd)
    inodes[#inodes + 1] = tonumber(out:match("%d+"))
  end
  return inodes
end

--- Runs a child that acquires and releases portalock[class](filename) under strace. Returns
--- what its release did, in order, from the moment it held the lock on `native` (the file that
--- carries the kernel lock): "unlink <path>" for each file it removed, then "unlock" (flock
--- LOCK_UN) or "close" of the locked descriptor, whichever came first.
function upstream.release_events(class, filename, native)
  local log = os.tmpname()
  local out, code = helper.capture(upstream.strace(helper.lua_command([[
    local portalock = require "portalock"
    local class, filename = ...
    local lock = portalock[class](filename)
    assert(lock:acquire())
    assert(lock:release())
  ]], class, filename), "openat,dup2,dup3,unlink,unlinkat,flock,close", log))
  assert(code == 0, out)
  local events, fd = {}, nil
  for _, line in ipairs(upstream.trace_lines(log)) do
    if not fd then
      if line:find("openat(", 1, true) and line:find('"' .. native .. '"', 1, true) then
        fd = line:match("= (%d+)$")
      end
    elseif line:find("dup[23]%(" .. fd .. ", ") then
      -- The 5.1 binding moves the descriptor into an io handle's FILE.
      fd = line:match("= (%d+)$")
    elseif line:find("unlink", 1, true) then
      events[#events + 1] = "unlink " .. line:match('"([^"]*)"')
    elseif line:find("flock(" .. fd .. ",", 1, true) and line:find("LOCK_UN", 1, true) then
      events[#events + 1] = "unlock"
      break
    elseif line:find("close(" .. fd .. ")", 1, true) then
      events[#events + 1] = "close"
      break
    end
  end
  os.remove(log)
  return events
end

--- The inode number of `path` now, or nil.
function upstream.inode(path)
  local out, code = helper.capture("stat -c %i " .. helper.quote(path))
  return code == 0 and tonumber(out:match("%d+")) or nil
end

return upstream
