--- A minimal redis-server for the Redis specs until spec/support/redis_server.lua (branch
-- rinfra) is on main; the same interface for what these specs use: start() -> server with
-- port, url, cli(...), close(). On 127.0.0.1, a free port, nothing persisted.
local core = require "portalock.core"
local helper = require "spec.support.helper"

local M = {}

math.randomseed(os.time() + core.getpid())

local Server = {}
Server.__index = Server

function Server:cli(...)
  local words = {helper.peer_env, "timeout -k 1 10 redis-cli -p", tostring(self.port)}
  for i = 1, select("#", ...) do
    words[#words + 1] = helper.quote((select(i, ...)))
  end
  return helper.capture(table.concat(words, " "))
end

function Server:close()
  if self.pid then
    helper.kill(self.pid, "KILL")
    helper.wait_until(function() return not helper.alive(self.pid) end, 5)
    self.pid = nil
  end
  if self.dir then
    helper.rmtree(self.dir)
    self.dir = nil
  end
end

--- nil when redis-server can run, else why not.
function M.missing()
  if helper.run("command -v redis-server >/dev/null && command -v redis-cli >/dev/null") ~= 0 then
    return "redis-server and redis-cli are not installed"
  end
end

function M.start()
  local server = setmetatable({dir = helper.tmpdir()}, Server)
  for _ = 1, 8 do
    server.port = math.random(20000, 32000) -- below the ephemeral ports
    server.url = "redis://127.0.0.1:" .. server.port .. "/0"
    server.pid = helper.spawn(helper.peer_env .. "redis-server --bind 127.0.0.1 --port "
      .. server.port .. " --dir " .. helper.quote(server.dir)
      .. " --save '' --appendonly no --daemonize no", server.dir .. "/redis.log")
    local up = helper.wait_until(function()
      local info, code = server:cli("INFO", "server")
      return not helper.alive(server.pid)
        or (code == 0 and info:match("process_id:(%d+)") == tostring(server.pid))
    end, 10)
    if up and helper.alive(server.pid) then
      return server
    end
    server:close()
    server.dir = helper.tmpdir()
  end
  server:close()
  error("could not start redis-server on a free port")
end

return M
