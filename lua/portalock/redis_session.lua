--- A Redis session inside nginx, for portalock.redis_cosocket: what session.c is outside nginx,
--- over cosockets. One per worker and settings: a random channel "portalock:session:<32 hex>"
--- that a background timer (ngx.timer.at) keeps subscribed on its own connection, so that the
--- server drops the session's grants when the worker dies; the timer also renews the grants
--- every ttl/3 on a second connection of its own. Requests send their commands over pooled
--- connections of their own (a cosocket belongs to the request or timer that made it), and
--- queue their subscriptions for the timer, which hands them their wake-ups through
--- ngx.semaphore. A session whose subscription ends is lost for good: its grants are lost,
--- and the next acquire opens a new one. When the worker exits, the session ends once no
--- running request holds or waits through it. The bytes sent and the meaning of the replies are
--- the core's (portalock.core: redis_* and reply methods, from protocol.c).
local core = require "portalock.core"
local errors = require "portalock.errors"
local nginx = require "portalock.nginx"
local wait = require "portalock.wait"

local ngx = rawget(_G, "ngx")
local semaphore -- ngx.semaphore, loaded with the first session (it needs lua-resty-core)

local M = {}

-- How often the timer looks whether the worker is exiting (a running timer is not told: it must
-- end by itself for the worker to exit).
local EXIT_CHECK_INTERVAL = 1
-- The subscription's read timeout: the longest cosockets take (2^31 - 1 ms). A shorter one
-- would log an error line ("lua tcp socket read timed out") at each quiet interval.
local SUBSCRIPTION_READ_MS = 2147483647
-- The largest read from a socket at once.
local READ_CHUNK = 65536
-- The host when neither host nor path is given (portalock.h: portalock_redis_options).
local DEFAULT_HOST = "127.0.0.1"

-- Why a session or a grant is lost, in the core's words.
local LOSSES = core.REDIS_LOSSES

-- ------------------------------------------------------------------ connections

local Connection = {}
Connection.__index = Connection

-- The port, 0 meaning the default (portalock.h: portalock_redis_options).
local function port_of(settings)
  return settings.port ~= 0 and settings.port or core.REDIS_DEFAULTS.port
end

-- The server as the core's messages name it ("Redis at host:port"; connection.c's words).
local function where(settings)
  return core.redis_where(settings)
end

