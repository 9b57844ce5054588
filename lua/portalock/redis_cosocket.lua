--- RedisLock and RedisSemaphore inside nginx (OpenResty): the objects portalock.redis makes,
--- with their I/O over cosockets instead of the C session's blocking sockets, so a wait never
--- blocks the worker. The protocol is the one outside nginx: the same scripts, commands and
--- replies (portalock.core's redis_* functions, from protocol.c), the attempt loop of lock.c's
--- pl_rgrant_attempt, and the wait's policy and AlreadyLocked message from the core (a remote
--- acquisition: acq:held() after each contended attempt). The wait runs in portalock.wait's
--- loop, so it queues behind the worker's other waiters for the same name; while it is its
--- turn it sleeps until the server's wake-up on its channel or until the next re-check
--- (core.REDIS_RECHECK_INTERVAL), never polling faster. A request's grant ends with the
--- request (portalock.nginx: track/untrack); the session is portalock.redis_session's.
---
--- Not inside nginx: lost_fd() (no descriptor: the session is cosockets; ask check()), and any
--- I/O in a phase without cosockets (set, header and body filters, log, init, init_worker):
--- acquire, ensure and fenced_write raise there, and release leaves the grant to the end of
--- the request.
local core = require "portalock.core"
local check = require "portalock.check"
local errors = require "portalock.errors"
local lock = require "portalock.lock"
local nginx = require "portalock.nginx"
local sessions = require "portalock.redis_session"
local wait = require "portalock.wait"

local ngx = rawget(_G, "ngx")

-- Why a grant is lost, in the core's words.
local LOSSES = core.REDIS_LOSSES

local M = {}

-- lua-nginx-module's phases with cosockets.
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, precontent = true, content = true,
  timer = true, ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local function cosocket_phase_problem(func)
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    return string.format("%s: not available in nginx's '%s' phase: portalock's Redis objects need "
      .. "cosockets there (rewrite, access, content or a timer)", func, phase)
  end
end

-- ------------------------------------------------------------------ grants

-- The grant of one object: what pl_rgrant is in C (its session, channel, queue place, lease).
local Grant = {}
Grant.__index = Grant

