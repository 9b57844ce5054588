--- A real nginx with Debian's Lua module (libnginx-mod-http-lua) on loopback, for the specs.
--
-- Each server has its own prefix directory, a random free port on 127.0.0.1 and, by default,
-- two worker processes. Started as root (CI), the master stays root and the workers run as
-- nginx.WORKER_USER:WORKER_GROUP (nobody:nogroup), as in a real deployment: what the workers
-- must read (the repo's lua/ tree, portalock.core, /usr/share/lua/5.1) is checked to be
-- readable by that user before nginx starts, and server.lock_dir is theirs to write. Started
-- by anyone else, nginx cannot switch users: the workers run as the caller (unprivileged too).
--
-- nginx runs LuaJIT, so it loads the Lua 5.1 build of portalock.core whatever interpreter
-- runs the specs: PORTALOCK_NGINX_CPATH if set, else the 5.1 sibling of the first
-- .../lua/5.N/?.so entry of LUA_CPATH, else <repo>/build/lua/5.1/?.so (made absolute).
-- PORTALOCK_NGINX names the nginx binary (default /usr/sbin/nginx, else nginx on PATH).
--
-- Inside nginx: os.getenv("PORTALOCK_LOCK_DIR") is server.lock_dir (in init_by_lua too);
-- require "spec.support.nginx_stats" records per-request measurements; every response carries
-- the answering worker's pid in X-Worker-Pid (a location with add_header directives of its own
-- drops it: nginx inherits add_header only into locations that have none).
local core = require "portalock.core"
local helper = require "spec.support.helper"
local nginx_load = require "spec.support.nginx_load"
local nginx_log = require "spec.support.nginx_log"
local nginx_stats = require "spec.support.nginx_stats"

local nginx = {}

local MODULES = "/usr/lib/nginx/modules"
local MODULE_FILES = {"ndk_http_module.so", "ngx_http_lua_module.so"}
local START_SECONDS = 10
local STOP_SECONDS = 5
local REQUEST_SECONDS = 15
-- A request for one worker is sent again (new connection) while another worker answers it.
local ROUTE_ATTEMPTS = 200
local DEFAULT_WORKERS = 2
local WORKER_CONNECTIONS = 1024
local WORKER_NOFILE = 4096

nginx.WORKER_USER = "nobody"
nginx.WORKER_GROUP = "nogroup"
--- The environment variable that hands server.lock_dir to the Lua code inside nginx.
nginx.LOCK_DIR_ENV = "PORTALOCK_LOCK_DIR"
--- The request header that confines a request to one worker (see Server:request).
local WORKER_HEADER = "X-Portalock-Worker"

local absolute = helper.absolute
local alive = helper.alive

nginx.root = helper.root

--- The package.cpath entry nginx's LuaJIT gets for portalock.core.
function nginx.cpath()
  local configured = os.getenv("PORTALOCK_NGINX_CPATH")
  if configured and configured ~= "" then
    return configured
  end
  for entry in (os.getenv("LUA_CPATH") or ""):gmatch("[^;]+") do
    local prefix = entry:match("^(.*)/lua/5%.%d/%?%.so$")
    if prefix then
      return absolute(prefix) .. "/lua/5.1/?.so"
    end
  end
  return nginx.root .. "/build/lua/5.1/?.so"
end

local function core_file()
  return (nginx.cpath():gsub("%?", "portalock/core"))
end

local function binary()
  local configured = os.getenv("PORTALOCK_NGINX")
  if configured and configured ~= "" then
    return configured
  end
  if helper.exists("/usr/sbin/nginx") then
    return "/usr/sbin/nginx"
  end
  local pipe = assert(io.popen("command -v nginx 2>/dev/null"))
  local found = pipe:read("*l")
  pipe:close()
  return found ~= "" and found or nil
end

--- nil when a real nginx can run the specs, else why not (for pending()).
function nginx.missing()
  local exe = binary()
  if not exe or not helper.exists(exe) then
    return "nginx is not installed (apt-get install nginx libnginx-mod-http-lua)"
  end
  for _, file in ipairs(MODULE_FILES) do
    if not helper.exists(MODULES .. "/" .. file) then
      return MODULES .. "/" .. file .. " is missing (apt-get install libnginx-mod-http-lua)"
    end
  end
  if helper.run("command -v curl > /dev/null 2>&1") ~= 0 then
    return "curl is not installed"
  end
  if not helper.exists(core_file()) then
    return core_file() .. " is missing: build the Lua 5.1 module or set PORTALOCK_NGINX_CPATH"
  end
