--- RedisLock and RedisSemaphore: one lock (or `maximum` permits) for every process, on any
-- machine, that uses the same Redis primary (portalock.h, "Redis (distributed)", says how).
-- A grant belongs to a session: the process's connections to one server with one set of
-- settings, shared by its objects (one per process and settings, opened at the first acquire,
-- replaced when it is lost or after fork). The wait is portalock.wait's loop over the core's
-- acquisition; wake-ups are pushed by the server, so nothing here polls.
local core = require "portalock.core"
local check = require "portalock.check"
local errors = require "portalock.errors"
local lock = require "portalock.lock"
local nginx = require "portalock.nginx"
local wait = require "portalock.wait"

local M = {}

local pick = check.pick

-- The rules of a session's options (ranges of seconds, port, db) are the core's, asked at
-- construction (core.redis_options_check); here only their types.
local function seconds(func, value, name)
  if type(value) ~= "number" then
    return check.bad(func, name, value, "must be a number of seconds")
  end
end

local function integer(func, value, name)
  if not check.is_integer(value) then
    return check.bad(func, name, value, "must be an integer")
  end
end

local function integer_within(low, high)
  return function(func, value, name)
    if not check.is_integer(value) or value < low or value > high then
      return check.bad(func, name, value, string.format("must be an integer within %d..%d", low, high))
    end
  end
end

