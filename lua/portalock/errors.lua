--- Error objects: what `nil, err` carries and what `with()` re-raises.
-- Kinds form a small tree (AlreadyLocked is a LockException), so `err:is(class)` answers
-- "is this contention?" and "is this any lock failure?" the way Python's except clauses do.
local M = {}

local Error = {}
Error.__index = Error

local classes = {}

--- Declares an error kind; returns its class (e.g. `portalock.AlreadyLocked`).
function M.define(kind, parent)
  local class = {kind = kind, parent = parent}
  classes[kind] = class
  return class
end

M.LockException = M.define("LockException")
M.AlreadyLocked = M.define("AlreadyLocked", M.LockException)

--- A new error object. `fields` may carry errno, path, lost and holder_pid.
function M.new(kind, message, fields)
  assert(classes[kind], "unknown error kind")
  local err = setmetatable({kind = kind, message = message}, Error)
  for key, value in pairs(fields or {}) do
    err[key] = value
  end
  return err
end

--- Wraps the plain table the C module returns.
function M.from_core(errtab)
  return M.new(errtab.kind, errtab.message, {
    errno = errtab.errno,
    path = errtab.path,
    lost = errtab.lost,
    holder_pid = errtab.holder_pid,
  })
end

--- What a wrapper over a core call returns: `value` when it is truthy, else nil and the
--- error object made from the core's `errtab`.
function M.result(value, errtab)
  if not value then
    return nil, M.from_core(errtab)
  end
  return value
end

--- Whether a Redis waiter whose wait failed with `err` waits on in a new session: a waiter
--- owns nothing, so when its session was lost (`session_lost`) it goes on within the same
--- deadline, unless it `gives_up` anyway (fail_when_locked, or the deadline passed)
--- (portalock.redis and, inside nginx, portalock.redis_cosocket).
function M.redis_waits_on(err, session_lost, gives_up)
  return err.kind == "LockException" and session_lost and not gives_up
end

--- A Redis waiter's failure to open a new session (`err`) after its session was lost (`lost`):
--- both, the loss first.
function M.reconnecting(lost, err)
  return M.new(err.kind, lost.message .. "; reconnecting: " .. err.message, {errno = err.errno})
end

--- True when the error is of `class` or of a kind derived from it.
function Error:is(class)
  local current = classes[self.kind]
  while current do
    if current == class then
      return true
    end
    current = current.parent
  end
  return false
end

function Error:__tostring()
  return self.kind .. ": " .. self.message
end

function Error.__concat(left, right)
  return tostring(left) .. tostring(right)
end

return M