end

local root_user = helper.capture("id -u") == "0\n"

--- True when the specs run as root: then the workers run as WORKER_USER.
function nginx.as_root()
  return root_user
end

-- What nginx's workers must read, as paths that must be readable (directories: and searchable).
local function worker_reads()
  return {nginx.root .. "/lua", nginx.root .. "/spec/support/nginx_stats.lua", core_file(), "/usr/share/lua/5.1"}
end

--- Shell `command` run as the user of nginx's workers: as WORKER_USER:WORKER_GROUP (no other
--- groups) when the specs run as root, else as is (the workers are the caller then).
function nginx.as_worker_user(command)
  if not nginx.as_root() then
    return command
  end
  return table.concat({helper.peer_env, "setpriv", "--reuid=" .. nginx.WORKER_USER,
    "--regid=" .. nginx.WORKER_GROUP, "--clear-groups", command}, " ")
end

-- Raises, naming the paths, if WORKER_USER cannot read all that the workers load.
local function check_readable_by_workers()
  local quoted = {}
  for i, path in ipairs(worker_reads()) do
    quoted[i] = helper.quote(path)
  end
  local output, code = helper.capture(nginx.as_worker_user("find " .. table.concat(quoted, " ")
    .. " '(' -type d '!' -executable -o '!' -readable ')' -print"))
  if code ~= 0 or output ~= "" then
    error(string.format("nginx's workers run as %s, who cannot read all of %s:\n%s\nMake them readable "
      .. "(every directory above them searchable), or run the specs from a checkout outside a private "
      .. "home directory (CI clones under /tmp).", nginx.WORKER_USER, table.concat(worker_reads(), ", "), output))
  end
end