--- The token while held (a decimal string), else nil (as the core handle's token()).
function Grant:token()
  return self.held and self.tok or nil
end

--- (the session's) The grant is lost for `reason` (the first one stays).
function Grant:lose(reason)
  if self.held and not self.lost then
    self.lost = reason
  end
end

--- (the session's) A renewal sent at `sent` came back: the lease runs ttl from then, or the
--- grant is lost (session.c: pl_rgrant_renewed_locked).
function Grant:renewed(alive, sent)
  if alive and not self.lost then
    self.expires = sent + self.session.settings.ttl
  else
    self:lose(LOSSES.lease)
  end
end

--- Why the grant is not held ("not held", "lost": also after the release of a lost grant,
--- until the next acquire), or nil; no I/O. A lease run out by this worker's clock is lost
--- (lock.c: pl_rgrant_check).
function Grant:why_not()
  if self.held and not self.lost and core.monotonic() >= self.expires then
    self:lose(LOSSES.lease)
  end
  if self.lost then
    return "lost"
  end
  return not self.held and "not held" or nil
end

-- Runs `exchange(conn)` (one command and its reply) on a pooled connection of the running
-- request or timer. A failure of the connection loses the session, as a failed command does
-- in C: a grant the server made without the reply arriving must not outlive it.
function Grant:exchange(exchange)
  local session = self.session
  local conn, err = session:connection()
  local reply
  if conn then
    reply, err = exchange(conn)
  end
  if not reply then
    session:lose(conn and conn.timed_out and LOSSES.command_timeout or LOSSES.command_failed)
    return nil, err
  end
  conn:keep()
  return reply
end

-- Runs `build(sha)` as the script `name` (portalock.redis_session: Session:script).
function Grant:script(name, build)
  return self:exchange(function(conn) return self.session:script(conn, name, build) end)
end

-- A command that is not a script.
function Grant:command(bytes)
  return self:exchange(function(conn) return conn:call(bytes) end)
end

-- Leaves the queue of waiters; when a release popped this grant already, its wake-up is passed
-- on with a RELEASE of a grant not held, which only wakes (lock.c: pl_rgrant_leave_queue).
function Grant:leave_queue()
  if not self.queued then
    return
  end
  self.queued = false
  local reply = self:command(self.remote:leave_queue(self.id))
  if reply and reply:leave_queue() == false then
    self:script("release", function(sha) return self.remote:release(sha, self.id) end)
  end
end

--- Ends an acquisition that did not acquire: out of the queue, its subscriptions dropped.
function Grant:give_up()
  if not self.acquiring then
    return
  end
  self.acquiring = false
  if not self.session.lost then
    self:leave_queue()
  end
  self.session:unlisten(self.remote, self.id)
end

-- Waits for the server's confirmation of the acquisition's subscription (by command_timeout).
function Grant:await_subscription()
  local session, listener = self.session, self.listener
  local deadline = core.monotonic() + session.settings.command_timeout
  while not listener.subscribed and not session.lost and sessions.wait_until(listener.wake, deadline) do
  end
  if session.lost then
    return nil, session:lost_error(self:waiting_for())
  elseif not listener.subscribed then
    session:lose(LOSSES.subscription_unconfirmed)
    return nil, errors.from_core(core.redis_unconfirmed_error(core.redis_where(session.settings)))
  end
  return true
end

-- The name a loss of the session interrupted the wait for, once an attempt was contended
-- (lock.c: g->waited), else nil.
function Grant:waiting_for()
  return self.waited and self.name or nil
end

-- Takes the wake-ups and confirmations posted so far.
local function drain(listener)
  listener.woken = false
  while listener.wake:count() > 0 do
    listener.wake:wait(0)
  end
end

--- One attempt (lock.c: pl_rgrant_attempt, with the subscription confirmed before the first
--- script): "acquired" | "sleep", nil, next_attempt | "failed", err, as portalock.wait's
--- attempt functions answer. `queue`: a contended attempt waits in the queue of waiters for
--- its wake-up. The wait after a contended attempt is taken here, at the start of the next:
--- until the wake-up on the grant's channel, or the re-check the core's policy allowed
--- (acq:held()).
function Grant:attempt(acq, queue)
  local session, listener = self.session, self.listener
  if self.planned and not listener.woken then
    sessions.wait_until(listener.wake, self.planned)
  end
  local ok, err = true, nil
  if session.lost then
    ok, err = nil, session:lost_error(self:waiting_for())
  elseif not listener.subscribed then
    ok, err = self:await_subscription()
  end
  if not ok then
    return "failed", err
  end
  drain(listener)
  local ttl_ms = math.floor(session.settings.ttl * 1000)
  local score = queue and (self.score or "") or "-"
  local sent = core.monotonic()
  local reply
  reply, err = self:script("grant", function(sha)
    return self.remote:grant(sha, self.id, session.channel, ttl_ms, score, self.visible)
  end)
  if not reply then
    -- Lost while it waited: that, as lock.c's pl_rgrant_failed says it.
    return "failed", session.lost and self.waited and session:lost_error(self.name) or err
  end
  local outcome, a, _, c = reply:grant()
  if outcome == "granted" then
    -- The token: a decimal string, as the core handle's (exact on every Lua version).
    self.held, self.tok, self.expires, self.lost = true, a, sent + session.settings.ttl, nil
    self.acquiring, self.queued, self.planned = false, false, nil
    session.grants[self] = true
    return "acquired"
  elseif outcome == "contended" then
    self.score, self.queued, self.waited = c, queue, true
    local status, detail, next_attempt = acq:held()
    if not status then
      return "failed", errors.from_core(detail)
    end
    self.planned = math.min(next_attempt, core.monotonic() + core.REDIS_RECHECK_INTERVAL)
    return "sleep", nil, self.planned
  elseif outcome == "not_subscribed" then
    -- Confirmed, and the server has it no more: a half-open subscription.
    session:lose(LOSSES.subscription_dropped)
    return "failed", session:lost_error(self:waiting_for())
  elseif outcome == "maximum_mismatch" then
    return "failed", {invalid = self.remote:mismatch(a)} -- raised by acquire, at its caller
  end
  return "failed", errors.from_core(a)
end

--- Begins an acquisition on `session` for `request` (portalock.nginx's record): a new channel,
--- subscribed (with `name` when visible).
function Grant:begin(session, request)
  self.session, self.id, self.request = session, session:next_channel(), request
  self.score, self.queued, self.planned, self.lost, self.waited = nil, false, nil, nil, false
  self.listener = session:listen(self.remote, self.id, self.visible and self.name or nil, request)
  self.acquiring = true
end

--- Gives the grant back: true, or nil, err (LockException) when it was lost meanwhile.
-- The RELEASE script: true, or nil, err.
function Grant:send_release()
  if self:why_not() then
    return nil, errors.from_core(self.remote:lost_before_release())
  end
  local reply, err = self:script("release", function(sha)
    return self.remote:release(sha, self.id)
  end)
  if not reply then
    return nil, err
  end
  local released, errtab = reply:release()
  if released == nil then
    return nil, errors.from_core(errtab)
  elseif not released then
    return nil, errors.from_core(self.remote:lost_before_release())
  end
  return true
end

function Grant:release()
  local ok, err = self:send_release()
  if not ok and not self.lost then
    self.lost = "lost"
  end
  self.held, self.tok = false, nil
  self.session.grants[self] = nil
  self.session:unlisten(self.remote, self.id)
  return ok, err
end

--- One round trip: true while the server still holds the grant (its lease renewed), else
--- nil, err (and the grant is lost from then on).
function Grant:ensure()
  local why = self:why_not()
  if why then
    return nil, errors.from_core(self.remote:not_held(why))
  end
  local session = self.session
  local ttl_ms = math.floor(session.settings.ttl * 1000)
  local sent = core.monotonic()
  local reply, err = self:script("renew", function(sha)
    return self.remote:renew(sha, ttl_ms, self.id)
  end)
  if not reply then
    return nil, err
  end
  local alive, errtab = reply:renew(1)
  if not alive then
    return nil, errors.from_core(errtab)
  end
  if alive[1] and not self.lost then
    self.expires = sent + session.settings.ttl
  else
    self:lose(LOSSES.grant_gone)
  end
  if self.lost then
    return nil, errors.from_core(self.remote:not_held("lost"))
  end
  return true
end

-- ------------------------------------------------------------------ objects

local Redis = {}
local RedisMeta

local function check_self(self, method)
  local problem = lock.check_self(self, RedisMeta, "RedisLock or RedisSemaphore", method)
  if problem then
    error(problem, 3)
  end
end

-- Ends the object's grant or acquisition whoever runs it: the release of a hold whose request
-- has ended (portalock.nginx's sweep, in a timer).
local function end_hold(self)
  local grant = self._h
  if grant.held then
    return grant:release()
  end
  grant:give_up()
  return true
end

--- true while the grant is held; else false and why ("not held", "lost"). No I/O.
function Redis:check()
  check_self(self, "check")
  local why = self._h:why_not()
  if why then
    return false, why
  end
  return true
end

--- Acquires as outside nginx: the object (with .token) or nil, err (AlreadyLocked,
--- LockException). Yields to nginx while it waits.
function Redis:acquire(timeout, check_interval, fail_when_locked)
  check_self(self, "acquire")
  local grant = self._h
  nginx.reclaim(self) -- a grant left by an ended request
  local problem = cosocket_phase_problem("acquire")
    or check.acquire_arguments(timeout, check_interval, fail_when_locked)
    or ((grant.held and not grant.lost or grant.acquiring)
      and check.bad("acquire", "self", self, "already holds its grant, or is acquiring it: "
        .. "release it first (one object per request)"))
  if problem then
    error(problem, 2)
  end
  if grant.held then
    grant:release() -- a lost grant's remains: nothing to give back
  end
  local defaults = self._defaults
  timeout = check.pick(timeout, defaults.timeout)
  check_interval = check.pick(check_interval, defaults.check_interval)
  fail_when_locked = check.pick(fail_when_locked, defaults.fail_when_locked)
  local deadline = core.monotonic() + timeout
  local lost -- the loss this wait went on from, when it did: what a new session's failure follows
  while true do
    -- the caller's timeout as given (AlreadyLocked names it), what is left of it in a new session
    local acq = grant.remote:begin(lost and math.max(0, deadline - core.monotonic()) or timeout,
      check_interval, fail_when_locked)
    local session, err = sessions.get(self._settings, self._key)
    if not session then
      return nil, lost and errors.reconnecting(lost, err) or err
    end
    local request = nginx.current_request()
    grant:begin(session, request)
    nginx.track(self, request, end_hold)
    -- A contended attempt queues on the server unless the acquisition does not wait (the
    -- core's rule, as pl_rgrant_attempt_cb applies it: fail_when_locked, or no time left).
    local queue = acq:waits()
    local ok, acquired
    ok, acquired, err = pcall(wait.acquire, self._name, function()
      return grant:attempt(acq, queue)
    end, acq, "portalock.redis " .. self._key .. " " .. self._name)
    if ok and acquired then
      return self
    end
    grant:give_up()
    nginx.untrack(self)
    if not ok then
      error(acquired, 0)
    elseif err.invalid then
      error(err.invalid, 2)
    end
    -- in a new session when this one was lost, as outside nginx
    if not errors.redis_waits_on(err, session.lost,
      fail_when_locked or core.monotonic() >= deadline) then
      return nil, err
    end
    lost = err
  end
end

--- Gives the grant back: true, or nil, err when it had been lost already (released either
--- way). Never raises; in a phase without cosockets it returns nil, err and the grant ends
--- with the request.
function Redis:release()
  check_self(self, "release")
  local grant = self._h
  if not grant.held then
    return true
  end
  local problem = cosocket_phase_problem("release")
  if problem then
    return nil, errors.new("LockException", problem .. "; the grant is released when the "
      .. "request ends")
  end
  nginx.untrack(self)
  return grant:release()
end

function Redis:ensure()
  check_self(self, "ensure")
  local problem = cosocket_phase_problem("ensure")
  if problem then
    error(problem, 2)
  end
  return self._h:ensure()
end

--- Who holds and waits for this object's name now, as portalock.redis's status() says it (one
--- round trip over the request's connection; nothing changes): the table, or nil, err.
function Redis:status()
  check_self(self, "status")
  local problem = cosocket_phase_problem("status")
  if problem then
    error(problem, 2)
  end
  local session, err = sessions.get(self._settings, self._key)
  if not session then
    return nil, err
  end
  local grant = self._h
  local conn
  conn, err = session:connection()
  local reply
  if conn then
    reply, err = session:script(conn, "status", function(sha) return grant.remote:status(sha) end)
  end
  if not reply then
    return nil, err
  end
  conn:keep()
  local status, errtab = reply:name_status()
  if not status then
    return nil, errors.from_core(errtab)
  end
  return status
end

function Redis:lost_fd()
  check_self(self, "lost_fd")
  error("lost_fd: not available inside nginx: the Redis session is cosockets, with no "
    .. "descriptor to poll (ask check(), or ensure())", 2)
end

--- Writes `value` to the hash `key` fenced by this grant's token (see portalock.redis).
function Redis:fenced_write(key, value)
  check_self(self, "fenced_write")
  local problem = cosocket_phase_problem("fenced_write")
    or check.filename("fenced_write", key, "key")
    or (type(value) ~= "string" and check.bad("fenced_write", "value", value, "must be a string"))
  if problem then
    error(problem, 2)
  end
  local grant = self._h
  if not grant.held then
    return nil, errors.from_core(grant.remote:not_held("not held"))
  end
  local reply, err = grant:script("fenced_write", function(sha)
    return core.redis_fenced_write(sha, key, grant.tok, value)
  end)
  if not reply then
    return nil, err
  end
  local written, errtab = reply:fenced_write()
  if written == nil then
    return nil, errors.from_core(errtab)
  end
  return written
end

local function close(self)
  self:release()
end

local function describe(self)
  local held, why = self:check()
  local what = self._maximum and string.format("'%s', %d", self._name, self._maximum)
    or string.format("'%s'", self._name)
  return string.format("portalock.%s(%s): %s", self._class, what, held and "held" or why)
end

--- Turns an object portalock.redis made (its options checked, its settings resolved) into
--- one whose I/O is cosockets; `getters` are portalock.redis's (token asks self._h:token()).
function M.adopt(obj, getters)
  if not RedisMeta then
    RedisMeta = lock.object_metatable(Redis, getters)
    RedisMeta.__close = close
    RedisMeta.__tostring = describe
  end
  rawset(obj, "_h", setmetatable({
    remote = core.redis_remote(obj._name, obj._maximum or 1, not obj._maximum),
    name = obj._name, visible = obj._visible, held = false, acquiring = false,
  }, Grant))
  return setmetatable(obj, RedisMeta)
end

return M
