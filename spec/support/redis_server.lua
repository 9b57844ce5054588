--- A real redis-server on loopback for the specs, on a port of its own, in a directory of its
-- own, persisting nothing unless asked (never port 6379, never a system service).
-- PORTALOCK_TEST_REDIS_SERVER names the binary (else redis-server on PATH); redis-cli is taken
-- from the same directory, else from PATH. Every server must be closed, also when a spec fails:
-- server:close(), or redis_server.close_all() in an after_each (busted keeps one finally per
-- test); closing kills what is left of the server and its background commands and removes
-- the directory.
local core = require "portalock.core"
local helper = require "spec.support.helper"

local redis_server = {}

math.randomseed(os.time() + core.getpid())

local START_SECONDS = 10
local STOP_SECONDS = 5
local CLI_SECONDS = 10
-- A PING unanswered for this long: the server is asleep.
local SLEEP_PROBE_SECONDS = 0.25
local PORT_ATTEMPTS = 8
-- Below Linux's ephemeral range (32768-60999), where outgoing connections take their ports.
local PORT_LOW, PORT_HIGH = 20000, 32000

local function on_path(name)
  local found = helper.capture("command -v " .. helper.quote(name))
  found = found and found:match("^(/[^\n]*)\n")
  return found
end

function redis_server.binary()
  local configured = os.getenv("PORTALOCK_TEST_REDIS_SERVER")
  if configured and configured ~= "" then
    return configured
  end
  return on_path("redis-server")
end

local function cli_binary()
  local server = redis_server.binary()
  local sibling = server and server:match("^(.*/)[^/]*$")
  if sibling and helper.exists(sibling .. "redis-cli") then
    return sibling .. "redis-cli"
  end
  return on_path("redis-cli")
end

--- nil when a real redis-server can run the specs, else why not (for pending()).
function redis_server.missing()
  local exe = redis_server.binary()
  if not exe or not helper.exists(exe) then
    return "redis-server is not installed (apt-get install redis-server redis-tools, or set "
      .. "PORTALOCK_TEST_REDIS_SERVER)"
  end
  if not cli_binary() then
    return "redis-cli is not installed (apt-get install redis-tools)"
  end
end

--- The URL of a Redis on loopback at `port`, database 0.
function redis_server.url(port)
  return "redis://127.0.0.1:" .. tostring(port) .. "/0"
end

local Server = {}
Server.__index = Server

local open_servers = {} -- started, not closed yet

local function shell_words(words)
  local quoted = {}
  for i, word in ipairs(words) do
    quoted[i] = helper.quote(word)
  end
  return table.concat(quoted, " ")
end

-- redis-cli -p PORT ARGS..., killed after `seconds`.
local function cli_command(self, seconds, ...)
  return helper.peer_env .. "timeout -k 1 " .. seconds .. " "
    .. shell_words({cli_binary(), "-p", tostring(self.port), ...})
end

--- redis-cli -p PORT ARGS...: its output (stderr too) and exit code.
function Server:cli(...)
  return helper.capture(cli_command(self, CLI_SECONDS, ...))
end

function Server:running()
  return self.pid ~= nil and helper.alive(self.pid)
end

function Server:log()
  return helper.read(self.log_path) or ""
end