-- A connection to the session's server: pooled under `pool` (a request's), or its own (the
-- timer's). Returns it, or nil, err.
local function connect(settings, pool)
  local sock = ngx.socket.tcp()
  local command_ms = settings.command_timeout * 1000
  sock:settimeouts(settings.connect_timeout * 1000, command_ms, command_ms)
  local opts = pool and {pool = pool} or nil
  local ok, err
  if settings.path then
    ok, err = sock:connect("unix:" .. settings.path, opts)
  else
    ok, err = sock:connect(settings.host or DEFAULT_HOST, port_of(settings), opts)
  end
  if not ok then
    return nil, errors.from_core(core.redis_unreachable_error(where(settings), tostring(err)))
  end
  return setmetatable({sock = sock, reader = core.redis_reader(), settings = settings,
    where = where(settings)}, Connection)
end

function Connection:close()
  self.sock:close()
  self.closed = true
end

-- Any failure ends the connection: a late reply would answer the next command. `doing` as
-- connection.c says it ("sending", "reading a reply").
function Connection:fail(doing, err)
  self.timed_out = err == "timeout"
  self:close()
  return nil, errors.from_core(core.redis_broken_error(self.where, doing, tostring(err)))
end

function Connection:send(bytes)
  local ok, err = self.sock:send(bytes)
  if not ok then
    return self:fail("sending", err)
  end
  return true
end

--- The next reply; nil, err when the connection failed (it is closed then), or nil, "timeout"
--- when `patient` and nothing came within the read timeout (the connection stays).
function Connection:read(patient)
  while true do
    local reply, problem = self.reader:next()
    if reply then
      return reply
    elseif reply == false then
      return self:fail("reading a reply", problem)
    end
    local data, err = self.sock:receiveany(READ_CHUNK)
    if not data then
      if patient and err == "timeout" then
        return nil, "timeout"
      end
      return self:fail(err == "timeout" and "waiting for a reply" or "reading a reply", err)
    end
    self.reader:feed(data)
  end
end

function Connection:call(bytes)
  local ok, err = self:send(bytes)
  if not ok then
    return nil, err
  end
  return self:read()
end

-- Sends `commands` ({what, bytes} each) at once and checks every reply.
function Connection:setup(commands)
  local bytes = {}
  for i, command in ipairs(commands) do
    bytes[i] = command[2]
  end
  local ok, err = self:send(table.concat(bytes))
  if not ok then
    return nil, err
  end
  for _, command in ipairs(commands) do
    local reply
    reply, err = self:read()
    if not reply then
      return nil, err
    end
    local errtab
    ok, errtab = reply:status(command[1], self.where)
    if not ok then
      self:close()
      return nil, errors.from_core(errtab)
    end
  end
  return true
end

--- Back to the pool (a request's connection after a complete reply).
function Connection:keep()
  if not self.closed then
    self.sock:setkeepalive()
  end
end

-- ------------------------------------------------------------------ sessions

local Session = {}
Session.__index = Session

-- key -> the worker's session for those settings.
local sessions = {}

-- The system's random bytes as hex (math.random is seeded alike in every worker and nginx:
-- two sessions with one channel would keep each other's grants alive).
local function random_hex(bytes)
  local source = assert(io.open("/dev/urandom", "rb"))
  local raw = source:read(bytes)
  source:close()
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- {what, bytes} of a connection's setup: AUTH, SELECT (unless `without_db`), CLIENT SETNAME.
function Session:setup_commands(role, without_db)
  local s, commands = self.settings, {}
  if s.password then
    commands[#commands + 1] = {"AUTH", core.redis_auth(s.username, s.password)}
  end
  if s.db ~= 0 and not without_db then
    commands[#commands + 1] = {"SELECT", core.redis_select(s.db)}
  end
  commands[#commands + 1] = {"CLIENT SETNAME", core.redis_client_name(self.hex, role)}
  return commands
end

--- A connection for the running request's commands (from the worker's pool for these
--- settings: set up only when new). Returns it (give it back with conn:keep()) or nil, err.
function Session:connection()
  local conn, err = connect(self.settings, self.pool)
  if not conn then
    return nil, err
  end
  if conn.sock:getreusedtimes() == 0 then
    local ok
    ok, err = conn:setup(self:setup_commands("command"))
    if not ok then
      return nil, err
    end
  end
  return conn
end

--- Runs the script `name` on `conn`: `build(sha)` makes the command. The server's script cache
--- flushed (NOSCRIPT): loads it again and retries once. Returns the reply or nil, err.
function Session:script(conn, name, build)
  local reply, err = conn:call(build(self.sha[name]))
  if reply and reply:noscript() then
    local loaded
    loaded, err = conn:call(core.redis_script_load(name))
    if not loaded then
      return nil, err
    end
    local sha, errtab = loaded:script_load(conn.where)
    if not sha then
      return nil, errors.from_core(errtab)
    end
    self.sha[name] = sha
    reply, err = conn:call(build(sha))
  end
  return reply, err
end

--- Marks the session lost (the first reason stays): every grant it holds is lost, every waiter
--- and the timer are woken; the next acquire opens a new session.
function Session:lose(reason)
  if self.lost then
    return
  end
  self.lost = reason
  if sessions[self.key] == self then
    sessions[self.key] = nil
  end
  for grant in pairs(self.grants) do
    grant:lose(reason)
  end
  for _, listener in pairs(self.listeners) do
    listener.wake:post(1)
  end
  self.changed:post(-math.min(0, self.changed:count()) + 1)
  self.stop:post(1)
  self.outbox_ready:post(1)
end

--- LockException "the connection to Redis at <where> was lost (<why>)", or "... while waiting
--- for '<waiting_for>' ...", in the core's words.
function Session:lost_error(waiting_for)
  return errors.from_core(core.redis_lost_error(core.redis_where(self.settings), self.lost,
    waiting_for))
end

--- The channel of a new acquisition: "<session channel>:<n>".
function Session:next_channel()
  self.acquisitions = self.acquisitions + 1
  return self.channel .. ":" .. self.acquisitions
end

-- Hands `bytes` (SUBSCRIBE or UNSUBSCRIBE) to the timer's writer.
function Session:queue(bytes)
  self.outbox[#self.outbox + 1] = bytes
  self.outbox_ready:post(1)
end

--- Subscribes the acquisition's channel `id` (and `name`, for a visible RedisLock, when no other
--- acquisition of this session keeps it: portalocker counts one subscriber per session) for
--- `request` (portalock.nginx's record). Returns its listener: {wake = a semaphore posted at
--- its confirmation and at each wake-up, subscribed, woken}.
function Session:listen(remote, id, name, request)
  local listener = {wake = semaphore.new(0), subscribed = false, woken = false, name = name,
    request = request}
  self.listeners[id] = listener
  local first = false
  if name then
    local users = self.interop[name] or 0
    first = users == 0
    self.interop[name] = users + 1
  end
  self:queue(remote:subscription("SUBSCRIBE", id, first))
  return listener
end

--- Undoes listen (with `name` too when this was its last user).
function Session:unlisten(remote, id)
  local listener = self.listeners[id]
  if not listener then
    return
  end
  self.listeners[id] = nil
  local last = false
  if listener.name then
    local users = self.interop[listener.name] - 1
    last = users == 0
    self.interop[listener.name] = users > 0 and users or nil
  end
  if not self.lost then
    self:queue(remote:subscription("UNSUBSCRIBE", id, last))
  end
end

--- True while a request that has not ended holds a grant of the session or waits for one.
function Session:in_use()
  for grant in pairs(self.grants) do
    if nginx.request_alive(grant.request) then
      return true
    end
  end
  for _, listener in pairs(self.listeners) do
    if nginx.request_alive(listener.request) then
      return true
    end
  end
  return false
end

-- What a push on the subscription means: a confirmation or a wake-up for a listener.
function Session:dispatch(reply)
  local kind, channel = reply:push()
  if not kind then
    if not reply:status("SUBSCRIBE", self.sub.where) then
      -- An error answers a SUBSCRIBE, which names no channel (session.c: pl_dispatch).
      self:lose(LOSSES.subscription_refused)
    end
    return
  end
  local listener = kind ~= "unsubscribe" and self.listeners[channel]
  if listener then
    if kind == "subscribe" then
      listener.subscribed = true
    else
      listener.woken = true
    end
    listener.wake:post(1)
  end
end

-- ------------------------------------------------------------------ the timer

-- Connects the subscription and the renewals' connection, loads the scripts, subscribes the
-- session's channel and waits for the confirmation. Returns true or nil, err.
function Session:start()
  local err
  self.sub, err = connect(self.settings)
  if not self.sub then
    return nil, err
  end
  self.renewer, err = connect(self.settings)
  if not self.renewer then
    return nil, err
  end
  local setup = self:setup_commands("command")
  for _, name in ipairs(core.REDIS_SCRIPTS) do
    setup[#setup + 1] = {"SCRIPT LOAD", core.redis_script_load(name), name}
  end
  local ok
  ok, err = self:load(setup)
  if not ok then
    return nil, err
  end
  ok, err = self.sub:setup(self:setup_commands("subscription", true))
  if not ok then
    return nil, err
  end
  ok, err = self.sub:send(core.redis_subscription("SUBSCRIBE", self.channel))
  local reply = ok and self.sub:read()
  local kind = reply and reply:push()
  if kind ~= "subscribe" then
    return nil, reply and errors.from_core(reply:error("SUBSCRIBE")) or err
  end
  local s = self.settings
  self.sub.sock:settimeouts(s.connect_timeout * 1000, s.command_timeout * 1000,
    SUBSCRIPTION_READ_MS)
  return true
end

-- Runs the renewals connection's setup and SCRIPT LOADs; the SHA1s into self.sha.
function Session:load(commands)
  local bytes = {}
  for i, command in ipairs(commands) do
    bytes[i] = command[2]
  end
  local ok, err = self.renewer:send(table.concat(bytes))
  if not ok then
    return nil, err
  end
  for _, command in ipairs(commands) do
    local reply
    reply, err = self.renewer:read()
    if not reply then
      return nil, err
    end
    local result, errtab
    if command[3] then
      result, errtab = reply:script_load(self.renewer.where)
      self.sha[command[3]] = result
    else
      result, errtab = reply:status(command[1], self.renewer.where)
    end
    if not result then
      return nil, errors.from_core(errtab)
    end
  end
  return true
end

-- Renews every grant held, in one script; a grant the server no longer has is lost.
function Session:renew()
  local grants, remotes, ids, tokens = {}, {}, {}, {}
  for grant in pairs(self.grants) do
    if grant.held and not grant.lost then
      grants[#grants + 1], remotes[#remotes + 1] = grant, grant.remote
      ids[#ids + 1], tokens[#tokens + 1] = grant.id, grant.tok
    end
  end
  if #grants == 0 then
    return
  end
  local ttl_ms = math.floor(self.settings.ttl * 1000)
  local sent = core.monotonic()
  local reply = self:script(self.renewer, "renew", function(sha)
    return core.redis_renew(sha, ttl_ms, remotes, ids)
  end)
  if not reply then
    self:lose(self.renewer.timed_out and LOSSES.command_timeout or LOSSES.command_failed)
    return
  end
  local alive = reply:renew(#grants)
  for i, grant in ipairs(grants) do
    -- The grant renewed, not a later one of the same object.
    if grant.held and grant.tok == tokens[i] then
      grant:renewed(alive and alive[i], sent)
    end
  end
end

local function read_loop(self)
  while not self.lost do
    local reply, err = self.sub:read(true)
    if reply then
      self:dispatch(reply)
    elseif err ~= "timeout" then
      self:lose(LOSSES.subscription_ended)
    end
  end
end

local function write_loop(self)
  while not self.lost do
    if #self.outbox == 0 then
      self.outbox_ready:wait(EXIT_CHECK_INTERVAL)
    else
      local bytes = table.concat(self.outbox)
      self.outbox = {}
      if not self.sub:send(bytes) then
        self:lose(LOSSES.subscription_failed)
      end
    end
  end
end

local function run(premature, self)
  if premature then
    self:lose("the worker is exiting")
    return
  end
  local ok, err = self:start()
  if not ok then
    self.open_error = err
    self:lose(err.message)
  else
    self.ready = true
    self.changed:post(-math.min(0, self.changed:count()) + 1)
    local reader = ngx.thread.spawn(read_loop, self)
    local writer = ngx.thread.spawn(write_loop, self)
    local period = self.settings.ttl / 3
    local next_renewal = core.monotonic() + period
    while not self.lost do
      self.stop:wait(math.max(0.001, math.min(EXIT_CHECK_INTERVAL, next_renewal - core.monotonic())))
      -- A graceful stop (nginx -s quit, a reload) lets the requests that hold or wait finish.
      if ngx.worker.exiting() and not self:in_use() then
        self:lose("the worker is exiting")
      elseif not self.lost and core.monotonic() >= next_renewal then
        next_renewal = core.monotonic() + period
        self:renew()
      end
    end
    -- Killed in their waits (a cosocket read, a semaphore): their cleanup releases them.
    ngx.thread.kill(reader)
    ngx.thread.kill(writer)
  end
  for _, conn in ipairs({self.sub, self.renewer}) do
    if conn and not conn.closed then
      conn:close()
    end
  end
end

local function new_session(settings, key)
  semaphore = semaphore or require "ngx.semaphore"
  local hex = random_hex(16)
  return setmetatable({
    key = key, settings = settings, hex = hex, channel = "portalock:session:" .. hex,
    pool = "portalock:" .. ngx.md5(key), sha = {}, acquisitions = 0,
    listeners = {}, interop = {}, grants = {}, outbox = {},
    changed = semaphore.new(0), stop = semaphore.new(0), outbox_ready = semaphore.new(0),
  }, Session)
end

--- Waits on the ngx.semaphore `sema` until it is posted or the monotonic `deadline` comes;
--- false, at once, when the deadline has come. The clock is read once: read again for the wait,
--- it may have passed the deadline (a negative wait raises); and the wait is in whole
--- milliseconds, at least one (ngx.semaphore truncates: a 0 ms wait returns without yielding,
--- so a loop around it would spin).
function M.wait_until(sema, deadline)
  local rest = deadline - core.monotonic()
  if rest <= 0 then
    return false
  end
  sema:wait(wait.whole_ms(rest))
  return true
end

--- The worker's live session for `settings` (keyed by `key`), opened by a new timer when there
--- is none; waits (yielding) until it is ready. Returns it or nil, err (LockException).
function M.get(settings, key)
  local self = sessions[key]
  if not self then
    self = new_session(settings, key)
    local ok, err = ngx.timer.at(0, run, self)
    if not ok then
      return nil, errors.new("LockException", "cannot start the Redis session's timer: "
        .. tostring(err))
    end
    sessions[key] = self
  end
  local deadline = core.monotonic() + settings.connect_timeout * 2 + settings.command_timeout
  while not self.ready and not self.lost and M.wait_until(self.changed, deadline) do
  end
  if self.ready and not self.lost then
    return self
  end
  if not self.lost then
    self:lose("it was not ready in time (connect_timeout, command_timeout)")
  end
  return nil, self.open_error or self:lost_error()
end

return M
