--- The counting Semaphore: multiprocessing.Semaphore semantics on a POSIX named semaphore
-- ("/portalock.<name>", on Linux /dev/shm/sem.portalock.<name>), shared by name between
-- unrelated processes. It persists until unlinked or reboot. A holder that dies does NOT
-- give its count back. Each object counts its own acquires not yet released; `__close` and
-- `with()` release exactly those. The wait is Lua's (portalock.wait) over core try steps,
-- so schedulers and OpenResty can yield.
local core = require "portalock.core"
local check = require "portalock.check"
local errors = require "portalock.errors"
local wait = require "portalock.wait"

local M = {}

--- The initial value when none is given, as multiprocessing.Semaphore's (the config reads it).
M.DEFAULT_VALUE = 1

--- Semaphore names: a string without NUL (what Lua checks); the rest of the rule (not empty,
--- no "/", not "." or "..", short enough for sem_open) is the core's.
function M.check_name(func, value, name)
  if type(value) ~= "string" then
    return check.bad(func, name, value, "must be a string")
  end
  local problem = core.semaphore_name_problem(value)
  if problem then
    return check.bad(func, name, value, problem)
  end
end

local check_value = check.rule("semaphore_value", "must be a number (an integer count)")
local check_release = check.rule("semaphore_release", "must be a number (an integer count)")

local CONSTRUCTOR_OPTIONS = {
  {"name", M.check_name}, {"perm", check.perm}, {"timeout", check.timeout},
  {"check_interval", check.check_interval},
}
local ACQUIRE_OPTIONS = {{"block", check.boolean}, {"timeout", check.timeout}, {"check_interval", check.check_interval}}

local Semaphore = {}
local SemaphoreMeta = {}

SemaphoreMeta.__index = function(self, key)
  if key == "name" then
    return rawget(self, "_name")
  end
  return Semaphore[key]
end

SemaphoreMeta.__newindex = function(_, key)
  error(string.format("cannot assign field %s of a Semaphore: its fields are read-only", tostring(key)), 2)
end

SemaphoreMeta.__tostring = function(self)
  return string.format("portalock.Semaphore('%s'): %d held by this object", self._name, self._h:held())
end

local function check_self(self, method)
  if getmetatable(self) ~= SemaphoreMeta then
    error(check.bad(method, "self", self, "expected a Semaphore; call it as sem:" .. method .. "(...)"), 3)
  end
end

local pick = check.pick

--- Takes one count: true; false, err (AlreadyLocked) when none came within the timeout
--- (block = false: at the first try); nil, err when the system fails.
function Semaphore:acquire(opts)
  check_self(self, "acquire")
  local problem = check.options_with("acquire", opts, ACQUIRE_OPTIONS)
  if problem then
    error(problem, 2)
  end
  opts = opts or {}
  local block = pick(opts.block, true)
  local acq = self._h:begin(block and pick(opts.timeout, self._timeout) or 0,
    pick(opts.check_interval, self._check_interval))
  local ok, err = wait.acquire_steps(self._path, acq)
  if ok then
    return true
  elseif err.kind == "AlreadyLocked" then
    return false, err
  end
  return nil, err
end

--- Posts `n` (default 1) counts, acquired or not; true or nil, err (EOVERFLOW beyond
--- SEM_VALUE_MAX). The object's own count of acquires drops by up to `n`.
function Semaphore:release(n)
  check_self(self, "release")
  n = pick(n, 1)
  local problem = check_release("release", n, "n")
  if problem then
    error(problem, 2)
  end
  return errors.result(self._h:release(n))
end

--- The current value (an integer), or nil, err.
function Semaphore:get_value()
  check_self(self, "get_value")
  return errors.result(self._h:value())
end

--- How many acquires this object made (in this process) and has not released.
function Semaphore:held()
  check_self(self, "held")
  return self._h:held()
end

local function unlink(name)
  return errors.result(core.semaphore_unlink(name))
end

--- Removes the semaphore's name (true or nil, err); this object keeps working on the old one.
function Semaphore:unlink()
  check_self(self, "unlink")
  return unlink(self._name)
end

SemaphoreMeta.__close = function(self)
  local ok, errtab = self._h:release_held()
  if not ok then
    error(errors.from_core(errtab))
  end
end

local function new(value, opts)
  value = pick(value, M.DEFAULT_VALUE)
  local problem = check_value("Semaphore", value, "value")
    or check.options_with("Semaphore", opts, CONSTRUCTOR_OPTIONS)
  if problem then
    error(problem, 3)
  end
  opts = opts or {}
  local h, errtab = core.new_semaphore(opts.name, value,
    {perm = opts.perm, timeout = opts.timeout, check_interval = opts.check_interval})
  if not h then
    error(errors.from_core(errtab), 3)
  end
  return setmetatable({
    _h = h,
    _name = h:name(),
    _path = "/portalock." .. h:name(),
    _timeout = pick(opts.timeout, core.SEMAPHORE_DEFAULT_TIMEOUT),
    _check_interval = pick(opts.check_interval, core.DEFAULT_CHECK_INTERVAL),
  }, SemaphoreMeta)
end

--- portalock.Semaphore(value, opts) makes an object; portalock.Semaphore.unlink(name)
--- removes a name.
M.Semaphore = setmetatable({}, {
  __call = function(_, value, opts)
    local sem = new(value, opts) -- not a tail call: errors point at the caller (level 3)
    return sem
  end,
  __index = {
    unlink = function(name)
      local problem = M.check_name("Semaphore.unlink", name, "name")
      if problem then
        error(problem, 2)
      end
      return unlink(name)
    end,
  },
  __newindex = function() error("portalock.Semaphore is read-only", 2) end,
})

return M
