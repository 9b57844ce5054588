--- The specs' side of spec/support/tcp_proxy.py: a loopback TCP proxy in front of a port,
-- through which a spec cuts connections (reset), partitions them without closing anything
-- (blackhole) and lets them through again (heal). Commands go to the proxy's stdin, a FIFO
-- this process holds open; each call returns once the proxy says the command is in effect.
-- Close every proxy, also when a spec fails: proxy:close(), or tcp_proxy.close_all() in an
-- after_each.
local helper = require "spec.support.helper"

local tcp_proxy = {}

local SCRIPT = helper.root .. "/spec/support/tcp_proxy.py"
local START_SECONDS = 10
local COMMAND_SECONDS = 5
local STOP_SECONDS = 2

local Proxy = {}
Proxy.__index = Proxy

local open_proxies = {} -- started, not closed yet

function Proxy:output()
  return helper.read(self.dir .. "/proxy.log") or ""
end

local function acknowledged(self)
  local count = 0
  for _ in self:output():gmatch("\nok %a+") do
    count = count + 1
  end
  return count
end

function Proxy:command(word)
  self.fifo:write(word, "\n")
  self.fifo:flush()
  self.sent = self.sent + 1
  assert(helper.wait_until(function() return acknowledged(self) >= self.sent end, COMMAND_SECONDS),
    "the proxy did not carry out '" .. word .. "':\n" .. self:output())
end

--- Closes every proxied connection with an RST to both ends.
function Proxy:reset()
  self:command("reset")
end

--- Stops forwarding in both directions with every socket left open (a half-open partition);
--- new connections are accepted and left waiting too.
function Proxy:blackhole()
  self:command("blackhole")
end

--- Forwards again, including what was sent during the partition.
function Proxy:heal()
  self:command("heal")
end

--- Ends the proxy (its stdin closes; SIGKILL if it lingers) and removes its directory. Safe
--- to call twice.
function Proxy:close()
  if self.fifo then
    self.fifo:close()
    self.fifo = nil
  end
  if self.dir then
    if not helper.wait_until(function() return not helper.alive(self.pid) end, STOP_SECONDS) then
      helper.kill(self.pid, "KILL")
    end
    helper.rmtree(self.dir)
    self.dir = nil
  end
  open_proxies[self] = nil
end

--- Closes every proxy started and not closed yet.
function tcp_proxy.close_all()
  for proxy in pairs(open_proxies) do
    proxy:close()
  end
end

--- Starts a proxy on a free port of 127.0.0.1 forwarding to 127.0.0.1:target_port; returns
--- it (port, pid, dir and the methods above) once it listens.
function tcp_proxy.start(target_port)
  local dir = helper.tmpdir()
  local fifo = dir .. "/commands"
  assert(helper.run("mkfifo " .. helper.quote(fifo)) == 0, "mkfifo " .. fifo .. " failed")
  local self = setmetatable({dir = dir, sent = 0}, Proxy)
  open_proxies[self] = true
  self.pid = helper.spawn(helper.peer_env .. helper.quote(helper.python) .. " " .. helper.quote(SCRIPT) .. " "
    .. tostring(target_port) .. " < " .. helper.quote(fifo), dir .. "/proxy.log")
  -- Meets the proxy's shell opening the other end for its stdin.
  self.fifo = assert(io.open(fifo, "w"))
  local up = helper.wait_until(function()
    self.port = tonumber(self:output():match("^port (%d+)\n"))
    return self.port ~= nil or not helper.alive(self.pid)
  end, START_SECONDS)
  if not (up and self.port) then
    local output = self:output()
    self:close()
    error("the TCP proxy did not start:\n" .. output)
  end
  return self
end

return tcp_proxy
