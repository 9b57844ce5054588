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

--- The inode number of `path` now, or nil.
function upstream.inode(path)
  local out, code = helper.capture("stat -c %i " .. helper.quote(path))
  return code == 0 and tonumber(out:match("%d+")) or nil
end

return upstream