-- Gives `path` to the worker user (when root; else the caller's already).
local function give_to_workers(path)
  if nginx.as_root() then
    local owner = nginx.WORKER_USER .. ":" .. nginx.WORKER_GROUP
    assert(helper.run("chown " .. owner .. " " .. helper.quote(path)) == 0, "chown " .. owner .. " " .. path)
  end
end

-- The prefix directory of one server: searchable by the workers, with a lock directory of theirs.
local function make_prefix()
  local dir = helper.tmpdir()
  assert(helper.run("chmod 755 " .. helper.quote(dir)) == 0, "chmod 755 " .. dir)
  local lock_dir = dir .. "/locks"
  assert(helper.run("mkdir " .. helper.quote(lock_dir)) == 0, "mkdir " .. lock_dir)
  give_to_workers(lock_dir)
  return dir, lock_dir
end

local function main_block(server, dir)
  return {
    "load_module " .. MODULES .. "/ndk_http_module.so;",
    "load_module " .. MODULES .. "/ngx_http_lua_module.so;",
    nginx.as_root() and ("user " .. nginx.WORKER_USER .. " " .. nginx.WORKER_GROUP .. ";") or "",
    "worker_processes " .. (server.workers or DEFAULT_WORKERS) .. ";",
    "worker_rlimit_nofile " .. WORKER_NOFILE .. ";",
    "pid " .. dir .. "/nginx.pid;",
    "error_log " .. dir .. "/error.log warn;",
    "env " .. nginx.LOCK_DIR_ENV .. ";",
    "events { worker_connections " .. WORKER_CONNECTIONS .. "; }",
  }
end

-- http-level directives the harness itself needs; `misdirected` is 1 for a request whose
-- WORKER_HEADER names another worker than the one that has it.
local function http_block(dir)
  local lua_path = table.concat({
    nginx.root .. "/lua/?.lua", nginx.root .. "/lua/?/init.lua", nginx.root .. "/?.lua",
    "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua", ";",
  }, ";")
  local header_variable = "$http_" .. WORKER_HEADER:lower():gsub("%-", "_")
  local lines = {
    "  access_log off;",
    "  lua_package_path '" .. lua_path .. "';",
    "  lua_package_cpath '" .. nginx.cpath() .. ";;';",
    "  lua_shared_dict " .. nginx_stats.DICT .. " 8m;",
    '  map "' .. header_variable .. ':$pid" $portalock_misdirected { "~^(\\d+):(?!\\1$)" 1; default 0; }',
  }
  for _, temp in ipairs({"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) do
    lines[#lines + 1] = "  " .. temp .. "_temp_path " .. dir .. "/" .. temp .. ";"
  end
  return table.concat(lines, "\n")
end

local function server_block(server, port, token)
  return table.concat({
    "  server {",
    "    listen 127.0.0.1:" .. port .. ";",
    "    add_header X-Worker-Pid $pid always;",
    "    if ($portalock_misdirected) { return 421; }",
    "    location = /__ready { content_by_lua_block { ngx.print('" .. token .. " ', ngx.worker.pid()) } }",
    "    location = /__stats { content_by_lua_block { require('spec.support.nginx_stats').serve() } }",
    server.locations or "",
    "  }",
  }, "\n")
end

local function config(server, dir, port, token)
  local lines = main_block(server, dir)
  lines[#lines + 1] = "http {"
  lines[#lines + 1] = http_block(dir)
  lines[#lines + 1] = server.http or ""
  lines[#lines + 1] = server.init and ("  init_by_lua_block {\n" .. server.init .. "\n  }") or ""
  lines[#lines + 1] = server_block(server, port, token)
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n") .. "\n"
end

local Server = {}
Server.__index = Server

function Server:url(path)
  return "http://127.0.0.1:" .. self.port .. path
end

-- A scratch file name in the server's directory, new each call.
function Server:scratch(name)
  self.requests = self.requests + 1
  return self.dir .. "/" .. name .. "." .. self.requests
end

-- Follows the body in curl's output, with the seconds that request took (its last try's).
local TIME_MARK = "\n@@curl time_total="

--- The shell command that GETs `path` and prints the response head and body (curl -D -),
--- then TIME_MARK and curl's time_total.
--- With opts.worker (a pid), the request reaches only that worker: nginx answers 421 on any
--- other, and the command sends it again on a new connection (at most ROUTE_ATTEMPTS times;
--- then the last 421 is what it prints). The handler runs on the named worker only. nginx
--- cannot bind a port per worker, so this relies on the kernel spreading new connections over
--- the workers (about evenly here: a routed request takes two tries on average).
function Server:curl(path, opts)
  local curl = helper.peer_env .. "curl -s -S --max-time " .. REQUEST_SECONDS .. " -D - -w "
    .. helper.quote(TIME_MARK .. "%{time_total}") .. " "
  if not (opts and opts.worker) then
    return curl .. helper.quote(self:url(path))
  end
  local out = helper.quote(self:scratch("routed"))
  curl = curl .. "-H " .. helper.quote(WORKER_HEADER .. ": " .. opts.worker) .. " " .. helper.quote(self:url(path))
  local loop = table.concat({
    "n=0; while :; do " .. curl .. " > " .. out .. "; code=$?; n=$((n+1));",
    "if [ $code -ne 0 ] || [ $n -ge " .. ROUTE_ATTEMPTS .. " ] || ! head -n 1 " .. out
      .. " | grep -q '^HTTP/[0-9.]* 421 '; then break; fi; done;",
    "cat " .. out .. "; rm -f " .. out .. "; exit $code",
  }, " ")
  return "sh -c " .. helper.quote(loop)
end

-- Server:curl's output as a response: {status, body, headers (lower-cased names), pid, seconds, head}.
local function parse(output)
  local head, body, seconds = output:match("^(.-)\r\n\r\n(.*)" .. TIME_MARK:gsub("%p", "%%%0") .. "([%d.]+)$")
  if not head then
    return nil
  end
  local headers = {}
  for name, value in head:gmatch("([%w%-]+):%s*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return {status = tonumber(head:match("^HTTP/[%d.]+ (%d+)")), body = body, headers = headers,
    pid = tonumber(headers["x-worker-pid"]), seconds = tonumber(seconds), head = head}
end

local function as_get(response, output)
  if not response then
    return nil, {}, output
  end
  return response.body, response.headers, response.head
end

--- GET `path` (opts.worker: on that worker only, see Server:curl): a response {status, body,
--- headers (lower-cased names), pid (the worker that answered), seconds (curl's time_total for
--- the connection that was answered: connect to last byte, without the tries that met another
--- worker), head}, or nil and curl's output.
function Server:request(path, opts)
  local output, code = helper.capture(self:curl(path, opts))
  if code ~= 0 then
    return nil, output
  end
  return parse(output) or nil, output
end

--- GET `path`: the body and the headers, or nil, {}, curl's output.
function Server:get(path, opts)
  return as_get(self:request(path, opts))
end

--- Starts request(path, opts) in the background; returns a function(seconds) that waits
--- (bounded) for the response and returns what request() would.
function Server:request_async(path, opts)
  local out = self:scratch("response")
  local shell = self:curl(path, opts) .. " > " .. helper.quote(out .. ".part") .. " 2>&1; mv "
    .. helper.quote(out .. ".part") .. " " .. helper.quote(out)
  helper.spawn("sh -c " .. helper.quote(shell))
  return function(seconds)
    if not helper.wait_until(function() return helper.exists(out) end, seconds or REQUEST_SECONDS) then
      return nil, "no response within the time limit"
    end
    local output = helper.read(out)
    return parse(output) or nil, output
  end
end

--- Starts get(path, opts) in the background; returns a function(seconds) that waits (bounded)
--- for the response and returns what get() would.
function Server:get_async(path, opts)
  local wait = self:request_async(path, opts)
  return function(seconds)
    return as_get(wait(seconds))
  end
end

-- The pids of the children of process `pid` (for nginx's master: its workers).
local function children(pid)
  local pids = {}
  for child in (helper.read("/proc/" .. pid .. "/task/" .. pid .. "/children") or ""):gmatch("%d+") do
    pids[#pids + 1] = tonumber(child)
  end
  return pids
end

--- The worker pids (sorted): the master's children, once there are as many as configured
--- (read from /proc rather than by polling /__ready, which may meet one worker many times).
function Server:workers()
  local pids
  local complete = helper.wait_until(function()
    pids = children(self.pid)
    return #pids == self.worker_count
  end, START_SECONDS)
  assert(complete, "nginx has " .. #pids .. " worker(s), not " .. self.worker_count)
  table.sort(pids)
  return pids
end

--- Path `name` in server.lock_dir, created empty and owned by the worker user, so that the
--- workers and the spec's own processes can both open it.
function Server:lock_file(name)
  local path = self.lock_dir .. "/" .. name
  helper.write(path, "")
  give_to_workers(path)
  return path
end

--- Runs ab against `path` (see nginx_load.ab for opts and the result).
function Server:load(path, opts)
  return nginx_load.ab(self:url(path), opts, self.dir)
end

--- Sends `count` requests for `path` that the client abandons `ms` milliseconds after each
--- was sent (opts.worker: all on that worker); returns {sent, answered} (nginx_load.abandon).
function Server:abandon(path, count, ms, opts)
  return nginx_load.abandon(self.port, path, count, ms, opts and opts.worker)
end

--- The numbers the handlers recorded in `series` with nginx_stats.record, in order; reading
--- empties the series.
function Server:stats(series)
  local body, headers = self:get("/__stats?series=" .. series)
  assert(body and headers["x-worker-pid"], "/__stats did not answer: " .. tostring(body or headers))
  local values = {}
  for line in body:gmatch("[^\n]+") do
    values[#values + 1] = assert(tonumber(line), line)
  end
  return values
end

--- {fds, inotify, targets} of process `pid`: its open descriptors, how many of them are
--- inotify instances, and every descriptor's link target (a path, "socket:[N]", ...).
function nginx.census(pid)
  local output, code = helper.capture("find /proc/" .. pid .. "/fd -mindepth 1 -maxdepth 1 -printf '%l\\n'")
  assert(code == 0, "cannot list the descriptors of " .. pid .. ": " .. output)
  local result = {fds = 0, inotify = 0, targets = {}}
  for target in output:gmatch("[^\n]+") do
    result.fds = result.fds + 1
    result.targets[#result.targets + 1] = target
    if target == "anon_inode:inotify" then
      result.inotify = result.inotify + 1
    end
  end
  return result
end

--- nginx.census of every worker, by pid.
function Server:census()
  local by_pid = {}
  for _, pid in ipairs(self:workers()) do
    by_pid[pid] = nginx.census(pid)
  end
  return by_pid
end

function Server:error_log()
  return helper.read(self.dir .. "/error.log") or ""
end

--- A position in error.log: log_problems(..., mark) looks only at what came after it.
function Server:log_mark()
  return #self:error_log()
end

--- The error.log entries at [warn] or worse (after `mark`, if given) that match none of the
--- Lua patterns in `expected`: a list of their texts, {} when the log is clean.
function Server:log_problems(expected, mark)
  return nginx_log.problems(self:error_log():sub((mark or 0) + 1), expected)
end

local function terminate(pids)
  for _, pid in ipairs(pids) do
    helper.kill(pid, "TERM")
  end
  local gone = helper.wait_until(function()
    for _, pid in ipairs(pids) do
      if alive(pid) then
        return false
      end
    end
    return true
  end, STOP_SECONDS)
  if not gone then
    for _, pid in ipairs(pids) do
      helper.kill(pid, "KILL")
    end
  end
end

--- Stops nginx (SIGTERM, then SIGKILL after a few seconds) and removes its directory.
function Server:stop()
  local pids = children(self.pid)
  pids[#pids + 1] = self.pid
  terminate(pids)
  helper.rmtree(self.dir)
end

-- True once /__ready answers with this server's token.
local function ready(self, token, path)
  local url = helper.quote(self:url(path or "/__ready"))
  if path then -- a configuration of the caller's: any answer of its own will do
    local status = helper.capture(helper.peer_env .. "curl -s -o /dev/null -w '%{http_code}' --max-time 1 " .. url)
    return status:match("^[1-5]%d%d$") ~= nil
  end
  local output, code = helper.capture(helper.peer_env .. "curl -s --max-time 1 " .. url)
  return code == 0 and output:match("^(%S+) %d+$") == token
end

local function try_start(server, port)
  local dir, lock_dir = make_prefix()
  local token = "portalock-" .. tostring(core.getpid()) .. "-" .. tostring(math.random(1e9))
  local text = server.config and server.config({dir = dir, lock_dir = lock_dir, port = port,
    main = table.concat(main_block(server, dir), "\n"), http = http_block(dir)})
    or config(server, dir, port, token)
  helper.write(dir .. "/nginx.conf", text)
  local command = table.concat({"env", nginx.LOCK_DIR_ENV .. "=" .. helper.quote(lock_dir), binary(),
    "-p", helper.quote(dir .. "/"), "-c", helper.quote(dir .. "/nginx.conf"),
    "-e", helper.quote(dir .. "/error.log"), "-g", helper.quote("daemon off;")}, " ")
  local self = setmetatable({port = port, dir = dir, lock_dir = lock_dir, requests = 0,
    worker_count = server.workers or DEFAULT_WORKERS}, Server)
  self.pid = helper.spawn(command, dir .. "/stderr.log")
  local up = helper.wait_until(function()
    return not alive(self.pid) or ready(self, token, server.config and server.ready_path)
  end, START_SECONDS)
  if up and alive(self.pid) then
    self:workers()
    return self
  end
  local log = self:error_log() .. (helper.read(dir .. "/stderr.log") or "")
  self:stop()
  return nil, log
end

--- Starts nginx with `server.init` (Lua run by init_by_lua_block), `server.http` (more
--- http-level directives), `server.locations` (directives inside the server block) and
--- `server.workers` (worker_processes, default 2). Returns a server object: fields port, dir,
--- lock_dir, pid (the master); methods url, curl, request, get, request_async, get_async,
--- workers, lock_file, load, abandon, stats, census, error_log, log_mark, log_problems, stop.
--- Raises if the workers' user cannot read the Lua code and portalock.core (see the top).
--- `server.config(parts)`, instead, makes the whole configuration: parts has dir (the
--- prefix), lock_dir, port, and the harness's own main-level (`main`) and http-level (`http`)
--- directives; the server counts as started once `server.ready_path` answers.
function nginx.start(server)
  math.randomseed(os.time() + core.getpid())
  check_readable_by_workers()
  local log
  for _ = 1, 5 do
    local port = math.random(20000, 60000)
    local self
    self, log = try_start(server, port)
    if self then
      return self
    end
    if not log:find("Address already in use", 1, true) then
      break
    end
  end
  error("nginx did not start:\n" .. log)
end

return nginx
