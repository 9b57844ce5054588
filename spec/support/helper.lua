--- Shared helpers for the specs: temporary directories, files, child processes.
local core = require "portalock.core"

local helper = {}

--- The interpreter the specs run under; children are spawned with the same one.
helper.lua = os.getenv("PORTALOCK_TEST_LUA") or "lua5.4"

--- Python with Debian's portalocker (not whatever python3 comes first on PATH).
helper.python = "/usr/bin/python3"

--- `path` made absolute against the working directory.
function helper.absolute(path)
  if path:sub(1, 1) == "/" then
    return path
  end
  local pipe = assert(io.popen("pwd"))
  local cwd = pipe:read("*l")
  pipe:close()
  return cwd .. "/" .. path:gsub("^%./", "")
end

--- The repository root: two levels above this file.
helper.root = helper.absolute(debug.getinfo(1, "S").source:gsub("^@", "")):gsub("/spec/support/helper%.lua$", "")

function helper.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function helper.sleep(seconds)
  local wake = core.monotonic() + seconds
  core.wait(nil, wake, wake)
end

function helper.tmpdir()
  local pipe = assert(io.popen("mktemp -d /tmp/portalock-spec.XXXXXX"))
  local dir = pipe:read("*l")
  pipe:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

function helper.rmtree(dir)
  assert(dir:match("^/tmp/portalock%-spec%."), "refusing to remove " .. dir)
  os.execute("rm -rf " .. helper.quote(dir))
end

function helper.exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
  end
  return f ~= nil
end

function helper.read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local content = f:read("*a")
  f:close()
  return content
end

function helper.write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

--- Exit code of a shell command, the same on every runtime (128+N for signal N).
function helper.run(command)
  local a, how, code = os.execute(command)
  if type(a) == "number" then -- 5.1 and LuaJIT: the raw wait status
    if a % 256 ~= 0 then
      return 128 + a % 128
    end
    return math.floor(a / 256)
  elseif how == "signal" then
    return 128 + code
  end
  return code
end

--- Output and exit code of a shell command.
function helper.capture(command)
  local path = os.tmpname()
  local code = helper.run(command .. " > " .. helper.quote(path) .. " 2>&1")
  local output = helper.read(path)
  os.remove(path)
  return output, code
end

--- A command line that runs Lua code in a fresh interpreter (same LUA_PATH/LUA_CPATH);
--- the code receives the extra (string) arguments as `...`.
function helper.lua_command(code, ...)
  local args = {}
  for i = 1, select("#", ...) do
    args[i] = string.format("%q", tostring((select(i, ...))))
  end
  local chunk = "(function(...) " .. code .. "\nend)(" .. table.concat(args, ", ") .. ")"
  return helper.lua .. " -e " .. helper.quote(chunk)
end

--- A command line that runs spec/support/<script>.lua with arguments.
function helper.script_command(script, ...)
  local parts = {helper.lua, helper.quote("spec/support/" .. script .. ".lua")}
  for i = 1, select("#", ...) do
    parts[#parts + 1] = helper.quote((select(i, ...)))
  end
  return table.concat(parts, " ")
end

--- Starts a command in the background; returns its PID.
function helper.spawn(command, log)
  local pipe = assert(io.popen(command .. " > " .. helper.quote(log or "/dev/null") .. " 2>&1 & echo $!"))
  local pid = tonumber(pipe:read("*l"))
  pipe:close()
  return pid
end

--- False for a process that is gone or a zombie: nobody may reap what we backgrounded, and
--- whoever adopts it can take a second. /proc answers without spawning `kill -0`.
function helper.alive(pid)
  local stat = helper.read("/proc/" .. tostring(pid) .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

function helper.kill(pid, signal)
  os.execute("kill -" .. (signal or "KILL") .. " " .. pid .. " 2>/dev/null")
end

--- Polls until predicate() is true; false after `seconds`.
function helper.wait_until(predicate, seconds)
  local deadline = core.monotonic() + (seconds or 10)
  while not predicate() do
    if core.monotonic() > deadline then
      return false
    end
    helper.sleep(0.01)
  end
  return true
end

--- Starts spec/support/hold.lua: it acquires, writes `ready`, holds until `release` exists
--- (or `seconds` pass), then releases and exits. Returns its PID once it holds the lock.
function helper.hold(class, path, dir, opts)
  opts = opts or {}
  local ready = dir .. "/ready." .. tostring(os.time()) .. "." .. tostring(math.random(1e9))
  local pid = helper.spawn(helper.script_command("hold", class, path, ready, dir .. "/release",
    tostring(opts.seconds or 30), opts.backend or "flock", opts.mode or "a"), dir .. "/hold.log")
  assert(helper.wait_until(function() return helper.exists(ready) end, 10),
    "the child never took the lock: " .. tostring(helper.read(dir .. "/hold.log")))
  return pid
end

--- An environment prefix for non-Lua peers: the sanitizer CI preloads libasan for us only.
helper.peer_env = "env -u LD_PRELOAD "

return helper