-- Names, hosts, paths: strings that are not empty and have no NUL (a filename's rule).
local name_string = check.filename

-- A lock's or semaphore's name (`argument` as the constructor calls it): a name_string of at
-- most core.REDIS_NAME_MAX bytes (the core's limit), checked at construction, before any I/O.
local function lock_name(class, value, argument)
  local problem = name_string(class, value, argument)
  if not problem and #value > core.REDIS_NAME_MAX then
    problem = check.bad(class, argument, value, string.format("the %s's name must be at most %d "
      .. "bytes", class, core.REDIS_NAME_MAX))
  end
  return problem
end

-- A password is never quoted in a message: it may end up in a log.
local function password_string(func, value, name)
  local problem = type(value) ~= "string" and "must be a string"
    or value:find("\0", 1, true) and "must not contain NUL bytes"
  if problem then
    return string.format("bad argument '%s' to '%s' (%s): %s", name, func,
      type(value) == "string" and "***" or type(value), problem)
  end
end

-- The fields of a `redis` table, as the C core names them.
local CONNECTION_FIELDS = {
  {"host", name_string}, {"port", integer}, {"db", integer},
  {"username", name_string}, {"password", password_string}, {"path", name_string},
}

-- The core's message for a refused URL shows it with its password masked: it is framed here
-- as this function's, without quoting the URL again.
local URL_PROBLEM = "bad argument 'url' "

-- A semaphore's largest maximum: the C binding passes it as a long of at least 32 bits.
local MAXIMUM_MAX = 2147483647

-- opts.redis: a URL (the core parses it) or a table of CONNECTION_FIELDS.
local function connection(func, value, name)
  if type(value) == "string" then
    local _, problem = core.redis_parse_url(value)
    if problem then
      if problem:sub(1, #URL_PROBLEM) == URL_PROBLEM then
        return string.format("bad argument '%s' to '%s' %s", name, func, problem:sub(#URL_PROBLEM + 1))
      end
      return string.format("bad argument '%s' to '%s': %s", name, func, problem)
    end
  elseif type(value) == "table" then
    return check.options_with(func, value, CONNECTION_FIELDS)
  else
    return check.bad(func, name, value,
      'must be a URL ("redis://[user:password@]host:port/db" or "unix:///path") or a table')
  end
end

local OPTIONS = {
  {"redis", connection}, {"ttl", seconds}, {"timeout", check.timeout},
  {"check_interval", check.check_interval}, {"fail_when_locked", check.boolean},
  {"connect_timeout", seconds}, {"command_timeout", seconds},
  -- portalocker's: a waiter is woken by the server, so thread_sleep_time has no effect here;
  -- unavailable_timeout bounds each command, as command_timeout does (give one of them).
  {"thread_sleep_time", check.check_interval}, {"unavailable_timeout", seconds},
}
-- A RedisLock's own: whether Python portalocker sees its holder (its subscription to the
-- channel `name`, one per acquisition); false saves that, and a round trip per acquire.
local LOCK_OPTIONS = {{"visible", check.boolean}}
for _, entry in ipairs(OPTIONS) do
  LOCK_OPTIONS[#LOCK_OPTIONS + 1] = entry
end

-- The settings a session is opened with and keyed by: the connection's fields (from the URL
-- or the table) and the timing, each over the core's default (core.REDIS_DEFAULTS).
local SESSION_FIELDS = {"path", "host", "port", "db", "username", "password", "connect_timeout",
  "command_timeout", "ttl"}

local function session_settings(func, opts)
  if opts.unavailable_timeout ~= nil and opts.command_timeout ~= nil then
    return nil, check.bad(func, "unavailable_timeout", opts.unavailable_timeout,
      "is portalocker's name of command_timeout: give only one of them")
  end
  local redis = opts.redis or {}
  if type(redis) == "string" then
    redis = core.redis_parse_url(redis)
  end
  local settings = {
    connect_timeout = opts.connect_timeout, ttl = opts.ttl,
    command_timeout = pick(opts.command_timeout, opts.unavailable_timeout),
  }
  for _, field in ipairs(CONNECTION_FIELDS) do
    settings[field[1]] = redis[field[1]]
  end
  local key = {}
  for i, name in ipairs(SESSION_FIELDS) do
    settings[name] = pick(settings[name], core.REDIS_DEFAULTS[name])
    key[i] = string.format("%q", tostring(settings[name]))
  end
  return settings, table.concat(key, " ")
end

-- key -> the session this process opened with those settings; weak, so that a session no
-- object uses any longer is collected (which closes its connections).
local sessions = setmetatable({}, {__mode = "v"})
-- session -> the process that opened it.
local opened_by = setmetatable({}, {__mode = "k"})

-- The session for the object's settings: the cached one while it is alive and this process
-- opened it, else a new one. Returns the session or nil, err (LockException).
local function session_of(self)
  local pid = core.getpid()
  local session = sessions[self._key]
  if session and (opened_by[session] ~= pid or session:lost()) then
    session = nil
  end
  if not session then
    local errtab
    session, errtab = core.redis_session(self._settings)
    if not session then
      return nil, errors.from_core(errtab)
    end
    sessions[self._key], opened_by[session] = session, pid
  end
  return session
end

-- The core handle of the object on the current session (made anew for a new session).
local function handle_of(self)
  local session, err = session_of(self)
  if not session then
    return nil, err
  end
  if self._session ~= session then
    if self._maximum then
      self._h = core.redis_semaphore(session, self._name, self._maximum)
    else
      self._h = core.redis_lock(session, self._name, self._visible)
    end
    self._session = session
  end
  return self._h
end

local Redis = {}
local getters = {
  token = function(self) -- a decimal string (every Lua version), nil when not held
    return self._h and self._h:token() or nil
  end,
  name = function(self) return self._name end,
  maximum = function(self) return self._maximum or 1 end,
  visible = function(self) return self._visible end,
}
for _, name in ipairs({"timeout", "check_interval", "fail_when_locked"}) do
  getters[name] = function(self) return self._defaults[name] end
end
getters.channel = getters.name

local RedisMeta = lock.object_metatable(Redis, getters)

local function check_self(self, method)
  local problem = lock.check_self(self, RedisMeta, "RedisLock or RedisSemaphore", method)
  if problem then
    error(problem, 3)
  end
end

--- true while the grant is held; else false and why, in the core's words: "not held", "lost"
--- (the session ended, the server no longer has the grant, or its lease ran out unrenewed by
--- this process's clock), "forked" (an object inherited across fork). No I/O.
function Redis:check()
  check_self(self, "check")
  if not self._h then
    return false, "not held" -- the core's word for a handle that holds nothing
  end
  return self._h:check()
end

--- Acquires: the object (with .token) or nil, err: AlreadyLocked when the grant did not come
--- within the timeout (or at once with fail_when_locked), LockException when the server
--- cannot be reached or the session is lost meanwhile. Arguments default to the object's.
function Redis:acquire(timeout, check_interval, fail_when_locked)
  check_self(self, "acquire")
  local problem = check.acquire_arguments(timeout, check_interval, fail_when_locked)
  if not problem and self._h and self._h:check() then
    problem = check.bad("acquire", "self", self, "already holds its grant: release it first")
  end
  if problem then
    error(problem, 2)
  end
  if self._h and self._h:token() then
    self._h:release() -- a lost grant's remains: nothing to give back
  end
  local defaults = self._defaults
  timeout = pick(timeout, defaults.timeout)
  check_interval = pick(check_interval, defaults.check_interval)
  fail_when_locked = pick(fail_when_locked, defaults.fail_when_locked)
  local deadline = core.monotonic() + timeout
  local lost -- the loss this wait went on from, when it did: what a new session's failure follows
  while true do
    local h, err = handle_of(self)
    if not h then
      if lost then
        return nil, errors.reconnecting(lost, err)
      end
      return nil, err
    end
    -- The caller's timeout as given (the AlreadyLocked message names it), what is left of it
    -- in a new session.
    local acq, errtab = h:begin(lost and math.max(0, deadline - core.monotonic()) or timeout,
      check_interval, fail_when_locked)
    if not acq then
      return nil, errors.from_core(errtab)
    end
    local ok
    ok, err = wait.acquire_steps(self._name, acq)
    if ok then
      return self
    end
    -- A new session is opened by handle_of; one that cannot be opened ends the wait.
    if not errors.redis_waits_on(err, self._session:lost(),
      fail_when_locked or core.monotonic() >= deadline) then
      return nil, err
    end
    lost = err
  end
end

--- Gives the grant back: true, or nil, err (LockException) when it had been lost already
--- (the object is released either way). Never raises; releasing what is not held is a no-op.
function Redis:release()
  check_self(self, "release")
  if not self._h or not self._h:token() then
    return true -- the core's handle has no grant (no token): nothing to release
  end
  return errors.result(self._h:release())
end

--- One round trip: true while the server still holds the grant, else nil, err (LockException;
--- the grant counts as lost from then on).
function Redis:ensure()
  check_self(self, "ensure")
  if not self._h then
    return nil, errors.new("LockException", string.format("%s '%s' is not held", self._class,
      self._name))
  end
  return errors.result(self._h:ensure())
end

--- A descriptor that becomes readable (POLLIN) when a grant of this object's session is lost,
--- for an event loop (then ask check()); nil before the first acquire.
function Redis:lost_fd()
  check_self(self, "lost_fd")
  return self._session and self._session:fd() or nil
end

--- Who holds and waits for this object's name now, as the server counts them (one round trip,
--- on the session, which it opens when needed; nothing changes): {holders = {{session, token,
--- lease}, ...} (portalock holders, oldest token first: session names its connections
--- "portalock-<session>-command" in CLIENT LIST, lease is the seconds left), maximum (stored
--- with the name, nil when nobody held or waited lately), waiting (portalock waiters), foreign
--- (Python portalocker holders of the channel)}; or nil, err (LockException).
function Redis:status()
  check_self(self, "status")
  local session, err = session_of(self)
  if not session then
    return nil, err
  end
  local status, errtab = session:status(self._name)
  if not status then
    return nil, errors.from_core(errtab)
  end
  return status
end

--- Writes `value` to the hash `key` fenced by this grant's token: true when written, false when
--- a holder with a newer token has written there; nil, err when not held or unreachable.
function Redis:fenced_write(key, value)
  check_self(self, "fenced_write")
  local problem = name_string("fenced_write", key, "key")
    or (type(value) ~= "string" and check.bad("fenced_write", "value", value, "must be a string"))
  if problem then
    error(problem, 2)
  end
  local token = self.token
  if not token then
    return nil, errors.new("LockException", string.format("%s '%s' is not held", self._class,
      self._name))
  end
  local written, errtab = self._session:fenced_write(key, token, value)
  if written == nil then
    return nil, errors.from_core(errtab)
  end
  return written
end

-- `<close>` releases and never raises: a scope that lost its grant learns it from check(),
-- ensure() or release(), not from an error thrown while it unwinds.
RedisMeta.__close = function(self)
  self:release()
end

RedisMeta.__tostring = function(self)
  local held, why = self:check()
  local what = self._maximum and string.format("'%s', %d", self._name, self._maximum)
    or string.format("'%s'", self._name)
  return string.format("portalock.%s(%s): %s", self._class, what, held and "held" or why)
end

local function refuse_here(func)
  if not core.redis_session then
    return string.format("%s: portalock was built without Redis support (it needs hiredis: "
      .. "install libhiredis-dev and rebuild)", func)
  end
end

local function new(class, name, maximum, opts)
  local _, problem = nil, check.options_with(class, opts, maximum and OPTIONS or LOCK_OPTIONS)
  if problem then
    error(problem, 3)
  end
  opts = opts or {}
  local settings, key = session_settings(class, opts)
  if not settings then
    error(key, 3)
  end
  _, problem = core.redis_options_check(settings)
  if problem then
    -- The core names the option ("bad argument 'ttl' (0): ..."), as the core knows it; the
    -- message names the caller, and the option as the caller gave it.
    local option = problem:match("^bad argument '([^']*)' ")
    if option == "command_timeout" and opts.unavailable_timeout ~= nil then
      option = "unavailable_timeout"
    end
    error((problem:gsub("^bad argument '[^']*' ", "bad argument '" .. tostring(option) .. "' to '"
      .. class .. "' ", 1)), 3)
  end
  local obj = setmetatable({
    _class = class,
    _name = name,
    _maximum = maximum,
    _visible = not maximum and opts.visible ~= false, -- a semaphore has no portalocker peer
    _settings = settings,
    _key = key,
    _defaults = {
      timeout = pick(opts.timeout, lock.DEFAULTS.timeout),
      check_interval = pick(opts.check_interval, lock.DEFAULTS.check_interval),
      fail_when_locked = pick(opts.fail_when_locked, lock.DEFAULTS.fail_when_locked),
    },
    _session = false,
    _h = false,
  }, RedisMeta)
  if nginx.inside then -- its I/O over cosockets: the C session's sockets would block the worker
    return require("portalock.redis_cosocket").adopt(obj, getters)
  end
  return obj
end

--- portalock.RedisLock(channel, opts): a lock named `channel`, which Python portalocker's
--- RedisLock on the same channel respects (and the other way round).
function M.RedisLock(channel, opts)
  local problem = refuse_here("RedisLock") or lock_name("RedisLock", channel, "channel")
  if problem then
    error(problem, 2)
  end
  local obj = new("RedisLock", channel, false, opts) -- not a tail call: errors point at the caller
  return obj
end

--- portalock.RedisSemaphore(name, maximum, opts): at most `maximum` holders of `name` at once.
--- Every user of a name must give the same maximum (acquire raises on a mismatch).
function M.RedisSemaphore(name, maximum, opts)
  local problem = refuse_here("RedisSemaphore") or lock_name("RedisSemaphore", name, "name")
    or integer_within(1, MAXIMUM_MAX)("RedisSemaphore", maximum, "maximum")
  if problem then
    error(problem, 2)
  end
  local obj = new("RedisSemaphore", name, maximum, opts)
  return obj
end

return M
