--- Runs the command line tool bin/portalock as real processes, for cli_spec.
-- Every process runs with its working directory in the spec's temporary directory, without
-- $PORTALOCK_CONFIG (unless a spec sets it), and bounded in time: synchronous runs under
-- timeout(1), background ones in their own session (setsid) whose process group cleanup()
-- kills, together with every PID a spec registered.
local core = require "portalock.core"
local helper = require "spec.support.helper"

local cli = {}

local quote = helper.quote

cli.root = helper.root
cli.bin = cli.root .. "/bin/portalock"

--- Python with portalocker for the interop cases, or nil (those cases are skipped).
cli.python = os.getenv("PORTALOCK_TEST_PYTHON")
if cli.python == "" then
  cli.python = nil
end

-- "portalock ARGS..." as a shell command line (args: a list of strings).
local function command_line(args)
  local parts = {helper.lua, quote(cli.bin)}
  for i = 1, #args do
    parts[#parts + 1] = quote(args[i])
  end
  return table.concat(parts, " ")
end
cli.command_line = command_line

-- env(1) prefix: no PORTALOCK_CONFIG unless opts.env gives one; opts.env = {NAME = value}.
local function env_prefix(opts)
  local parts = {"env", "-u", "PORTALOCK_CONFIG"}
  local names = {}
  for name in pairs(opts.env or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    parts[#parts + 1] = quote(name .. "=" .. opts.env[name])
  end
  return table.concat(parts, " ")
end

local Session = {}
Session.__index = Session

--- A session owns the temporary directory `dir` (the working directory of every run) and
--- whatever processes it starts.
function cli.session(dir)
  return setmetatable({dir = dir, count = 0, groups = {}, pids = {}, pid_files = {}}, Session)
end

function Session:file(stem)
  self.count = self.count + 1
  return string.format("%s/.cli-%s-%d", self.dir, stem, self.count)
end

--- Runs portalock ARGS and waits (at most opts.timeout, default 30 s) for it to end.
--- opts: stdin (a string to feed), stdin_file (a path), stdin_command (a shell command
--- piped in), env, cwd, prefix (a command that runs portalock, such as setpriv ...).
--- Returns the exit code (124 or 137 when timeout(1) stopped it), stdout, stderr and the
--- elapsed seconds.
function Session:run(args, opts)
  opts = opts or {}
  local out, err = self:file("out"), self:file("err")
  local stdin = "/dev/null"
  if opts.stdin then
    stdin = self:file("in")
    helper.write(stdin, opts.stdin)
  elseif opts.stdin_file then
    stdin = opts.stdin_file
  end
  local shell = "cd " .. quote(opts.cwd or self.dir) .. " && "
  if opts.stdin_command then
    shell = shell .. "( " .. opts.stdin_command .. " ) | "
  end
  shell = shell .. "timeout -k 5 " .. tostring(opts.timeout or 30) .. " " .. env_prefix(opts) .. " "
    .. (opts.prefix and opts.prefix .. " " or "") .. command_line(args)
  if not opts.stdin_command then
    shell = shell .. " < " .. quote(stdin)
  end
  shell = shell .. " > " .. quote(out) .. " 2> " .. quote(err)
  local started = core.monotonic()
  local code = helper.run(shell)
  local elapsed = core.monotonic() - started
  local stdout, stderr = helper.read(out) or "", helper.read(err) or ""
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr, elapsed
end

--- A readable summary of one run's result, for assertion messages.
function cli.describe(code, stdout, stderr)
  return string.format("exit %s\n--- stdout:\n%s--- stderr:\n%s", tostring(code), tostring(stdout),
    tostring(stderr))
end

--- Starts a shell command in a session of its own (its first word is exec'd, so the PID is
--- that program's); cleanup() kills its whole process group. Returns the PID.
function Session:spawn_shell(command, log)
  local pid = helper.spawn("cd " .. quote(self.dir) .. " && exec setsid " .. command, log)
  assert(pid, "could not start " .. command)
  self.groups[#self.groups + 1] = pid
  return pid
end

local Process = {}
Process.__index = Process

--- Starts portalock ARGS in the background, in a session of its own, with SIGINT and SIGQUIT
--- at their defaults (a shell's background job would ignore them). opts: stdin_command, env.
--- Returns a process: pid (portalock's), wait(seconds) -> exit code or nil, stdout(), stderr().
function Session:spawn(args, opts)
  opts = opts or {}
  local base = self:file("proc")
  local p = setmetatable({out = base .. ".out", err = base .. ".err", code_file = base .. ".code"}, Process)
  local run = env_prefix(opts) .. " env --default-signal=INT,QUIT,TERM,HUP " .. command_line(args)
  if opts.stdin_command then
    run = "( " .. opts.stdin_command .. " ) | " .. run
  else
    run = run .. " < /dev/null"
  end
  local inner = run .. " > " .. quote(p.out) .. " 2> " .. quote(p.err) .. " & echo $! > " .. quote(base .. ".pid.part")
    .. "; mv " .. quote(base .. ".pid.part") .. " " .. quote(base .. ".pid")
    .. "; wait $!; echo $? > " .. quote(p.code_file .. ".part") .. "; mv " .. quote(p.code_file .. ".part") .. " "
    .. quote(p.code_file)
  self:spawn_shell("sh -c " .. quote(inner))
  assert(helper.wait_until(function() return helper.exists(base .. ".pid") end, 10), "portalock did not start")
  p.pid = tonumber(helper.read(base .. ".pid"))
  assert(p.pid, "no PID for portalock")
  self.pids[#self.pids + 1] = p.pid
  return p
end

--- The exit code once the process has ended (bounded by `seconds`, default 15), else nil.
function Process:wait(seconds)
  local path = self.code_file
  if not helper.wait_until(function() return helper.exists(path) end, seconds or 15) then
    return nil
  end
  return tonumber(helper.read(path))
end

function Process:done()
  return helper.exists(self.code_file)
end

function Process:stdout()
  return helper.read(self.out) or ""
end

function Process:stderr()
  return helper.read(self.err) or ""
end

--- Registers a file into which a child writes its PID: cleanup() kills that PID too.
function Session:track_pid_file(path)
  self.pid_files[#self.pid_files + 1] = path
end

--- Waits (bounded) until `path` holds a PID; returns it.
function cli.read_pid(path, seconds)
  local pid
  helper.wait_until(function()
    pid = tonumber(helper.read(path) or "")
    return pid ~= nil
  end, seconds or 10)
  return pid
end

--- Kills everything the session started, then waits (bounded) for it to be gone.
function Session:cleanup()
  local victims = {}
  for _, path in ipairs(self.pid_files) do
    local pid = tonumber(helper.read(path) or "")
    if pid then
      victims[#victims + 1] = pid
    end
  end
  for _, pid in ipairs(self.pids) do
    victims[#victims + 1] = pid
  end
  for _, group in ipairs(self.groups) do
    os.execute("kill -KILL -" .. group .. " 2>/dev/null") -- the process group (dash knows no --)
    victims[#victims + 1] = group
  end
  for _, pid in ipairs(victims) do
    helper.kill(pid, "KILL")
  end
  helper.wait_until(function()
    for _, pid in ipairs(victims) do
      if helper.alive(pid) then
        return false
      end
    end
    return true
  end, 5)
  self.groups, self.pids, self.pid_files = {}, {}, {}
end

--- Exit code of `flock -n [-s] PATH true` (util-linux): 0 when it could take the lock.
function cli.flock_try(path, shared)
  return helper.run(helper.peer_env .. "timeout -k 2 10 flock -n " .. (shared and "-s " or "")
    .. quote(path) .. " true")
end

--- Starts `flock [-s] PATH` holding the lock until `release` exists (or about 20 s); returns
--- flock's PID once it holds the lock.
function Session:flock_hold(path, opts)
  opts = opts or {}
  local ready = self:file("flock-ready")
  local release = opts.release or (self.dir .. "/release")
  local script = "touch " .. quote(ready) .. "; i=0; while [ ! -e " .. quote(release)
    .. " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done"
  local pid = self:spawn_shell(helper.peer_env .. "flock " .. (opts.shared and "-s " or "-x ") .. quote(path)
    .. " sh -c " .. quote(script))
  assert(helper.wait_until(function() return helper.exists(ready) end, 10), "flock never took " .. path)
  return pid
end

--- Files in `dir` (not starting with ".cli-"), sorted.
function cli.listing(dir)
  local pipe = assert(io.popen("ls -A " .. quote(dir) .. " 2>/dev/null"))
  local names = {}
  for line in pipe:lines() do
    if line:sub(1, 5) ~= ".cli-" then
      names[#names + 1] = line
    end
  end
  pipe:close()
  table.sort(names)
  return names
end

--- Maximum number of [start, end] intervals open at once.
function cli.max_overlap(intervals)
  local events = {}
  for _, iv in ipairs(intervals) do
    events[#events + 1] = {iv[1], 1}
    events[#events + 1] = {iv[2], -1}
  end
  table.sort(events, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2] -- an end before a start at the same instant
  end)
  local open, most = 0, 0
  for _, e in ipairs(events) do
    open = open + e[2]
    if open > most then
      most = open
    end
  end
  return most
end

--- True when one of the open descriptors of process `pid` is `path`.
function cli.has_open(pid, path)
  local pipe = assert(io.popen("ls -l /proc/" .. tostring(pid) .. "/fd/ 2>/dev/null"))
  local text = pipe:read("*a")
  pipe:close()
  return text:find("-> " .. path, 1, true) ~= nil
end

return cli