local function arguments(self)
  local args = {redis_server.binary(), "--bind", "127.0.0.1", "--port", tostring(self.port),
    "--dir", self.dir, "--daemonize", "no", "--appendonly", "no"}
  if self.rdb then
    -- Any save point makes a SIGTERM'ed server write dump.rdb, which the next start loads.
    args[#args + 1], args[#args + 2] = "--save", "3600 1"
  else
    args[#args + 1], args[#args + 2] = "--save", ""
  end
  if self.debug then
    args[#args + 1], args[#args + 2] = "--enable-debug-command", "local"
  end
  if self.socket then
    args[#args + 1], args[#args + 2] = "--unixsocket", self.socket
    args[#args + 1], args[#args + 2] = "--unixsocketperm", "700"
  end
  return args
end

-- Ours (not another server that got the port first) and done loading its data.
local function ready(self)
  local info, code = self:cli("INFO", "server", "persistence")
  return code == 0 and info:match("process_id:(%d+)") == tostring(self.pid) and info:find("loading:0", 1, true)
end

-- Starts the process on self.port; true once it answers, else false and whether the port was
-- taken.
local function launch(self)
  self.starts = self.starts + 1
  self.log_path = self.dir .. "/redis." .. self.starts .. ".log"
  self.pid = helper.spawn(helper.peer_env .. shell_words(arguments(self)), self.log_path)
  local up = helper.wait_until(function() return not self:running() or ready(self) end, START_SECONDS)
  if up and self:running() then
    return true
  end
  self:kill()
  return false, self:log():find("Address already in use", 1, true) ~= nil
end

local function await_exit(self, seconds)
  return helper.wait_until(function() return not self:running() end, seconds)
end

--- SIGTERM, and waits until the server has exited (SIGKILL after a few seconds). With `rdb`,
--- the server writes its data first. The directory stays, for restart().
function Server:stop()
  if self:running() then
    helper.kill(self.pid, "TERM")
    if not await_exit(self, STOP_SECONDS) then
      self:kill()
    end
  end
end

--- SIGKILL, and waits until the server is gone (nothing is saved).
function Server:kill()
  if self:running() then
    helper.kill(self.pid, "KILL")
    assert(await_exit(self, STOP_SECONDS), "redis-server " .. self.pid .. " survived SIGKILL")
  end
end

--- Starts the stopped or killed server again: same port, same directory (and so, with `rdb`,
--- the data it saved).
function Server:restart()
  assert(not self:running(), "restart(): redis-server " .. tostring(self.pid) .. " is still running")
  local ok = launch(self)
  if not ok then
    error("redis-server did not restart on port " .. self.port .. ":\n" .. self:log())
  end
end

--- CLIENT PAUSE for `seconds`: every client's commands wait (the server itself goes on).
function Server:pause(seconds)
  local out = self:cli("CLIENT", "PAUSE", tostring(math.floor(seconds * 1000 + 0.5)), "ALL")
  assert(out == "OK\n", "CLIENT PAUSE failed: " .. out)
end

--- DEBUG SLEEP `seconds` (needs start{debug = true}): the whole server stops for that long.
--- The command returns only when the sleep ends, so it runs in the background; debug_sleep()
--- returns once the sleep has begun (a PING goes unanswered), with a function that waits
--- (bounded) for its end and returns redis-cli's output.
function Server:debug_sleep(seconds)
  self.background = self.background + 1
  local out = self.dir .. "/debug_sleep." .. self.background
  local shell = cli_command(self, seconds + CLI_SECONDS, "DEBUG", "SLEEP", tostring(seconds)) .. " > "
    .. helper.quote(out .. ".part") .. " 2>&1; mv " .. helper.quote(out .. ".part") .. " " .. helper.quote(out)
  self.commands[#self.commands + 1] = helper.spawn("sh -c " .. helper.quote(shell))
  assert(helper.wait_until(function()
    local _, code = helper.capture(cli_command(self, SLEEP_PROBE_SECONDS, "PING"))
    return code ~= 0 or helper.exists(out)
  end, CLI_SECONDS), "DEBUG SLEEP " .. seconds .. " did not begin")
  return function(timeout)
    assert(helper.wait_until(function() return helper.exists(out) end, timeout or seconds + CLI_SECONDS),
      "DEBUG SLEEP " .. seconds .. " did not return")
    return helper.read(out)
  end
end

--- Kills whatever is left (the server, background commands) and removes the directory.
--- Safe to call twice.
function Server:close()
  for _, pid in ipairs(self.commands) do
    helper.kill(pid, "KILL")
  end
  self.commands = {}
  if self.dir then
    self:kill()
    helper.rmtree(self.dir)
    self.dir = nil
  end
  open_servers[self] = nil
end

--- Closes every server started and not closed yet.
function redis_server.close_all()
  for server in pairs(open_servers) do
    server:close()
  end
end

--- Starts a redis-server on 127.0.0.1 on a free port and returns it once it answers.
--- opts.debug: allow DEBUG (--enable-debug-command local); opts.rdb: save points, so that
--- stop() writes an RDB and restart() loads it (without it: --save '', nothing persists);
--- opts.unix: listen on a unix socket in its directory too (server.socket, its path).
--- The server: port, url, pid, dir and the methods above.
function redis_server.start(opts)
  opts = opts or {}
  local missing = redis_server.missing()
  assert(not missing, missing)
  local log
  for _ = 1, PORT_ATTEMPTS do
    local port = math.random(PORT_LOW, PORT_HIGH)
    local self = setmetatable({port = port, url = redis_server.url(port), dir = helper.tmpdir(),
      rdb = opts.rdb, debug = opts.debug, starts = 0, background = 0, commands = {}}, Server)
    self.socket = opts.unix and self.dir .. "/redis.sock" or nil
    open_servers[self] = true
    local ok, port_taken = launch(self)
    if ok then
      return self
    end
    log = self:log()
    self:close()
    if not port_taken then
      break
    end
  end
  error("redis-server did not start:\n" .. tostring(log))
end

return redis_server
