--- A real nginx with Debian's Lua module (libnginx-mod-http-lua) on loopback, for the specs.
-- nginx runs LuaJIT, so it loads the Lua 5.1 build of portalock.core whatever interpreter
-- runs the specs: PORTALOCK_NGINX_CPATH if set, else the 5.1 sibling of the first
-- .../lua/5.N/?.so entry of LUA_CPATH, else <repo>/build/lua/5.1/?.so (made absolute).
-- PORTALOCK_NGINX names the nginx binary (default /usr/sbin/nginx, else nginx on PATH).
local core = require "portalock.core"
local helper = require "spec.support.helper"

local nginx = {}

local MODULES = "/usr/lib/nginx/modules"
local MODULE_FILES = {"ndk_http_module.so", "ngx_http_lua_module.so"}
local START_SECONDS = 10
local STOP_SECONDS = 5
local REQUEST_SECONDS = 15

local absolute = helper.absolute

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
  local core_so = nginx.cpath():gsub("%?", "portalock/core")
  if not helper.exists(core_so) then
    return core_so .. " is missing: build the Lua 5.1 module or set PORTALOCK_NGINX_CPATH"
  end
end

local alive = helper.alive

local function config(server, dir, port, token)
  local user = helper.capture("id -u") == "0\n" and "user root;\n" or ""
  local lua_path = table.concat({
    nginx.root .. "/lua/?.lua", nginx.root .. "/lua/?/init.lua",
    "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua", ";",
  }, ";")
  return table.concat({
    "load_module " .. MODULES .. "/ndk_http_module.so;",
    "load_module " .. MODULES .. "/ngx_http_lua_module.so;",
    user .. "worker_processes 1;",
    "pid " .. dir .. "/nginx.pid;",
    "error_log " .. dir .. "/error.log warn;",
    "events { worker_connections 64; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. dir .. "/client_body;",
    "  proxy_temp_path " .. dir .. "/proxy;",
    "  fastcgi_temp_path " .. dir .. "/fastcgi;",
    "  uwsgi_temp_path " .. dir .. "/uwsgi;",
    "  scgi_temp_path " .. dir .. "/scgi;",
    "  lua_package_path '" .. lua_path .. "';",
    "  lua_package_cpath '" .. nginx.cpath() .. ";;';",
    server.http or "",
    server.init and ("  init_by_lua_block {\n" .. server.init .. "\n  }") or "",
    "  server {",
    "    listen 127.0.0.1:" .. port .. ";",
    "    location = /__ready { content_by_lua_block { ngx.print('" .. token .. " ', ngx.worker.pid()) } }",
    server.locations or "",
    "  }",
    "}",
  }, "\n") .. "\n"
end

local Server = {}
Server.__index = Server

function Server:url(path)
  return "http://127.0.0.1:" .. self.port .. path
end

function Server:curl(path)
  return helper.peer_env .. "curl -s -S --max-time " .. REQUEST_SECONDS .. " -D - " .. helper.quote(self:url(path))
end

-- Splits curl -D - output into the body and a table of lower-cased header names.
local function parse(output)
  local head, body = output:match("^(.-)\r\n\r\n(.*)$")
  if not head then
    return nil, {}, output
  end
  local headers = {}
  for name, value in head:gmatch("([%w%-]+):%s*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return body, headers, head
end

--- GET `path`: the body and the headers, or nil, {}, curl's output.
function Server:get(path)
  local output, code = helper.capture(self:curl(path))
  if code ~= 0 then
    return nil, {}, output
  end
  return parse(output)
end

--- Starts GET `path` in the background; returns a function(seconds) that waits (bounded)
--- for the response and returns what get() would.
function Server:get_async(path)
  self.requests = self.requests + 1
  local out = self.dir .. "/response." .. self.requests
  local shell = self:curl(path) .. " > " .. helper.quote(out .. ".part") .. " 2>&1; mv "
    .. helper.quote(out .. ".part") .. " " .. helper.quote(out)
  helper.spawn("sh -c " .. helper.quote(shell))
  return function(seconds)
    if not helper.wait_until(function() return helper.exists(out) end, seconds or REQUEST_SECONDS) then
      return nil, {}, "no response within the time limit"
    end
    return parse(helper.read(out))
  end
end

function Server:error_log()
  return helper.read(self.dir .. "/error.log") or ""
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
  local pids = {self.pid}
  if self.worker then
    pids[2] = self.worker
  end
  terminate(pids)
  helper.rmtree(self.dir)
end

local function try_start(server, port)
  local dir = helper.tmpdir()
  local token = "portalock-" .. tostring(core.getpid()) .. "-" .. tostring(math.random(1e9))
  helper.write(dir .. "/nginx.conf", config(server, dir, port, token))
  local command = table.concat({binary(), "-p", helper.quote(dir .. "/"), "-c", helper.quote(dir .. "/nginx.conf"),
    "-e", helper.quote(dir .. "/error.log"), "-g", helper.quote("daemon off;")}, " ")
  local self = setmetatable({port = port, dir = dir, requests = 0}, Server)
  self.pid = helper.spawn(command, dir .. "/stderr.log")
  local ready = helper.wait_until(function()
    if not alive(self.pid) then
      return true
    end
    local ready_url = helper.quote(self:url("/__ready"))
    local output, code = helper.capture(helper.peer_env .. "curl -s --max-time 1 " .. ready_url)
    local worker = code == 0 and output:sub(1, #token + 1) == token .. " " and output:match("^%S+ (%d+)$")
    self.worker = tonumber(worker)
    return self.worker ~= nil
  end, START_SECONDS)
  if ready and self.worker then
    return self
  end
  local log = self:error_log() .. (helper.read(dir .. "/stderr.log") or "")
  self:stop()
  return nil, log
end

--- Starts nginx with `server.init` (Lua run by init_by_lua_block), `server.http` (more
--- http-level directives) and `server.locations` (directives inside the server block).
--- Returns a server object: port, dir, url(), get(), get_async(), error_log(), stop().
function nginx.start(server)
  math.randomseed(os.time() + core.getpid())
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
